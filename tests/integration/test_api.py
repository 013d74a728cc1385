# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The HTTP API, SSE and /metrics of the dashboard listener, over real HTTP."""
import errno
import gzip
import json
import os
import subprocess
import threading
import time
import urllib.parse

from harness import CTL, CaelumTest
from httpc import SSE, metric, parse_prometheus, request

SERVICES = {"web": ["8100/tcp"], "db": ["8110/tcp", "8111/udp"]}


class Api(CaelumTest):
    def setUp(self):
        self.e = self.env("api", services=SERVICES)
        self.url = self.e.api_url
        self.tok = self.e.token()

    def registry(self):
        return sorted((p["port"], p["proto"], p["service"]) for p in self.e.ok("port", "list"))

    # ---- shapes ----
    def test_status_shape(self):
        r = request(self.url("/api/v1/status"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        st = r.json
        for key in ("host", "version", "components", "events", "registry", "policy",
                    "verification", "http"):
            self.assertIn(key, st)
        self.assertEqual(st["host"], "test-node")
        ports = next(c for c in st["components"] if c["name"] == "ports")
        self.assertTrue(ports["attached"])
        self.assertEqual(ports["mode"], "enforce")
        # The same document as the control socket's.
        self.assertEqual(st["registry"], self.e.ok("status")["registry"])

    def test_services_and_ports_shape(self):
        svcs = request(self.url("/api/v1/services")).json
        self.assertEqual(sorted(s["name"] for s in svcs), ["db", "web"])
        for s in svcs:  # what a dashboard row needs, without a call per service
            self.assertIn("health", s)
            self.assertEqual(s["recent_denials"], {"by_service": 0, "against_service": 0})
        web = request(self.url("/api/v1/services/web")).json
        self.assertEqual(web["name"], "web")
        self.assertEqual(web["ports"], ["8100/tcp"])
        self.assertIn(web["state"], ("running", "stopped"))
        self.assertIn("recent_denials", web)
        ports = request(self.url("/api/v1/ports")).json
        self.assertIn({"port": 8111, "proto": "udp", "service": "db", "origin": "spec",
                       "managed": True}, ports)
        pm = request(self.url("/api/v1/ports/map")).json
        self.assertEqual(pm["ranges"], [{"range": "8100-8199", "lo": 8100, "hi": 8199,
                                         "proto": "both"}])
        self.assertEqual(pm["managed_ports"], 200)
        self.assertIn({"port": 8100, "proto": "tcp", "service": "web", "managed": True,
                       "denials": 0, "last_offender_service": None,
                       "last_offender_comm": None}, pm["ports"])

    def test_other_reads_shape(self):
        self.assertEqual(request(self.url("/api/v1/databases")).json, [])
        res = request(self.url("/api/v1/resources")).json
        self.assertIn("cpus", res["dimensions"])
        self.assertEqual(sorted(s["name"] for s in res["services"]), ["db", "web"])
        evs = request(self.url("/api/v1/events?type=daemon_started&limit=1")).json
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["type"], "daemon_started")
        tl = request(self.url("/api/v1/events/timeline?minutes=5")).json
        self.assertEqual(tl["step_s"], 60)
        self.assertEqual(len(tl["minutes"]), 5)
        self.assertEqual(set(tl["series"]), {"bind_denied", "device_denied",
                                             "task_budget_exceeded", "db_connect_denied",
                                             "db_conn_limit"})

    def test_not_found_and_bad_queries(self):
        for path, status in (("/api/v1/services/nope", 404), ("/api/v1/databases/nope", 404),
                             ("/api/v1/nothing", 404), ("/api/v1/events?bogus=1", 400),
                             ("/api/v1/events?limit=abc", 400),
                             ("/api/v1/events?limit=0", 400),
                             ("/api/v1/events?limit=1&limit=2", 400),
                             ("/api/v1/events/timeline?minutes=61", 400),
                             ("/api/v1/status?x=1", 400)):
            r = request(self.url(path))
            self.assertEqual(r.status, status, f"{path}: {r}")
            self.assertIn("message", r.json["error"], path)
        r = request(self.url("/api/v1/status"), method="POST", token=self.tok)
        self.assertEqual(r.status, 405)

    def test_host_only_database(self):
        """POST /api/v1/databases with "host" beside the spec; DELETE ...?host=H."""
        spec = {"name": "far", "kind": "tcp", "address": "127.0.0.1:20591"}
        r = request(self.url("/api/v1/databases"), "POST", dict(spec, host="bad_host"),
                    token=self.tok)
        self.assertEqual(r.status, 400, r)
        self.assertIn('host: invalid host name "bad_host"', r.json["error"]["message"])
        r = request(self.url("/api/v1/databases"), "POST", dict(spec, host="node-b"),
                    token=self.tok)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["host"], "node-b")
        self.assertEqual([(d["name"], d["host"]) for d in
                          request(self.url("/api/v1/databases")).json], [("far", "node-b")])
        r = request(self.url("/api/v1/databases/far"), "DELETE", token=self.tok)
        self.assertEqual(r.status, 404, r)
        r = request(self.url("/api/v1/databases/far?host=node-b"), "DELETE", token=self.tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(request(self.url("/api/v1/databases")).json, [])

    # ---- mutations and auth ----
    def test_duplicate_keys_refused_on_every_transport(self):
        """{"port": 8161, "port": 8162}: json-c alone kept the last one and reserved 8162.
        Refused, naming the key, over HTTP, the control socket and MCP; nothing reserved."""
        import socket
        body = b'{"port": 8161, "service": "web", "port": 8162}'
        r = request(self.url("/api/v1/ports"), "POST", body, token=self.tok,
                    headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertIn('duplicate key "port"', json.loads(r.body)["error"]["message"], r)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.path.join(self.e.runtime_dir, "caelumd.sock"))
        s.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "port.reserve", "params": '
                  b'{"port": 8163, "service": "web", "port": 8164}}\n')
        reply = json.loads(s.makefile().readline())
        s.close()
        self.assertEqual(reply["error"]["code"], -32700, reply)
        self.assertIn('duplicate key "port"', reply["error"]["message"], reply)
        mcp = subprocess.run(
            [CTL, "-c", self.e.config_path, "mcp"],
            input='{"jsonrpc": "2.0", "id": 1, "id": 2, "method": "ping"}\n',
            capture_output=True, text=True, timeout=30)
        out = json.loads(mcp.stdout.splitlines()[0])
        self.assertEqual(out["error"]["code"], -32700, out)
        self.assertIn('duplicate key "id"', out["error"]["message"], out)
        ports = {p for p, _, _ in self.registry()}
        self.assertFalse(ports & {8161, 8162, 8163, 8164}, ports)

    def test_chunked_body_refused_with_411(self):
        """A chunked body was read as no body ("expected a JSON object"): 411, and nothing
        reserved, over the API and MCP."""
        import socket
        import urllib.parse
        u = urllib.parse.urlsplit(self.url("/api/v1/ports"))
        body = b'{"port": 8171, "service": "web"}'
        for path in ("/api/v1/ports", "/mcp"):
            s = socket.create_connection((u.hostname, u.port), timeout=10)
            s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Authorization: Bearer " + self.tok.encode() + b"\r\n"
                      b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
            status = s.makefile("rb").readline().decode()
            s.close()
            self.assertIn(" 411 ", status, (path, status))
        self.assertNotIn(8171, {p for p, _, _ in self.registry()})

    def test_reserve_and_release_with_token(self):
        r = request(self.url("/api/v1/ports"), "POST", {"port": 8150, "service": "web"},
                    token=self.tok)
        self.assertEqual(r.status, 201, r)
        self.assertIn((8150, "tcp", "web"), self.registry())
        self.assertEqual(self.e.bind_in(self.e.cgroup("squat"), 8150), errno.EPERM)
        r = request(self.url("/api/v1/ports"), "POST", {"service": "db", "proto": "udp"},
                    token=self.tok)
        self.assertEqual(r.status, 201, r)
        got = r.json["port"]
        self.assertIn((got, "udp", "db"), self.registry())
        r = request(self.url("/api/v1/ports/8150/tcp"), "DELETE", token=self.tok)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn((8150, "tcp", "web"), self.registry())
        r = request(self.url("/api/v1/ports/8150/tcp"), "DELETE", token=self.tok)
        self.assertEqual(r.status, 404, r)
        r = request(self.url("/api/v1/ports"), "POST", {"port": 8100, "service": "db"},
                    token=self.tok)
        self.assertEqual(r.status, 422, r)  # web owns it
        self.assertIn("8100", r.json["error"]["message"])

    def test_services_apply_delete_reload(self):
        spec = {"name": "cache", "ports": ["8120/tcp"]}
        r = request(self.url("/api/v1/services"), "POST", spec, token=self.tok)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["name"], "cache")
        self.assertIn((8120, "tcp", "cache"), self.registry())
        r = request(self.url("/api/v1/services"), "POST", {"name": "Bad Name", "ports": []},
                    token=self.tok)
        self.assertEqual(r.status, 422, r)
        r = request(self.url("/api/v1/services/cache"), "DELETE", token=self.tok)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn((8120, "tcp", "cache"), self.registry())
        r = request(self.url("/api/v1/reload"), "POST", token=self.tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["services"], 2)

    def test_no_token_401_and_nothing_changes(self):
        before = self.registry()
        rev = self.e.ok("status")["registry"]["revision"]
        calls = [("POST", "/api/v1/ports", {"port": 8150, "service": "web"}),
                 ("DELETE", "/api/v1/ports/8100", None),
                 ("POST", "/api/v1/services", {"name": "x", "ports": ["8130"]}),
                 ("DELETE", "/api/v1/services/web", None),
                 ("POST", "/api/v1/reload", None),
                 ("POST", "/api/v1/verify", None)]
        for token in (None, "0" * 64, "short"):
            for method, path, body in calls:
                r = request(self.url(path), method, body, token=token)
                self.assertEqual(r.status, 401, f"{method} {path} token={token}: {r}")
                self.assertTrue(r.header("WWW-Authenticate").startswith("Bearer"))
                self.assertEqual(r.json["error"]["code"], 77)
        self.assertEqual(self.registry(), before)
        self.assertEqual(self.e.ok("status")["registry"]["revision"], rev)

    def test_foreign_origin_403_and_nothing_changes(self):
        before = self.registry()
        for origin in ("http://evil.example.com", "null", "https://127.0.0.1:1"):
            r = request(self.url("/api/v1/ports"), "POST", {"port": 8150, "service": "web"},
                        token=self.tok, headers={"Origin": origin})
            self.assertEqual(r.status, 403, f"{origin}: {r}")
            r = request(self.url("/api/v1/status"), headers={"Origin": origin})
            self.assertEqual(r.status, 403, f"{origin}: {r}")
        # DNS rebinding: a loopback listener answers only loopback host names.
        r = request(self.url("/api/v1/status"), headers={"Host": "evil.example.com"})
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.registry(), before)
        # The page's own origin is fine.
        own = self.url("").rstrip("/")
        r = request(self.url("/api/v1/ports"), "POST", {"port": 8150, "service": "web"},
                    token=self.tok, headers={"Origin": own})
        self.assertEqual(r.status, 201, r)

    def test_bad_bodies_4xx_and_daemon_survives(self):
        big = b'{"port": 8150, "service": "' + b"x" * (2 << 20) + b'"}'
        cases = [(b"{not json", 400), (b"[1,2]", 400), (b"", 400), (big, 413),
                 (b'{"port": 8150, "service": "web", "extra": 1}', 400),
                 (b'{"port": "8150", "service": "web"}', 400),
                 (b'{"port": 70000, "service": "web"}', 400),
                 (b'{"port": 8150, "service": "web"}\x00garbage', 400)]
        for body, status in cases:
            r = request(self.url("/api/v1/ports"), "POST", body, token=self.tok,
                        headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, status, f"{body[:40]!r}: {r}")
            self.assertIn("message", r.json["error"])
        r = request(self.url("/api/v1/ports"), "POST", b'{"port": 8150, "service": "web"}',
                    token=self.tok, headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415, r)
        self.assertEqual(request(self.url("/api/v1/status")).status, 200)
        self.assertNotIn(8150, [p for p, _, _ in self.registry()])

    def test_token_rotation(self):
        old = self.tok
        new = self.e.ok("token", "rotate")["token"]
        self.assertNotEqual(new, old)
        self.assertEqual(self.e.token(), new)
        self.assertEqual(self.e.ok("token", "show")["token"], new)
        r = request(self.url("/api/v1/verify"), "POST", token=old)
        self.assertEqual(r.status, 401)
        r = request(self.url("/api/v1/verify"), "POST", token=new)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["ok"], r.json)
        # The token survives a restart.
        self.e.stop()
        self.e.start()
        self.assertEqual(self.e.token(), new)
        r = request(self.e.api_url("/api/v1/verify"), "POST", token=new)
        self.assertEqual(r.status, 200, r)

    # ---- events ----
    def test_sse_delivers_denial_within_1s_and_resumes(self):
        sse = SSE(self.url("/api/v1/events/stream?type=bind_denied"))
        try:
            self.assertEqual(sse.status, 200)
            self.assertTrue(sse.headers["content-type"].startswith("text/event-stream"))
            t0 = time.time()
            self.assertEqual(self.e.bind_in(self.e.cgroup("squat"), 8100), errno.EPERM)
            ev_id, ev = sse.until(lambda e: e["port"] == 8100, timeout=1.0)
            self.assertLess(time.time() - t0, 1.0)
            self.assertEqual(ev["type"], "bind_denied")
            self.assertEqual(ev["owner"], "web")
            self.assertEqual(int(ev_id), ev["id"])
        finally:
            sse.close()
        # Missed while disconnected: replayed after Last-Event-ID, nothing else.
        self.assertEqual(self.e.bind_in(self.e.cgroup("squat2"), 8110), errno.EPERM)
        self.e.wait_event(lambda e: e["port"] == 8110, type="bind_denied")
        sse = SSE(self.url("/api/v1/events/stream?type=bind_denied"),
                  headers={"Last-Event-ID": ev_id})
        try:
            nid, ev2 = sse.next(timeout=2.0)
            self.assertEqual(ev2["port"], 8110)
            self.assertGreater(int(nid), int(ev_id))
        finally:
            sse.close()

    def test_denials_in_port_map_services_and_timeline_survive_restart(self):
        self.assertEqual(self.e.bind_in(self.e.cgroup("squat"), 8100), errno.EPERM)
        self.assertEqual(self.e.bind_in(self.e.svc_cgroup("db"), 8100), errno.EPERM)
        self.e.wait_event(lambda e: e["port"] == 8100 and e["service"] == "db",
                          type="bind_denied")
        pm = request(self.url("/api/v1/ports/map")).json
        p = next(x for x in pm["ports"] if x["port"] == 8100)
        self.assertEqual(p["denials"], 2)
        self.assertEqual(p["last_offender_service"], "db")  # the last one came from db
        self.assertEqual(p["last_offender_comm"], "python3")
        svcs = {s["name"]: s for s in request(self.url("/api/v1/services")).json}
        self.assertEqual(svcs["web"]["recent_denials"]["against_service"], 2)
        self.assertEqual(svcs["db"]["recent_denials"]["by_service"], 1)

        def last_minutes():
            tl = request(self.e.api_url("/api/v1/events/timeline?minutes=2")).json
            return sum(tl["series"]["bind_denied"])

        self.assertEqual(last_minutes(), 2)
        # Rebuilt from the journal, by the events' own time.
        self.e.stop()
        self.e.start()
        self.assertEqual(last_minutes(), 2)

    def test_sse_filters_by_service(self):
        sse = SSE(self.url("/api/v1/events/stream?service=db"))
        try:
            self.assertEqual(self.e.bind_in(self.e.cgroup("a"), 8100), errno.EPERM)  # web's
            self.assertEqual(self.e.bind_in(self.e.cgroup("b"), 8110), errno.EPERM)  # db's
            _, ev = sse.next(timeout=2.0)
            self.assertEqual(ev["port"], 8110)
            self.assertEqual(ev["owner"], "db")
        finally:
            sse.close()
        for bad in ("x1", "-1", "+1", "99999999999999999999999"):
            r = request(self.url("/api/v1/events/stream"), headers={"Last-Event-ID": bad})
            self.assertEqual(r.status, 400, bad)

    def test_metrics_parse_and_count_denial(self):
        def scrape():
            r = request(self.url("/metrics"))
            self.assertEqual(r.status, 200)
            self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
            return parse_prometheus(r.body.decode())

        m0 = scrape()
        before = metric(m0, "caelum_denials_total", component="ports")
        self.assertEqual(metric(m0, "caelum_reservations"), 3)
        self.assertEqual(metric(m0, "caelum_services", state="stopped"), 2)
        self.assertEqual(metric(m0, "caelum_component_attached", component="ports",
                                mode="enforce"), 1)
        self.assertIsNotNone(metric(m0, "caelum_bpf_prog_run_count_total", component="ports",
                                    program="cm_bind4"))
        self.assertIsNotNone(metric(m0, "caelum_bpf_map_capacity", map="cm_port_rules"))
        self.assertEqual(metric(m0, "caelum_events_lost_total", stage="sse",
                                reason="slow_consumer"), 0)
        self.assertEqual(self.e.bind_in(self.e.cgroup("squat"), 8100), errno.EPERM)
        self.e.wait_event(lambda e: e["port"] == 8100, type="bind_denied")
        m1 = scrape()
        self.assertEqual(metric(m1, "caelum_denials_total", component="ports"), before + 1)
        self.assertEqual(metric(m1, "caelum_events_total", type="bind_denied",
                                action="denied"), 1)
        # Bounded labels: no pids, no ports.
        for (name, labels) in m1:
            self.assertFalse({k for k, _ in labels} & {"pid", "port", "comm"}, name)

    def test_metrics_bpf_stats(self):
        e = self.env("stats", services=SERVICES, extra={"bpf_stats": True})
        self.assertEqual(e.bind_in(e.cgroup("x"), 8100), errno.EPERM)
        m = parse_prometheus(request(e.api_url("/metrics")).body.decode())
        self.assertEqual(metric(m, "caelum_bpf_stats_enabled"), 1)
        self.assertGreater(metric(m, "caelum_bpf_prog_run_count_total", component="ports",
                                  program="cm_bind4"), 0)

    # ---- transport ----
    def test_page_assets_gzip(self):
        r = request(self.url("/"), headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        html = gzip.decompress(r.body).decode()
        self.assertTrue(html.lower().startswith("<!doctype html"))
        r2 = request(self.url("/"))
        self.assertIsNone(r2.header("Content-Encoding"))
        self.assertEqual(r2.body.decode(), html)
        r3 = request(self.url("/"), headers={"If-None-Match": r.header("ETag")})
        self.assertEqual(r3.status, 304)
        for path in ("/app.js", "/app.css", "/vendor/uPlot.iife.min.js"):
            self.assertEqual(request(self.url(path)).status, 200, path)
        self.assertIn("script-src 'self'", r.header("content-security-policy"))

    def test_head_is_get_without_content(self):
        """RFC 9110 section 9.3.2: every GET resource answers HEAD with the GET's status and
        headers (Content-Length that of the GET body) and no content; a 405 says Allow."""
        import http.client
        u = urllib.parse.urlsplit(self.url(""))
        stable = ("/api/v1/services", "/api/v1/services/web", "/api/v1/services/web/where",
                  "/api/v1/ports", "/api/v1/ports/map", "/api/v1/databases", "/api/v1/hosts",
                  "/", "/app.js", "/api/v1/services/nope", "/api/v1/events?limit=abc")
        volatile = ("/api/v1/status", "/api/v1/resources", "/api/v1/events?limit=1",
                    "/api/v1/events/timeline?minutes=2", "/metrics")
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            for path in stable + volatile:
                conn.request("GET", path)
                g = conn.getresponse()
                gbody = g.read()
                # The same connection next: any byte after a HEAD's headers would be read
                # as the start of the following response and break it.
                conn.request("HEAD", path)
                h = conn.getresponse()
                self.assertEqual(h.read(), b"", path)
                self.assertEqual(h.status, g.status, path)
                self.assertEqual(h.getheader("Content-Type"), g.getheader("Content-Type"), path)
                self.assertIsNotNone(h.getheader("Content-Length"), path)
                if path in stable:
                    self.assertEqual(int(h.getheader("Content-Length")), len(gbody), path)
                else:
                    self.assertGreater(int(h.getheader("Content-Length")), 0, path)
            conn.request("GET", "/api/v1/ports")
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()
        # The events stream: its headers, no stream kept open for it.
        r = request(self.url("/api/v1/events/stream"), "HEAD", timeout=5,
                    headers={"Accept": "text/event-stream"})
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertEqual(r.header("Content-Type"), "text/event-stream")
        self.assertIsNone(r.header("Content-Length"))
        self.assertEqual(request(self.url("/api/v1/status")).json["http"]["event_streams"], 0)
        # 405 with Allow (RFC 9110 section 15.5.6), HEAD beside every GET
        for method, path, allow in (("POST", "/api/v1/status", "GET, HEAD"),
                                    ("PUT", "/api/v1/ports", "GET, HEAD, POST"),
                                    ("POST", "/api/v1/ports/8100", "DELETE"),
                                    ("PUT", "/api/v1/services/web", "GET, HEAD, DELETE"),
                                    ("GET", "/api/v1/reload", "POST"),
                                    ("HEAD", "/api/v1/verify", "POST"),
                                    ("DELETE", "/metrics", "GET, HEAD")):
            r = request(self.url(path), method, token=self.tok)
            self.assertEqual(r.status, 405, (method, path, r))
            self.assertEqual(r.header("Allow"), allow, (method, path))
            if method != "HEAD":
                self.assertIn(f"{method} is not allowed", r.json["error"]["message"])
        mcp = self.e.api_url("/mcp", listener="mcp")
        r = request(mcp, "PUT", b"{}", token=self.tok)
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Allow"), "GET, HEAD, POST, DELETE")

    def test_concurrent_clients(self):
        errors = []

        def worker():
            try:
                for _ in range(20):
                    r = request(self.url("/api/v1/ports"))
                    if r.status != 200 or len(r.json) != 3:
                        errors.append(r)
            except Exception as ex:  # noqa: BLE001 - collected and reported
                errors.append(ex)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


class ApiListeners(CaelumTest):
    def test_tls(self):
        e = self.env("tls", start=False, services=SERVICES)
        cert, key = os.path.join(e.dir, "cert.pem"), os.path.join(e.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        e.config["http"] = {"listen": "127.0.0.1:0", "cert": cert, "key": key}
        e.write_config()
        e.start()
        port = e.ok("status")["http"]["dashboard"]["port"]
        self.assertTrue(e.ok("status")["http"]["dashboard"]["tls"])
        r = request(f"https://127.0.0.1:{port}/api/v1/ports")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json), 3)
        with self.assertRaises(Exception):
            request(f"http://127.0.0.1:{port}/api/v1/ports", timeout=3)

    def test_listener_off_and_port_in_use(self):
        e = self.env("off", extra={"http": {"listen": "off"}})
        st = e.ok("status")["http"]
        self.assertEqual(st["dashboard"]["port"], 0)
        self.assertNotEqual(st["mcp"]["port"], 0)
        e0 = self.env("off2", extra={"http": {"listen": "off"}, "mcp": {"listen": "off"}})
        self.assertFalse(e0.ok("status")["http"]["enabled"])
        e2 = self.env("busy")
        port = e2.ok("status")["http"]["dashboard"]["port"]
        e3 = self.env("busy2", start=False, extra={"http": {"listen": f"127.0.0.1:{port}"}})
        e3.start(wait=False)
        self.assertEqual(e3.proc.wait(timeout=15), 69, e3.log())
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", e3.log())

    def test_bad_http_config_refused(self):
        e = self.env("badcfg", start=False, extra={"http": {"listen": "example.com:80"}})
        e.start(wait=False)
        self.assertEqual(e.proc.wait(timeout=15), 78)
        self.assertIn('http.listen: "example.com:80": "example.com" is not an IP address',
                      e.log())
