// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// An MCP server built on an official SDK with one tool, ingest_events, for caelumd's peer
// client to push to (tests/integration/test_peers.py).
//
//   node peer_server.mjs v2   @modelcontextprotocol/server 2.4.0 createMcpHandler: serves
//                             2026-07-28 and, as its stateless fallback, the 2025 era.
//   node peer_server.mjs v1   @modelcontextprotocol/sdk 1.32 with a stateful Streamable HTTP
//                             transport: the 2025 era only (initialize, Mcp-Session-Id).
// Prints "LISTENING <port>", then "INGEST <era> <json arguments>" for every call.
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const INPUT = {
  type: 'object',
  properties: { host: { type: 'string' }, events: { type: 'array', items: { type: 'object' } } },
  required: ['host', 'events'],
};

function ingest(era, args) {
  console.log(`INGEST ${era} ${JSON.stringify(args)}`);
  return { content: [{ type: 'text', text: `stored ${args.events.length}` }] };
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

async function v2() {
  const { McpServer, createMcpHandler, fromJsonSchema } = await import('@modelcontextprotocol/server');
  const handler = createMcpHandler(({ era }) => {
    const s = new McpServer({ name: 'peer-v2', version: '2.4.0' });
    s.registerTool('ingest_events', { description: 'store events', inputSchema: fromJsonSchema(INPUT) },
      (args) => ingest(era, args));
    return s;
  });
  return http.createServer(async (req, res) => {
    const b = await body(req);
    const request = new Request(`http://127.0.0.1${req.url}`, { method: req.method,
      headers: Object.entries(req.headers).filter(([, v]) => typeof v === 'string'),
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : b });
    const response = await handler.fetch(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body) for await (const chunk of response.body) res.write(chunk);
    res.end();
  });
}

async function v1() {
  const { Server } = await import('@modelcontextprotocol/sdk/server/index.js');
  const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
  const { ListToolsRequestSchema, CallToolRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
  const transports = new Map();
  const make = () => {
    const s = new Server({ name: 'peer-v1', version: '1.32.2' }, { capabilities: { tools: {} } });
    s.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: 'ingest_events', inputSchema: INPUT }] }));
    s.setRequestHandler(CallToolRequestSchema, (r) => ingest('legacy', r.params.arguments));
    return s;
  };
  return http.createServer(async (req, res) => {
    const parsed = req.method === 'POST' ? JSON.parse((await body(req)).toString() || 'null') : undefined;
    let t = transports.get(req.headers['mcp-session-id']);
    if (!t) {
      t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => transports.set(id, t) });
      await make().connect(t);
    }
    await t.handleRequest(req, res, parsed);
  });
}

const server = process.argv[2] === 'v1' ? await v1() : await v2();
server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
