// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// caelumd as seen by the official MCP TypeScript SDK, over one transport.
//
//   node client.mjs scenario TRANSPORT TARGET PORT SERVICE
//     TRANSPORT: http | ws | stdio;  TARGET: the /mcp URL, or "CAELUMCTL CONFIG" for stdio
//     Token: $CAELUM_TOKEN (http, ws). Initializes, lists tools, reserves PORT for SERVICE,
//     subscribes to caelum://events/recent, prints "READY", waits for "BOUND <ms epoch>" on
//     stdin (the driver was denied a bind on PORT), expects notifications/resources/updated
//     and the bind_denied in the resource, prints "RESULT {json}".
//   node client.mjs unauthorized TRANSPORT URL
//     Connecting without a token (or with a wrong one) must fail with 401.
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ResourceUpdatedNotificationSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const EXPECTED_TOOLS = ['allocate_port', 'check_service', 'find_service', 'get_resources', 'get_service',
  'get_status', 'ingest_events', 'list_databases', 'list_hosts', 'list_ports', 'list_services',
  'recent_events', 'release_port', 'reserve_port', 'resolve_database', 'verify_enforcement'];

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

// The SDK's WebSocket transport cannot send headers: the same transport, with them (Node 22's
// WebSocket takes { protocols, headers }).
class AuthWebSocketTransport extends WebSocketClientTransport {
  constructor(url, token) {
    super(url);
    this.token = token;
  }
  start() {
    return new Promise((resolve, reject) => {
      const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      this._socket = new WebSocket(this._url, { protocols: ['mcp'], headers });
      this._socket.onerror = (ev) => {
        const err = new Error(`WebSocket error: ${ev.message ?? ev.error?.message ?? 'refused'}`);
        reject(err);
        this.onerror?.(err);
      };
      this._socket.onopen = () => resolve();
      this._socket.onclose = () => this.onclose?.();
      this._socket.onmessage = (ev) => {
        try {
          this.onmessage?.(JSON.parse(ev.data));
        } catch (e) {
          this.onerror?.(e);
        }
      };
    });
  }
}

function transport(kind, target, token) {
  if (kind === 'http')
    return new StreamableHTTPClientTransport(new URL(target),
      token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {});
  if (kind === 'ws')
    return new AuthWebSocketTransport(new URL(target), token);
  if (kind === 'stdio') {
    const [ctl, config] = target.split(' ');
    return new StdioClientTransport({ command: ctl, args: ['-c', config, 'mcp'], stderr: 'inherit' });
  }
  fail(`unknown transport ${kind}`);
}

async function scenario(kind, target, port, service) {
  const client = new Client({ name: 'caelum-test', version: '1.0.0' }, { capabilities: {} });
  let updates = 0;
  let wake = null;
  const arrivals = []; // times of updates not yet looked at
  const logs = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    if (n.params.uri === 'caelum://events/recent') {
      updates++;
      arrivals.push(Date.now());
      wake?.();
    }
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  await client.connect(transport(kind, target, process.env.CAELUM_TOKEN));

  const info = client.getServerVersion();
  if (info?.name !== 'caelumd') fail(`serverInfo.name ${info?.name}`);
  const caps = client.getServerCapabilities();
  if (!caps?.resources?.subscribe || !caps?.tools || !caps?.logging) fail(`capabilities ${JSON.stringify(caps)}`);
  const tools = (await client.listTools()).tools;
  const names = tools.map((t) => t.name).sort();
  if (JSON.stringify(names) !== JSON.stringify(EXPECTED_TOOLS)) fail(`tools ${names}`);
  for (const t of tools)
    if (!t.outputSchema || t.inputSchema.additionalProperties !== false) fail(`schemas of ${t.name}`);

  const res = await client.callTool({ name: 'reserve_port', arguments: { port, service } });
  if (res.isError || res.structuredContent?.port !== port || res.structuredContent?.service !== service)
    fail(`reserve_port: ${JSON.stringify(res)}`);
  if (JSON.parse(res.content[0].text).port !== port) fail('text content differs from structuredContent');
  // Strict input schemas: failures are tool results (isError), not protocol errors.
  const bad = await client.callTool({ name: 'reserve_port', arguments: { port: 70000, service } });
  if (!bad.isError || !/port/.test(bad.content[0].text)) fail(`out of range port: ${JSON.stringify(bad)}`);
  const extra = await client.callTool({ name: 'list_ports', arguments: { bogus: 1 } });
  if (!extra.isError || !/bogus/.test(extra.content[0].text)) fail(`extra property: ${JSON.stringify(extra)}`);
  let unknown = null;
  try {
    await client.callTool({ name: 'no_such_tool', arguments: {} });
  } catch (e) {
    unknown = e;
  }
  if (!unknown || unknown.code !== -32602) fail(`unknown tool: ${unknown}`);
  const ports = await client.callTool({ name: 'list_ports', arguments: {} });
  if (!ports.structuredContent.ports.some((p) => p.port === port && p.service === service)) fail('list_ports');

  await client.setLoggingLevel('info');
  const list = (await client.listResources()).resources.map((r) => r.uri).sort();
  if (!list.includes('caelum://events/recent') || !list.includes('caelum://registry/ports')) fail(`resources ${list}`);
  await client.subscribeResource({ uri: 'caelum://events/recent' });

  const rl = createInterface({ input: process.stdin });
  const it = rl[Symbol.asyncIterator]();
  console.log('READY');
  const line = (await it.next()).value ?? '';
  const m = /^BOUND (\d+)$/.exec(line);
  if (!m) fail(`driver said ${line}`);
  const bound = Number(m[1]);
  // Wait for an update that follows the denial (others may be in flight), then read.
  let denial = null;
  let latency = null;
  let seen = [];
  const deadline = Date.now() + 5000;
  while (!denial && Date.now() < deadline) {
    if (!arrivals.length)
      await new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
    if (!arrivals.length) break;
    const at = arrivals.shift();
    const doc = await client.readResource({ uri: 'caelum://events/recent' });
    const events = JSON.parse(doc.contents[0].text);
    denial = events.find((e) => e.type === 'bind_denied' && e.port === port);
    seen = events.slice(-5).map((e) => `${e.id}:${e.type}:${e.port}`);
    if (denial) latency = at - bound;
  }
  if (!denial) fail(`no bind_denied for ${port} after ${updates} updates (last events: ${seen})`);
  await client.unsubscribeResource({ uri: 'caelum://events/recent' });
  const rel = await client.callTool({ name: 'release_port', arguments: { port } });
  if (rel.isError) fail(`release_port: ${rel.content[0].text}`);
  console.log(`RESULT ${JSON.stringify({ latency_ms: latency, updates, owner: denial.owner, logs: logs.length })}`);
  rl.close();
  await client.close();
}

async function unauthorized(kind, target) {
  for (const token of [undefined, '0'.repeat(64)]) {
    const client = new Client({ name: 'caelum-test', version: '1.0.0' }, { capabilities: {} });
    let err = null;
    try {
      await client.connect(transport(kind, target, token));
    } catch (e) {
      err = e;
    }
    if (!err) fail(`connected with token ${token}`);
    if (kind === 'http' && !/401/.test(String(err?.message ?? err))) fail(`expected 401, got ${err}`);
  }
  console.log('RESULT {"refused": true}');
}

const [mode, kind, target, port, service] = process.argv.slice(2);
try {
  if (mode === 'scenario') await scenario(kind, target, Number(port), service);
  else if (mode === 'unauthorized') await unauthorized(kind, target);
  else fail(`unknown mode ${mode}`);
  process.exit(0);
} catch (e) {
  fail(e?.stack ?? String(e));
}
