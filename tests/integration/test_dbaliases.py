# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Database rules cover every address that reaches the database (include/caelum/connect.h):
aliases of a local destination, host addresses added and removed later, and names that move.

Real connects from real cgroups, asserting errno. Host addresses are added only to a veth
pair this test creates (its peer in a network namespace it creates), and removed with it."""
import errno
import json
import os
import socket
import subprocess
import threading
import time

from harness import CTL, CaelumTest
from httpc import request
from test_databases import connect_in, db_file, svc_file

TAG = os.getpid() % 10000
NET = f"10.251.{TAG % 250}"  # veth subnet: host side .1, namespace side .2 and .3


def free_port():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def eth_addresses():
    """The host's own non-loopback, non-link-local addresses (as the kernel lists them)."""
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    addrs = []
    for line in out.splitlines():
        f = line.split()
        fam, addr = f[2], f[3].split("/")[0]
        if f[1] == "lo" or addr.startswith("fe80") or f[1].startswith("cm"):
            continue
        addrs.append((4 if fam == "inet" else 6, addr))
    return addrs


class Listener:
    """A dual-stack TCP listener on the wildcard address, holding every accepted socket."""

    def __init__(self, port):
        self.s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.s.bind(("::", port))
        self.s.listen(64)
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                self.held.append(self.s.accept()[0])
            except OSError:
                return

    def close(self):
        self.s.close()
        for c in self.held:
            c.close()


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


class Veth:
    """cmh<TAG> on the host (NET.1/24) and its peer in namespace cmt<TAG> (NET.2, NET.3)."""

    def __init__(self):
        self.host, self.peer, self.ns = f"cmh{TAG}", f"cmp{TAG}", f"cmt{TAG}"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host, "type", "veth", "peer", "name", self.peer)
        sh("ip", "link", "set", self.peer, "netns", self.ns)
        sh("ip", "addr", "add", f"{NET}.1/24", "dev", self.host)
        sh("ip", "link", "set", self.host, "up")
        for cmd in (["addr", "add", f"{NET}.2/24", "dev", self.peer],
                    ["addr", "add", f"{NET}.3/24", "dev", self.peer],
                    ["link", "set", self.peer, "up"], ["link", "set", "lo", "up"]):
            sh("ip", "-n", self.ns, *cmd)

    def close(self):
        subprocess.run(["ip", "link", "del", self.host], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class Aliases(CaelumTest):
    """One local database, reached through every kind of alias."""

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.listener = Listener(cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()

    def setUp(self):
        self.e = self.env("dbalias", start=False, extra={"databases_dir": "databases.d"})
        db_file(self.e, "app-db", "tcp", f"localhost:{self.port}", unmanaged="deny")
        svc_file(self.e, "etl", databases=[{"name": "app-db", "max_connections": 2}])
        svc_file(self.e, "web")
        self.e.start()
        self.aliases = [(4, "127.0.0.1"), (4, "127.0.0.2"), (4, "127.254.3.9"), (6, "::1"),
                        (6, "::ffff:127.0.0.1"), (6, "::ffff:127.8.0.1"), (4, "0.0.0.0"),
                        (6, "::"), (6, "::ffff:0.0.0.0")] + eth_addresses()
        self.assertGreater(len(self.aliases), 9, "the host has an interface address")

    def test_undeclared_service_denied_through_every_alias(self):
        web = self.e.svc_cgroup("web")
        for fam, addr in self.aliases:
            for how in ("connect", "udp", "tfo"):
                with self.subTest(addr=addr, how=how):
                    self.assertEqual(connect_in(self.e, web, addr, self.port, fam, how)[0],
                                     errno.EPERM)
        # Control: another port of the same addresses is not the database.
        self.assertEqual(connect_in(self.e, web, "127.0.0.1", free_port())[0], errno.ECONNREFUSED)
        self.assertEqual(connect_in(self.e, self.e.svc_cgroup("etl"), "::", self.port, 6)[0], 0)
        # Denials through aliases fold into one event per (service, database, reason).
        ev = self.e.wait_event(lambda ev: ev["service"] == "web", type="db_connect_denied")
        self.assertEqual((ev[0]["database"], ev[0]["reason"]), ("app-db", "undeclared"))

    def test_unmanaged_process_denied_through_every_alias(self):
        other = self.e.cgroup("other")
        for fam, addr in self.aliases:
            with self.subTest(addr=addr):
                self.assertEqual(connect_in(self.e, other, addr, self.port, fam)[0], errno.EPERM)
                self.assertEqual(connect_in(self.e, other, addr, self.port, fam, "udp")[0],
                                 errno.EPERM)

    def test_cap_counts_across_aliases(self):
        etl = self.e.svc_cgroup("etl")
        flag = os.path.join(self.e.dir, "release")
        rc1, p1 = connect_in(self.e, etl, "127.0.0.1", self.port, hold=flag + "1")
        rc2, p2 = connect_in(self.e, etl, "::1", self.port, 6, hold=flag + "2")
        self.assertEqual((rc1, rc2), (0, 0))
        self.assertEqual(self.conns(), 2)
        for fam, addr in self.aliases:
            with self.subTest(addr=addr):
                self.assertEqual(connect_in(self.e, etl, addr, self.port, fam)[0], errno.EPERM)
        ev = self.e.wait_event(lambda ev: True, type="db_conn_limit")
        self.assertEqual((ev[0]["database"], ev[0]["connections"], ev[0]["max_connections"]),
                         ("app-db", 2, 2))
        open(flag + "1", "w").close()  # released on close, whichever alias opened it
        p1.wait(timeout=10)
        self.wait_conns(1)
        host4 = [a for f, a in self.aliases[9:] if f == 4][0]
        rc3, p3 = connect_in(self.e, etl, host4, self.port, hold=flag + "3")
        self.assertEqual(rc3, 0)
        self.assertEqual(self.conns(), 2)
        self.assertEqual(connect_in(self.e, etl, "::ffff:127.0.0.9", self.port, 6)[0], errno.EPERM)
        open(flag + "2", "w").close()
        open(flag + "3", "w").close()
        p2.wait(timeout=10)
        p3.wait(timeout=10)
        self.wait_conns(0)

    def test_second_database_on_the_same_local_port_is_shadowed(self):
        db_file(self.e, "app-db6", "tcp", f"[::1]:{self.port}", unmanaged="allow")
        self.e.ok("reload")
        show = self.e.ok("db", "show", "app-db6")
        self.assertEqual((show["shadowed_by"], show["local"]), ("app-db", True))
        # One destination, one rule: app-db's, not a second entry that would allow.
        self.assertEqual(connect_in(self.e, self.e.cgroup("other"), "::1", self.port, 6)[0],
                         errno.EPERM)

    def conns(self):
        return self.e.ok("db", "show", "app-db")["services"][0]["connections"]

    def wait_conns(self, n):
        deadline = time.time() + 5
        while time.time() < deadline and self.conns() != n:
            time.sleep(0.05)
        self.assertEqual(self.conns(), n)


class HostAddresses(CaelumTest):
    """An address added to a host interface later is LOCAL from then on, and not after."""

    def setUp(self):
        self.veth = Veth()
        self.addCleanup(self.veth.close)
        self.port = free_port()
        self.listener = Listener(self.port)
        self.addCleanup(self.listener.close)
        self.e = self.env("dbhost", start=False, extra={"databases_dir": "databases.d"})
        db_file(self.e, "app-db", "tcp", f"127.0.0.1:{self.port}", unmanaged="deny")
        svc_file(self.e, "web")
        self.e.start()

    def test_address_added_then_removed(self):
        web, extra = self.e.svc_cgroup("web"), f"{NET}.9"
        # Before: NET.9 is in the namespace's subnet, not the host's: UDP goes out the veth.
        self.assertEqual(connect_in(self.e, web, extra, self.port, how="udp")[0], 0)
        self.assertEqual(connect_in(self.e, web, f"{NET}.1", self.port, how="udp")[0],
                         errno.EPERM)  # the veth's own address, there at start
        sh("ip", "addr", "add", f"{extra}/32", "dev", self.veth.host)
        self.assertEqual(self.wait_errno(web, extra, errno.EPERM), errno.EPERM)
        self.assertEqual(connect_in(self.e, web, extra, self.port)[0], errno.EPERM)
        sh("ip", "addr", "del", f"{extra}/32", "dev", self.veth.host)
        self.assertEqual(self.wait_errno(web, extra, 0), 0)

    def wait_errno(self, cg, addr, want, timeout=5):
        deadline = time.time() + timeout
        while True:
            rc = connect_in(self.e, cg, addr, self.port, how="udp")[0]
            if rc == want or time.time() > deadline:
                return rc
            time.sleep(0.1)


class NameMoves(CaelumTest):
    """A name that moves is followed within resolve_interval_s, without a reload; a name that
    stops resolving keeps its last addresses. caelumd runs in a private mount namespace with
    its own /etc/hosts (the test's processes keep the host's)."""

    def setUp(self):
        self.veth = Veth()
        self.addCleanup(self.veth.close)
        self.e = self.env("dbmove", start=False, extra={"databases_dir": "databases.d"})
        self.hosts = os.path.join(self.e.dir, "hosts")
        self.write_hosts(f"127.0.0.1 localhost\n127.0.0.2 pg.caelum.test\n"
                         f"{NET}.2 far.caelum.test\n")
        # Names come from that file only: no DNS query leaves the host.
        nss = os.path.join(self.e.dir, "nsswitch.conf")
        with open(nss, "w") as f:
            f.write("hosts: files\n")
        self.port = free_port()
        d = os.path.join(self.e.dir, "databases.d")
        os.makedirs(d, exist_ok=True)
        far_every = 3600 if "on_demand" in self._testMethodName else 1
        for name, host, every in (("near", "pg.caelum.test", 1),
                                  ("far", "far.caelum.test", far_every)):
            with open(os.path.join(d, f"{name}.json"), "w") as f:
                f.write('{"name": "%s", "kind": "tcp", "address": "%s:%d", "unmanaged": "deny", '
                        '"resolve_interval_s": %d}' % (name, host, self.port, every))
        svc_file(self.e, "web")
        self.e.start(prefix=["unshare", "-m", "--propagation", "private", "sh", "-c",
                             f'mount --bind "{self.hosts}" /etc/hosts && '
                             f'mount --bind "{nss}" /etc/nsswitch.conf && exec "$0" "$@"'])

    def write_hosts(self, text):
        with open(self.hosts, "w") as f:  # in place: the bind mount holds the inode
            f.write(text)

    def moved(self, name, addr, timeout=5):
        return self.e.wait_event(lambda ev: ev["database"] == name and
                                 any(addr in a for a in ev["to"]),
                                 timeout=timeout, type="db_address_changed")

    def test_loopback_move_followed_without_reload(self):
        self.assertEqual(self.e.ok("db", "show", "near")["addresses"], [f"127.0.0.2:{self.port}"])
        self.write_hosts(f"127.0.0.1 localhost\n127.0.0.3 pg.caelum.test\n{NET}.2 far.caelum.test\n")
        t0 = time.time()
        ev = self.moved("near", "127.0.0.3")
        self.assertTrue(ev, self.e.log())
        self.assertLess(time.time() - t0, 3)
        self.assertEqual((ev[0]["from"], ev[0]["to"], ev[0]["trigger"]),
                         ([f"127.0.0.2:{self.port}"], [f"127.0.0.3:{self.port}"], "interval"))
        show = self.e.ok("db", "show", "near")
        self.assertEqual(show["addresses"], [f"127.0.0.3:{self.port}"])
        self.assertEqual(show["previous_addresses"], [f"127.0.0.2:{self.port}"])
        self.assertEqual(connect_in(self.e, self.e.svc_cgroup("web"), "127.0.0.3", self.port)[0],
                         errno.EPERM)

    def test_remote_move_swaps_kernel_rules(self):
        web = self.e.svc_cgroup("web")
        self.assertEqual(connect_in(self.e, web, f"{NET}.2", self.port, how="udp")[0], errno.EPERM)
        self.assertEqual(connect_in(self.e, web, f"{NET}.3", self.port, how="udp")[0], 0)
        self.write_hosts(f"127.0.0.1 localhost\n127.0.0.2 pg.caelum.test\n{NET}.3 far.caelum.test\n")
        self.assertTrue(self.moved("far", f"{NET}.3"), self.e.log())
        self.assertEqual(connect_in(self.e, web, f"{NET}.3", self.port, how="udp")[0], errno.EPERM)
        self.assertEqual(connect_in(self.e, web, f"{NET}.2", self.port, how="udp")[0], 0)

    def test_on_demand_resolve(self):
        # far is looked up hourly here: only the request can see the change.
        self.assertEqual(self.e.ok("db", "show", "far")["resolve_interval_s"], 3600)
        self.write_hosts(f"127.0.0.1 localhost\n127.0.0.2 pg.caelum.test\n{NET}.3 far.caelum.test\n")
        t0 = time.time()
        show = self.e.ok("db", "resolve", "far")
        self.assertLess(time.time() - t0, 3)
        self.assertEqual(show["addresses"], [f"{NET}.3:{self.port}"])
        ev = self.moved("far", f"{NET}.3", timeout=1)
        self.assertEqual(ev[-1]["trigger"], "request")
        out = self.e.ok("db", "show", "far", json_out=False)
        self.assertIn(f"previous addresses {NET}.2:{self.port} (changed 20", out)
        self.assertEqual(connect_in(self.e, self.e.svc_cgroup("web"), f"{NET}.3", self.port,
                                    how="udp")[0], errno.EPERM)
        r = self.e.ctl("db", "resolve", "nope")
        self.assertEqual(r.rc, 1)
        self.assertIn("not found", r.json["error"])

    def test_name_that_stops_resolving_keeps_last_addresses(self):
        web = self.e.svc_cgroup("web")
        self.write_hosts("127.0.0.1 localhost\n127.0.0.2 pg.caelum.test\n")
        ev = self.e.wait_event(lambda ev: ev["database"] == "far", timeout=5,
                               type="db_resolve_failed")
        self.assertTrue(ev, self.e.log())
        self.assertEqual((ev[0]["severity"], ev[0]["addresses"]),
                         ("warning", [f"{NET}.2:{self.port}"]))
        time.sleep(2.5)  # more failed lookups: one event, the rule stays
        self.assertEqual(len(self.e.events(type="db_resolve_failed")), 1)
        show = self.e.ok("db", "show", "far")
        self.assertEqual(show["addresses"], [f"{NET}.2:{self.port}"])
        self.assertIn("far.caelum.test", show["resolve_error"])
        self.assertEqual(connect_in(self.e, web, f"{NET}.2", self.port, how="udp")[0], errno.EPERM)
        self.e.ok("reload")  # a reload does not empty it either
        time.sleep(0.5)
        self.assertEqual(self.e.ok("db", "show", "far")["addresses"], [f"{NET}.2:{self.port}"])
        self.assertEqual(connect_in(self.e, web, f"{NET}.2", self.port, how="udp")[0], errno.EPERM)

    def test_on_demand_resolve_through_api_and_mcp(self):
        url, tok = self.e.api_url, self.e.token()
        self.write_hosts(f"127.0.0.1 localhost\n127.0.0.2 pg.caelum.test\n{NET}.3 far.caelum.test\n")
        r = request(url("/api/v1/databases/far/resolve"), "POST", token=tok)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["name"], "far")
        self.assertTrue(self.moved("far", f"{NET}.3"), self.e.log())
        r = request(url("/api/v1/databases/far"), token=tok)
        self.assertEqual((r.json["addresses"], r.json["previous_addresses"]),
                         ([f"{NET}.3:{self.port}"], [f"{NET}.2:{self.port}"]))
        self.assertIsNotNone(r.json["addresses_changed_at"])
        self.assertEqual(request(url("/api/v1/databases/far/resolve"), token=tok).status, 405)
        self.assertEqual(request(url("/api/v1/databases/nope/resolve"), "POST",
                                 token=tok).status, 404)
        # MCP: the tool asks, recent_events shows the change.
        self.write_hosts(f"127.0.0.1 localhost\n127.0.0.2 pg.caelum.test\n{NET}.2 far.caelum.test\n")
        call = lambda i, name, args: {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                      "params": {"name": name, "arguments": args}}
        msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                call(2, "resolve_database", {"name": "far"})]
        out = self.mcp(msgs)
        self.assertFalse(out[1]["result"].get("isError"), out[1])
        self.assertEqual(out[1]["result"]["structuredContent"]["name"], "far")
        self.assertTrue(self.moved("far", f"{NET}.2"), self.e.log())
        out = self.mcp(msgs[:2] + [call(3, "recent_events", {"type": "db_address_changed"})])
        evs = out[1]["result"]["structuredContent"]["events"]
        self.assertEqual([(ev["trigger"], ev["to"]) for ev in evs],
                         [("request", [f"{NET}.3:{self.port}"]),
                          ("request", [f"{NET}.2:{self.port}"])])

    def mcp(self, msgs):
        text = "".join(json.dumps(m) + "\n" for m in msgs)
        r = subprocess.run([CTL, "-c", self.e.config_path, "mcp"], input=text,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines()]
