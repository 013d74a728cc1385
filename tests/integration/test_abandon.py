# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Peers that go away at any point: the control socket (follow, mutations, MCP bridge),
HTTP requests, SSE streams and WebSockets. caelumd must survive every one of them and keep
answering; under make test SAN=1 any sanitizer report in its log fails the test."""
import json
import os
import socket
import struct
import time

from harness import CaelumTest, check_sanitizers
from httpc import request

FOLLOW = {"jsonrpc": "2.0", "id": 1, "method": "events.follow", "params": {}}


def rpc(i, method, params=None):
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": params or {}}


def lines(*msgs):
    return b"".join(json.dumps(m).encode() + b"\n" for m in msgs)


class Abandon(CaelumTest):
    def setUp(self):
        self.e = self.env("abandon", services={"web": ["8100/tcp"]})
        self.sock = os.path.join(self.e.runtime_dir, "caelumd.sock")

    def alive(self):
        """caelumd still runs, answers status, and logged no sanitizer report."""
        self.assertIsNone(self.e.proc.poll(), f"caelumd died: {self.e.log()[-3000:]}")
        r = self.e.ctl("status", timeout=10)
        self.assertEqual(r.rc, 0, r)
        check_sanitizers(self.e.log(), "caelumd")

    def unix(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        return s

    def script(self):
        """follow, then mutations that each emit events to the follower itself."""
        msgs = [FOLLOW]
        for i in range(6):
            msgs.append(rpc(10 + i, "port.reserve", {"port": 8150 + i, "proto": "tcp",
                                                     "service": "web"}))
            msgs.append(rpc(20 + i, "port.release", {"port": 8150 + i, "proto": "tcp"}))
        msgs.append(rpc(99, "service.apply",
                        {"spec": {"name": "tmp", "ports": ["8190/tcp"]}}))
        msgs.append(rpc(98, "service.delete", {"name": "tmp"}))
        return msgs

    def test_control_follow_mutate_close_at_every_step(self):
        msgs = self.script()
        for cut in range(1, len(msgs) + 1):
            for how in ("close", "shutdown", "partial"):
                s = self.unix()
                data = lines(*msgs[:cut])
                if how == "partial":  # the last line cut in the middle
                    data = data[:-5]
                s.sendall(data)
                if how == "shutdown":
                    s.shutdown(socket.SHUT_WR)
                s.close()
            # Followers that read a little, then vanish with replies and events queued.
            s = self.unix()
            s.sendall(lines(*msgs[:cut]))
            try:
                s.recv(16)
            except ConnectionResetError:
                self.fail(f"caelumd went away after {cut} messages: {self.e.log()[-2000:]}")
            s.close()
        time.sleep(0.3)
        self.alive()
        # Whatever the abandoned clients left reserved is released; the registry is sane.
        self.e.ctl("service", "delete", "tmp")
        self.assertTrue(self.e.ok("port", "list") is not None)

    def test_control_many_followers_abandoned_during_broadcast(self):
        followers = []
        for _ in range(40):
            s = self.unix()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(lines(FOLLOW))
            followers.append(s)
        time.sleep(0.2)
        # A burst of events while followers close one after another.
        mut = self.unix()
        burst = []
        for i in range(30):
            burst.append(rpc(100 + i, "port.reserve", {"port": 8120 + i % 10, "proto": "udp",
                                                       "service": "web"}))
            burst.append(rpc(200 + i, "port.release", {"port": 8120 + i % 10, "proto": "udp"}))
        mut.sendall(lines(*burst))
        for s in followers:
            s.close()
        mut.close()
        time.sleep(0.3)
        self.alive()

    def test_mcp_bridge_abandoned(self):
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}}
        sub = {"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe",
               "params": {"uri": "caelum://status"}}
        call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "reserve_port",
                           "arguments": {"port": 8160, "proto": "tcp", "service": "web"}}}
        msgs = [rpc(0, "mcp.connect"), init,
                {"jsonrpc": "2.0", "method": "notifications/initialized"}, sub, call]
        for cut in range(1, len(msgs) + 1):
            s = self.unix()
            s.sendall(lines(*msgs[:cut]))
            s.close()
        # A session whose resource changes while its bridge is gone.
        s = self.unix()
        s.sendall(lines(*msgs[:4]))
        s.close()
        self.e.ok("port", "reserve", "8161/tcp", "service", "web")
        self.e.ok("port", "release", "8161/tcp")
        time.sleep(0.3)
        self.alive()

    def raw_http(self, port, data, read=0):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        if read:
            try:
                s.recv(read)
            except OSError:
                pass
        # RST instead of FIN: the harshest way to go.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def test_http_requests_abandoned_at_every_step(self):
        port = self.e.ok("status")["http"]["dashboard"]["port"]
        tok = self.e.token()
        body = json.dumps({"port": 8170, "proto": "tcp", "service": "web"}).encode()
        reqs = [
            b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            b"GET /api/v1/events?limit=500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n",
            b"GET /api/v1/events/stream?limit=100 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Accept: text/event-stream\r\n\r\n",
            b"POST /api/v1/ports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + tok.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
        ]
        for req in reqs:
            for cut in sorted({1, len(req) // 3, len(req) // 2, len(req) - 1, len(req)}):
                self.raw_http(port, req[:cut])
            self.raw_http(port, req, read=1)
        # SSE streams that vanish while events are being fanned out to them.
        for _ in range(20):
            self.raw_http(port, reqs[3], read=1)
        self.e.ctl("port", "release", "8170/tcp")  # reserved unless abandoned first
        self.e.ok("port", "reserve", "8171/tcp", "service", "web")
        time.sleep(0.3)
        self.alive()
        r = request(self.e.api_url("/api/v1/status"))
        self.assertEqual(r.status, 200, r)

    def test_mcp_http_and_websocket_abandoned(self):
        port = self.e.ok("status")["http"]["mcp"]["port"]
        tok = self.e.token().encode()
        init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                           "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                      "clientInfo": {"name": "t", "version": "1"}}}).encode()
        post = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + tok +
                b"\r\nContent-Type: application/json\r\n"
                b"Accept: application/json, text/event-stream\r\nContent-Length: " +
                str(len(init)).encode() + b"\r\n\r\n" + init)
        ws = (b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + tok +
              b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Protocol: mcp\r\n\r\n")
        # A masked text frame carrying initialize.
        mask = b"\x01\x02\x03\x04"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(init))
        frame = b"\x81" + bytes([0x80 | 126]) + struct.pack("!H", len(init)) + mask + payload
        for req in (post, ws, ws + frame):
            for cut in sorted({1, len(req) // 2, len(req) - 1, len(req)}):
                self.raw_http(port, req[:cut])
            self.raw_http(port, req, read=1)
        self.e.ok("port", "reserve", "8172/tcp", "service", "web")
        time.sleep(0.3)
        self.alive()
