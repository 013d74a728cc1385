# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The dashboard in a real browser: Debian's Chromium, driven by tests/browser/dashboard.mjs.

The page must show a reservation with its owner, take a reservation and a release through its
own form (asking for the token), show an API error's message, and put a real denied bind
(made here, from a cgroup, answered EPERM by the kernel) into its live feed within 2 s.
CAELUM_SCREENSHOT=docs/dashboard.png keeps the full-page screenshot (relative to the tree).
"""
import errno
import html.parser
import json
import os
import select
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request

from harness import CaelumTest
from test_etcd import EtcdFixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
SCRIPT = os.path.join(BROWSER_DIR, "dashboard.mjs")
CHROMIUM = os.environ.get("CAELUM_CHROMIUM", "/usr/bin/chromium")
FEED_MS = 2000

# A host with some history: a running service with a health check, resource reservations,
# a GPU, a database, ports in and outside the managed ranges.
SERVICES = {
    "web": {"ports": ["8150/tcp"], "resources": {"cpus": 0.5, "memory_mb": 512}},
    "mcp-search": {"ports": ["8100/tcp", "8101/tcp"],  # + the health port, picked at run time
                   "resources": {"cpus": 1, "memory_mb": 1024, "tasks": 64}},
    "metrics": {"ports": ["9100/tcp", "8125/udp"], "resources": {"cpus": 0.5, "memory_mb": 256}},
    "etl": {"ports": ["8120/tcp"], "databases": [{"name": "analytics-db", "max_connections": 10}],
            "resources": {"cpus": 2, "memory_mb": 4096, "tasks": 128}},
    "train": {"ports": ["8130-8133/tcp"], "resources": {"cpus": 1, "gpus": ["gpu0"]}},
}
OWNED, OWNER = 8150, "web"      # checked on the page; squatted during the test
SQUATTED = 8188                 # managed, unreserved: a denied bind on a free port
RESERVE, RESERVER = 8160, "mcp-search"  # reserved and released through the page's form


def free_port():
    """A TCP port nobody on this host listens on now (outside the managed ranges)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readline(proc, timeout):
    """One line of proc's stdout, or None after timeout or at EOF."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return None
    line = proc.stdout.readline()
    return line.rstrip("\n") if line else None


class Inline(html.parser.HTMLParser):
    """Collects what the CSP (script-src/style-src 'self') would refuse."""

    def __init__(self):
        super().__init__()
        self.bad = []
        self.scripts = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if "src" not in a:
                self.bad.append("inline <script>")
            self.scripts.append(a.get("src"))
        if tag == "style":
            self.bad.append("inline <style>")
        for k in a:
            if k == "style" or k.startswith("on"):
                self.bad.append(f"<{tag} {k}=...>")


def need_browser():
    """node, npm, Chromium and playwright-core, or an AssertionError naming what is missing."""
    # Missing tools fail the test: a skipped browser test would read as a pass.
    node = shutil.which("node")
    if not node or not shutil.which("npm"):
        raise AssertionError("the dashboard test needs node and npm (apt-get install nodejs npm)")
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"the dashboard test needs Chromium at {CHROMIUM} "
                             "(apt-get install chromium)")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=BROWSER_DIR, capture_output=True, text=True, timeout=300)
        if p.returncode:
            raise AssertionError(f"npm ci in {BROWSER_DIR} failed ({p.returncode}):\n"
                                 f"{p.stdout}{p.stderr}")
    return node


class Dashboard(CaelumTest):
    @classmethod
    def setUpClass(cls):
        cls.node = need_browser()

    def make_env(self):
        e = self.env("dash", start=False, extra={"databases_dir": "databases.d"},
                     managed=("8100-8199", "9000-9009"))
        gpus = [os.path.join(e.dir, "nvidia0"), os.path.join(e.dir, "nvidia1")]
        os.mknod(gpus[0], 0o666 | stat.S_IFCHR, os.makedev(1, 7))   # /dev/full's numbers
        os.mknod(gpus[1], 0o666 | stat.S_IFCHR, os.makedev(1, 11))  # /dev/kmsg's numbers
        e.config["capacity"] = {"cpus": 8, "memory_mb": 16384,
                                "reserved": {"cpus": 1, "memory_mb": 1024},
                                "gpus": [{"id": "gpu0", "devices": [gpus[0]]},
                                         {"id": "gpu1", "devices": [gpus[1]]}]}
        e.write_config()
        dbs = os.path.join(e.dir, "databases.d")
        os.makedirs(dbs)
        with open(os.path.join(dbs, "analytics-db.json"), "w") as f:
            json.dump({"name": "analytics-db", "kind": "postgresql", "address": "127.0.0.1:5439",
                       "unmanaged": "allow"}, f)
        # mcp-search serves its health check on a port of its own: a fixed one may be taken.
        self.health_port = free_port()
        specs = json.loads(json.dumps(SERVICES))
        specs["mcp-search"]["ports"].append(f"{self.health_port}/tcp")
        specs["mcp-search"]["health"] = {"http": f"http://127.0.0.1:{self.health_port}/",
                                         "interval_s": 1, "timeout_s": 1}
        for name, spec in specs.items():
            e.write_service(name, json.dumps(dict({"name": name}, **spec)))
        e.start()
        return e

    def screenshot_path(self, e):
        want = os.environ.get("CAELUM_SCREENSHOT")
        if not want:
            return os.path.join(e.dir, "dashboard.png")
        path = want if os.path.isabs(want) else os.path.join(ROOT, want)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def test_page_has_no_inline_code(self):
        e = self.env("dashcsp", services={OWNER: [str(OWNED)]})
        with urllib.request.urlopen(e.api_url("/"), timeout=10) as r:
            csp = r.headers["Content-Security-Policy"]
            page = r.read().decode()
        self.assertIn("script-src 'self'", csp)
        p = Inline()
        p.feed(page)
        self.assertEqual(p.bad, [], "the CSP would refuse these")
        self.assertEqual(p.scripts, ["/vendor/uPlot.iife.min.js", "/app.js"])
        for path in p.scripts + ["/app.css", "/vendor/uPlot.min.css"]:
            with urllib.request.urlopen(e.api_url(path), timeout=10) as r:
                self.assertEqual(r.status, 200, path)
                self.assertGreater(len(r.read()), 100, path)

    def test_reserved_port_and_live_denial_in_browser(self):
        e = self.make_env()
        e.spawn_in(e.svc_cgroup("mcp-search"),
                   [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                    str(self.health_port)])
        squatter = e.cgroup("squatter")
        # History before the page opens: the feed's backlog and the chart start from it.
        for port in (8177, 8177, 8199, 8100):
            self.assertEqual(e.bind_in(squatter, port), errno.EPERM)
        self.assertEqual(e.bind_in(e.svc_cgroup("web"), 8120), errno.EPERM)
        shot = self.screenshot_path(e)
        started = time.time()
        # mcp-search's health check passes before the picture.
        deadline = time.time() + 10
        while e.ok("service", "show", "mcp-search").get("health", {}).get("state") != "passing":
            self.assertLess(time.time(), deadline, "mcp-search never became healthy")
            time.sleep(0.2)

        argv = [self.node, SCRIPT, "--url", e.api_url("/"), "--port", str(OWNED),
                "--owner", OWNER, "--screenshot", shot, "--feed-ms", str(FEED_MS),
                "--token", e.token(), "--reserve", str(RESERVE), "--service", RESERVER,
                "--chromium", CHROMIUM]
        proc = subprocess.Popen(argv, cwd=BROWSER_DIR, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = readline(proc, 90)
            if line != "READY":
                proc.kill()
                out, err = proc.communicate(timeout=30)
                self.fail(f"the page never got ready (got {line!r}):\n{out}{err}\n"
                          f"caelumd log:\n{e.log()}")
            # The real thing: binds the kernel refuses, on a reserved and on a free port.
            self.assertEqual(e.bind_in(squatter, OWNED), errno.EPERM)
            self.assertEqual(e.bind_in(squatter, SQUATTED), errno.EPERM)
            proc.stdin.write(f"DENIED {OWNED} {SQUATTED}\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, f"dashboard.mjs failed:\n{out}{err}")
        ok = [l for l in out.splitlines() if l.startswith("OK ")]
        self.assertEqual(len(ok), 1, out)
        res = json.loads(ok[0][3:])
        self.assertEqual((res["reserved"]["state"], res["reserved"]["owner"]), ("reserved", OWNER))
        for port in (OWNED, SQUATTED):
            self.assertLessEqual(res["feed_ms"][str(port)], FEED_MS)
            self.assertGreaterEqual(res["cells"][str(port)]["denials"], 1)
        self.assertEqual(res["cells"][str(OWNED)]["state"], "reserved")
        self.assertEqual(res["cells"][str(SQUATTED)]["state"], "denied")
        self.assertTrue(res["error_shown"])
        # The file backend has no machine registry: the cluster view shows the API's error.
        self.assertIn("no machine registry", res["cluster_error"])
        # What the page showed is what the daemon recorded.
        evs = e.wait_event(lambda ev: ev["port"] in (OWNED, SQUATTED), type="bind_denied")
        self.assertEqual({ev["port"] for ev in evs}, {OWNED, SQUATTED})
        self.assertEqual([p for p in e.ok("port", "list") if p["port"] == RESERVE], [],
                         f"{RESERVE} should be released again")
        self.assertGreaterEqual(os.path.getmtime(shot), started - 1, f"{shot} is not new")
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", shot)
        self.assertGreater(os.path.getsize(shot), 20000, shot)


class ClusterDashboard(EtcdFixture):
    """The cluster view on the etcd backend: two hosts up, a service found on the one that
    runs it (the fixtures of test_etcd.py: a 3-member etcd on loopback, hosts as caelumds)."""

    @classmethod
    def setUpClass(cls):
        cls.node = need_browser()
        super().setUpClass()

    def test_cluster_view_lists_both_hosts_and_where_a_service_runs(self):
        a, b = self.host("node-a"), self.host("node-b")
        self.apply(a, "web")
        a.ok("port", "reserve", "21810", "service", "web")
        self.wait_for(lambda: os.path.isdir(b.svc_cgroup("web")), what="web's cgroup on B")
        b.spawn_in(b.svc_cgroup("web"), ["sleep", "120"])
        self.wait_for(lambda: [w["host"] for w in a.ok("service", "where", "web")] == ["node-b"],
                      timeout=10, what="web found on B")
        shot = os.path.join(a.dir, "cluster.png")
        p = subprocess.run([self.node, SCRIPT, "--url", a.api_url("/"), "--screenshot", shot,
                            "--cluster", "node-a,node-b", "--where", "web=node-b",
                            "--chromium", CHROMIUM],
                           cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"dashboard.mjs failed:\n{p.stdout}{p.stderr}\n"
                                          f"caelumd log:\n{a.log()}")
        ok = [l for l in p.stdout.splitlines() if l.startswith("OK ")]
        self.assertEqual(len(ok), 1, p.stdout)
        view = json.loads(ok[0][3:])["cluster"]
        self.assertTrue(view["error_hidden"], view)
        self.assertEqual(sorted((h["name"], h["state"]) for h in view["hosts"]),
                         [("node-a", "up"), ("node-b", "up")])
        runs = {h["name"]: h["runs"] for h in view["hosts"]}
        self.assertEqual((runs["node-a"], runs["node-b"]), ([], ["web"]))
        self.assertEqual(view["where"]["web"], ["node-b"])
