// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// caelumd as seen by the official MCP TypeScript SDK v2 (@modelcontextprotocol/client), which
// speaks protocol revision 2026-07-28 and falls back to the 2025 era.
//
//   node client2.mjs scenario TRANSPORT TARGET PORT SERVICE
//     TRANSPORT: http | stdio | ws;  TARGET: the /mcp URL, or "CAELUMCTL CONFIG" for stdio.
//     (ws: the same exchange by hand, the SDK has no WebSocket transport.)
//     Token: $CAELUM_TOKEN (http). Connects with version negotiation ('auto': server/discover
//     first, initialize only as the fallback), checks that it landed on 2026-07-28, lists
//     tools, reserves PORT for SERVICE, opens subscriptions/listen for
//     caelum://events/recent, prints "READY", waits for "BOUND <ms epoch>" on stdin (the
//     driver was denied a bind on PORT), expects notifications/resources/updated on the
//     listen stream and the bind_denied in the resource, prints "RESULT {json}".
//   node client2.mjs legacy URL
//     The same client in its default (legacy) mode: initialize, 2025-11-25, and listen()
//     refused locally as the SDK documents for that era.
import { createInterface } from 'node:readline';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const MODERN = '2026-07-28';
const EVENTS = 'caelum://events/recent';

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

function transport(kind, target, token) {
  if (kind === 'http')
    return new StreamableHTTPClientTransport(new URL(target),
      token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {});
  if (kind === 'stdio') {
    const [ctl, config] = target.split(' ');
    return new StdioClientTransport({ command: ctl, args: ['-c', config, 'mcp'], stderr: 'inherit' });
  }
  fail(`unknown transport ${kind}`);
}

function lines() {
  const rl = createInterface({ input: process.stdin });
  const waiting = [];
  const got = [];
  rl.on('line', (l) => (waiting.length ? waiting.shift()(l) : got.push(l)));
  return () => new Promise((resolve) => (got.length ? resolve(got.shift()) : waiting.push(resolve)));
}

async function scenario(kind, target, port, service) {
  const client = new Client({ name: 'caelum-test-v2', version: '2.0.0' },
    { capabilities: {}, versionNegotiation: { mode: 'auto' } });
  const arrivals = [];
  let wake = null;
  client.setNotificationHandler('notifications/resources/updated', (n) => {
    if (n.params.uri === EVENTS) {
      arrivals.push(Date.now());
      wake?.();
    }
  });
  await client.connect(transport(kind, target, process.env.CAELUM_TOKEN));
  const version = client.getNegotiatedProtocolVersion();
  if (version !== MODERN) fail(`negotiated ${version}, not ${MODERN}`);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  if (!tools.includes('reserve_port')) fail(`tools: ${tools}`);
  const r = await client.callTool({ name: 'reserve_port', arguments: { port, proto: 'tcp', service } });
  if (r.isError) fail(`reserve_port: ${JSON.stringify(r.content)}`);
  const sub = await client.listen({ resourceSubscriptions: [EVENTS] });
  if (!sub.honoredFilter.resourceSubscriptions?.includes(EVENTS))
    fail(`listen honored ${JSON.stringify(sub.honoredFilter)}`);
  const next = lines();
  const before = arrivals.length;
  console.log('READY');
  const line = await next();
  const bound = Number(line.split(' ')[1]);
  const deadline = Date.now() + 5000;
  let denied = null;
  while (!denied && Date.now() < deadline) {
    while (arrivals.length === before && Date.now() < deadline)
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 200); });
    const res = await client.readResource({ uri: EVENTS });
    const events = JSON.parse(res.contents[0].text);
    denied = (events.events ?? events).find((e) => e.type === 'bind_denied' && e.port === port);
  }
  if (arrivals.length === before) fail('no notifications/resources/updated on the listen stream');
  if (!denied) fail('no bind_denied in the events resource');
  const owner = r.structuredContent?.service;
  await sub.close();
  await client.close();
  console.log(`RESULT ${JSON.stringify({ version, owner, updates: arrivals.length - before,
    latency_ms: arrivals[before] - bound, tools: tools.length })}`);
  process.exit(0);
}

// 2026-07-28 over WebSocket, by hand: the v2 SDK has no WebSocket transport. Same checks.
async function wsScenario(url, port, service) {
  const ws = new WebSocket(url, { protocols: ['mcp'],
    headers: { Authorization: `Bearer ${process.env.CAELUM_TOKEN}` } });
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const waiting = new Map();
  const notes = [];
  let wake = null;
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.id !== undefined && waiting.has(m.id)) {
      waiting.get(m.id)(m);
      waiting.delete(m.id);
    } else if (m.method) {
      notes.push({ at: Date.now(), m });
      wake?.();
    }
  };
  const envelope = { 'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'caelum-test-ws', version: '1' } };
  let nextId = 1;
  const req = (method, params = {}, id = nextId++) => new Promise((resolve) => {
    waiting.set(id, resolve);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: envelope } }));
  });
  const waitNote = async (pred, ms) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const n = notes.find(pred);
      if (n || Date.now() > deadline) return n;
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 100); });
    }
  };
  const d = await req('server/discover');
  if (!d.result?.supportedVersions?.includes(MODERN)) fail(`discover: ${JSON.stringify(d)}`);
  const tl = await req('tools/list');
  if (tl.result?.resultType !== 'complete') fail(`tools/list: ${JSON.stringify(tl).slice(0, 300)}`);
  const r = await req('tools/call', { name: 'reserve_port', arguments: { port, proto: 'tcp', service } });
  if (r.result?.isError !== false) fail(`reserve_port: ${JSON.stringify(r)}`);
  // The listen is answered only when it ends: do not wait for its response.
  req('subscriptions/listen', { notifications: { resourceSubscriptions: [EVENTS] } }, 'listen-1');
  const ack = await waitNote((n) => n.m.method === 'notifications/subscriptions/acknowledged', 5000);
  if (ack?.m.params._meta['io.modelcontextprotocol/subscriptionId'] !== 'listen-1') fail('no listen ack');
  const next = lines();
  const before = notes.length;
  console.log('READY');
  const bound = Number((await next()).split(' ')[1]);
  const upd = await waitNote((n, i) => i >= before && n.m.method === 'notifications/resources/updated' &&
    n.m.params.uri === EVENTS && n.m.params._meta?.['io.modelcontextprotocol/subscriptionId'] === 'listen-1', 5000);
  if (!upd) fail('no notifications/resources/updated for the listen');
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled',
    params: { requestId: 'listen-1', _meta: envelope } }));
  ws.close();
  console.log(`RESULT ${JSON.stringify({ version: MODERN, owner: r.result.structuredContent.service,
    updates: notes.length - before, latency_ms: upd.at - bound })}`);
  process.exit(0);
}

async function legacy(target) {
  const client = new Client({ name: 'caelum-test-v2', version: '2.0.0' }, { capabilities: {} });
  await client.connect(transport('http', target, process.env.CAELUM_TOKEN));
  const version = client.getNegotiatedProtocolVersion();
  if (version !== '2025-11-25') fail(`legacy mode negotiated ${version}`);
  const tools = (await client.listTools()).tools.length;
  let refused = false;
  try {
    await client.listen({ resourceSubscriptions: [EVENTS] });
  } catch (e) {
    refused = /2026-07-28/.test(String(e.message));
  }
  if (!refused) fail('listen() was not refused on a 2025-era connection');
  await client.close();
  console.log(`RESULT ${JSON.stringify({ version, tools })}`);
  process.exit(0);
}

const [cmd, ...args] = process.argv.slice(2);
const run = cmd === 'scenario' && args[0] === 'ws' ? wsScenario(args[1], Number(args[2]), args[3])
  : cmd === 'scenario' ? scenario(args[0], args[1], Number(args[2]), args[3])
  : cmd === 'legacy' ? legacy(args[0]) : Promise.reject(new Error(`unknown command ${cmd}`));
run.catch((e) => fail(`${e?.constructor?.name}: ${e?.message} ${JSON.stringify(e?.data ?? '')}`));
