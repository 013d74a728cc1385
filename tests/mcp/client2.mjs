// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// caelumd as seen by the official MCP TypeScript SDK v2 (@modelcontextprotocol/client), which
// speaks protocol revision 2026-07-28 and falls back to the 2025 era.
//
//   node client2.mjs scenario TRANSPORT TARGET PORT SERVICE
//     TRANSPORT: http | stdio;  TARGET: the /mcp URL, or "CAELUMCTL CONFIG" for stdio.
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
  console.log('READY');
  const line = await next();
  const bound = Number(line.split(' ')[1]);
  const before = arrivals.length;
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
const run = cmd === 'scenario' ? scenario(args[0], args[1], Number(args[2]), args[3])
  : cmd === 'legacy' ? legacy(args[0]) : Promise.reject(new Error(`unknown command ${cmd}`));
run.catch((e) => fail(`${e?.constructor?.name}: ${e?.message} ${JSON.stringify(e?.data ?? '')}`));
