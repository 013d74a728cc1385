# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The etcd backend: two caelumd "hosts" (each its own cgroup subtree, bpffs dir, state dir and
listeners) share one registry in a real 3-member etcd on loopback (etcdcluster.py). Binds are
real and assert errno; failures are real (SIGSTOP, kill -9 of etcd members)."""
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from etcdcluster import BASE_PORT, EtcdCluster
from harness import CTL, CaelumTest
from httpc import mcp_tool, request
import test_databases  # its connect_in (a module import: its tests are not collected here)

_n = 0


class EtcdTest(CaelumTest):
    def wait_for(self, pred, timeout=5.0, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.05)
        self.fail(f"timed out after {timeout} s waiting for {what}")


class EtcdFixture(EtcdTest):
    """A 3-member etcd for the class, a fresh key prefix per test, hosts sharing it."""

    @classmethod
    def setUpClass(cls):
        cls.etcd = EtcdCluster()

    @classmethod
    def tearDownClass(cls):
        cls.etcd.close()

    def setUp(self):
        global _n
        _n += 1
        self.prefix = f"t{os.getpid()}-{_n}/"
        # every member answers again (a failed test must not leave one stopped)
        self.addCleanup(self._heal)

    def _heal(self):
        for i in range(self.etcd.n):
            p = self.etcd.procs[i]
            if p.poll() is None:
                self.etcd.resume(i)
            else:
                self.etcd.restart(i)
        self.etcd.wait_healthy()

    def registry(self, order=(0, 1, 2), **kw):
        r = {"backend": "etcd", "endpoints": [self.etcd.endpoint(i) for i in order],
             "prefix": self.prefix, "timeout_ms": 4000}
        r.update(kw)
        return r

    def host(self, name, start=True, **kw):
        return self.env(name, start=start, managed=(),
                        extra={"host": name, "registry": self.registry(**kw)})

    def apply(self, env, name):
        path = os.path.join(env.dir, f"{name}.json")
        with open(path, "w") as f:
            json.dump({"name": name, "ports": []}, f)
        env.ok("service", "apply", path)

    def ports(self, env):
        return {(p["port"], p["service"]) for p in env.ok("port", "list")}

    def race(self, n, call):
        """call(i) for i in range(n) at once, from n threads: exactly one may succeed, the
        others are refused naming an owner. The winner's i and every result."""
        results = {}
        go = threading.Event()

        def run(i):
            go.wait()
            results[i] = call(i)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join()
        winners = [i for i, r in results.items() if r.rc == 0]
        self.assertEqual(len(winners), 1, results)
        for i, r in results.items():
            if i not in winners:
                self.assertEqual(r.rc, 78, r)
                self.assertIn("already reserved", r.json["error"], r)
        return winners[0], results

    def etcd_resv(self):
        kvs, _ = self.etcd.range_prefix(self.prefix + "reservations/")
        return {(int(k.split("/")[-2]), json.loads(v[0])["service"]) for k, v in kvs.items()}


class EtcdBackend(EtcdFixture):
    # ---- one registry, two hosts ----

    def test_reservation_made_on_a_is_enforced_on_b(self):
        a, b = self.host("node-a"), self.host("node-b")
        self.apply(a, "web")
        self.wait_for(lambda: b.ok("service", "show", "web"), what="web on B")
        a.ok("port", "reserve", "20500", "service", "web")
        self.wait_for(lambda: (20500, "web") in self.ports(b), what="20500 on B")
        self.assertDenied(b, b.cgroup("other"), 20500)
        self.assertAllowed(b, b.svc_cgroup("web"), 20500)
        self.assertDenied(a, a.cgroup("other"), 20500)
        # released on B: free again on A, through A's watch
        b.ok("port", "release", "20500")
        self.wait_for(lambda: a.bind_in(a.cgroup("other"), 20500) == 0, what="release on A")
        st = a.ok("status")["registry"]
        self.assertEqual(st["backend"], "etcd")
        self.assertFalse(st["stale"])
        self.assertEqual(st["prefix"], self.prefix)

    def test_entries_other_writers_leave_unreadable_are_rejected_not_fatal(self):
        """What another writer puts straight into etcd and this caelumd cannot read (a newer
        version's field, a value that is not an object, a key it cannot place) is not
        applied and is reported (status, event); the rest is enforced, the last readable
        value of a changed service stays in force, and a restart starts. Before: a value
        that is not an object aborted every caelumd (a json-c assertion), and any unreadable
        entry made every caelumd exit 78 at its next start."""
        a = self.host("rj-a")
        self.apply(a, "alpha")
        a.ok("port", "reserve", "20520", "service", "alpha")
        self.etcd.put(self.prefix + "services/alpha", json.dumps(
            {"name": "alpha", "ports": [], "origin": "api", "source": None, "from_v3": 1}))
        self.etcd.put(self.prefix + "services/beta", "[1]")
        self.etcd.put(self.prefix + "reservations/70000/tcp",
                      json.dumps({"service": "alpha", "origin": "runtime"}))

        def reasons():
            return {r["key"]: r["reason"] for r in a.ok("status")["registry"]["rejected"]}
        self.wait_for(lambda: len(reasons()) == 3, what="three rejected entries")
        why = reasons()
        self.assertIn("from_v3: unknown key", why["services/alpha"])
        self.assertIn("value is array, not an object", why["services/beta"])
        self.assertIn("malformed reservation key", why["reservations/70000/tcp"])
        self.assertEqual(a.proc.poll(), None)
        # alpha as it was last readable stays in force, with its reservation
        self.assertIn((20520, "alpha"), self.ports(a))
        self.assertDenied(a, a.cgroup("other"), 20520)
        self.assertAllowed(a, a.svc_cgroup("alpha"), 20520)
        evs = a.wait_event(lambda e: True, type="registry_entry_rejected")
        self.assertTrue(evs)
        self.assertIn("services/alpha", [x["key"] for e in evs for x in e["entries"]])
        text = a.ok("status", json_out=False)
        self.assertIn("3 entries cannot be read and are not applied", text)
        # a restart starts: alpha is unreadable now, so its reservation is inconsistent,
        # reported and enforced as it stands (nobody may bind 20520)
        a.stop()
        a.start()
        why = reasons()
        self.assertEqual(set(why), {"services/alpha", "services/beta", "reservations/70000/tcp",
                                    "(consistency)"})
        self.assertIn("reserved for unknown service 'alpha'", why["(consistency)"])
        self.assertDenied(a, a.cgroup("other"), 20520)
        # the repair, from this host: the reservation released, alpha written anew
        a.ok("port", "release", "20520")
        self.apply(a, "alpha")
        self.wait_for(lambda: set(reasons()) == {"services/beta", "reservations/70000/tcp"},
                      what="alpha readable and the registry consistent again")

    def test_concurrent_reservations_of_one_port_have_one_winner(self):
        a, b = self.host("node-a"), self.host("node-b")
        names = [f"s{i}" for i in range(10)]
        for n in names:
            self.apply(a, n)
        self.wait_for(lambda: len(b.ok("service", "list")) == 10, what="10 services on B")
        won, results = self.race(10, lambda i: (a if i % 2 == 0 else b).ctl(
            "port", "reserve", "20600", "service", names[i]))
        owner = names[won]
        for i, r in results.items():
            if i != won:
                self.assertIn(f"already reserved by service '{owner}'", r.json["error"], r)
        self.assertEqual(self.etcd_resv(), {(20600, owner)})
        for env in (a, b):
            self.wait_for(lambda: (20600, owner) in self.ports(env), what="the winner everywhere")
            self.assertDenied(env, env.cgroup("other"), 20600)
            self.assertAllowed(env, env.svc_cgroup(owner), 20600)

    def test_host_name_taken_by_another_caelumd_is_refused(self):
        """A second caelumd (its own state, pins and cgroups) configured with a host name a
        live caelumd already has: it exits 78 naming the name and the other's dashboard, and
        the first keeps its record; the first restarted (same installation) comes back."""
        a = self.host("node-a")
        twin = self.env("twin", start=False, managed=(),
                        extra={"host": "node-a", "registry": self.registry()})
        p = twin.start(wait=False)
        self.assertEqual(p.wait(timeout=30), 78, twin.log())
        self.assertIn('host: "node-a" is the name of another caelumd in this registry',
                      twin.log())
        rec = a.ok("host", "show", "node-a")
        self.assertEqual(rec["state"], "up")
        a.stop(signal.SIGKILL)
        a.start()  # its own record, still under the dead one's lease: taken over
        self.assertEqual(a.ok("host", "show", "node-a")["instance"], rec["instance"])

    def test_concurrent_allocs_across_hosts_get_distinct_ports(self):
        """port alloc through two hosts at once, for one service and for another: every
        caller gets a port no other caller got (a lost race moves on to the next free port,
        even when the winner was the same service), and none is refused while ports
        remain."""
        envs = [self.env(n, managed=("20700-20799",),
                         extra={"host": n, "registry": self.registry()})
                for n in ("node-a", "node-b")]
        a, b = envs
        self.apply(a, "web")
        self.apply(a, "api")
        self.wait_for(lambda: len(b.ok("service", "list")) == 2, what="2 services on B")
        results, go = {}, threading.Event()

        def run(i):
            go.wait()
            results[i] = envs[i % 2].ctl("port", "alloc", "service", "api" if i % 3 == 0
                                          else "web")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join()
        for r in results.values():
            self.assertEqual(r.rc, 0, r)
        got = [(r.json["port"], r.json["service"]) for r in results.values()]
        ports = [p for p, _ in got]
        self.assertEqual(len(set(ports)), len(ports), sorted(got))
        self.assertEqual(self.etcd_resv(), set(got))

    # ---- host-only reservations ----

    def host_ports(self, env):
        return {(p["port"], p.get("host"), p["service"]) for p in env.ok("port", "list")}

    def test_host_only_reservation_is_enforced_on_its_host_only(self):
        a, b = self.host("node-a"), self.host("node-b")
        self.apply(a, "web")
        self.apply(a, "api")
        self.wait_for(lambda: b.ok("service", "show", "api"), what="api on B")
        r = a.ok("port", "reserve", "20550", "service", "web", "host", "node-b")
        self.assertEqual(r["host"], "node-b")
        self.wait_for(lambda: (20550, "node-b", "web") in self.host_ports(b), what="on B")
        self.assertDenied(b, b.cgroup("other"), 20550)
        self.assertDenied(b, b.svc_cgroup("api"), 20550)
        self.assertAllowed(b, b.svc_cgroup("web"), 20550)
        # not on A: the host that made it
        self.assertAllowed(a, a.cgroup("other"), 20550)
        self.assertAllowed(a, a.svc_cgroup("api"), 20550)
        # A holds the same port for another service, on A only
        b.ok("port", "reserve", "20550", "service", "api", "host", "node-a")
        self.wait_for(lambda: a.bind_in(a.svc_cgroup("web"), 20550) == errno.EPERM,
                      what="20550 api's on A")
        self.assertAllowed(a, a.svc_cgroup("api"), 20550)
        self.assertDenied(b, b.svc_cgroup("api"), 20550)
        # nobody may take it on every host now; B may not take it on B for another service
        r = a.ctl("port", "reserve", "20550", "service", "web")
        self.assertEqual(r.rc, 78, r)
        self.assertIn("already reserved on host 'node-a' by service 'api'", r.json["error"])
        r = a.ctl("port", "reserve", "20550", "service", "api", "host", "node-b")
        self.assertEqual(r.rc, 78, r)
        self.assertIn("already reserved on host 'node-b' by service 'web'", r.json["error"])
        # a cluster-wide owner excludes host-only ones of other services
        a.ok("port", "reserve", "20551", "service", "web")
        r = b.ctl("port", "reserve", "20551", "service", "api", "host", "node-b")
        self.assertEqual(r.rc, 78, r)
        self.assertIn("already reserved by service 'web'", r.json["error"])
        kvs, _ = self.etcd.range_prefix(self.prefix + "hostreservations/")
        self.assertEqual(sorted(kvs), [self.prefix + "hostreservations/node-a/20550/tcp",
                                       self.prefix + "hostreservations/node-b/20550/tcp"])
        # released on A for B: free on B
        a.ok("port", "release", "20550", "host", "node-b")
        self.wait_for(lambda: b.bind_in(b.cgroup("other"), 20550) == 0, what="release on B")
        self.assertDenied(a, a.cgroup("other"), 20550)

    # ---- host-only databases ----

    def test_host_only_database_is_enforced_on_its_host_only(self):
        a, b = self.host("node-a"), self.host("node-b")
        port = 20590  # nothing listens: an allowed connect is refused by the kernel
        path = os.path.join(a.dir, "pg.json")
        with open(path, "w") as f:
            json.dump({"name": "pg", "kind": "tcp", "address": f"127.0.0.1:{port}",
                       "unmanaged": "deny"}, f)
        self.assertEqual(a.ok("db", "apply", path, "host", "node-b")["host"], "node-b")
        kvs, _ = self.etcd.range_prefix(self.prefix + "hostdatabases/")
        self.assertEqual(sorted(kvs), [self.prefix + "hostdatabases/node-b/pg"])
        svc = os.path.join(a.dir, "etl.json")
        with open(svc, "w") as f:
            json.dump({"name": "etl", "ports": [], "databases": [{"name": "pg"}]}, f)
        a.ok("service", "apply", svc)
        self.wait_for(lambda: b.ok("db", "show", "pg")["addresses"], what="pg resolved on B")
        # on B: pg's rules (etl may, nobody else); on A: no database at that address
        self.wait_for(lambda: test_databases.connect_in(b, b.cgroup("other"), "127.0.0.1",
                                                         port)[0] == errno.EPERM,
                      what="pg enforced on B")
        self.assertEqual(test_databases.connect_in(b, b.svc_cgroup("etl"), "127.0.0.1",
                                                   port)[0], errno.ECONNREFUSED)
        self.assertEqual(test_databases.connect_in(a, a.cgroup("other"), "127.0.0.1",
                                                   port)[0], errno.ECONNREFUSED)
        self.assertEqual([(d["name"], d["host"]) for d in a.ok("db", "list")],
                         [("pg", "node-b")])
        # one name is cluster-wide or host-only: refused on every host, naming both
        r = b.ctl("db", "apply", path)
        self.assertEqual(r.rc, 78, r)
        self.assertIn("database 'pg' is defined on host 'node-b'", r.json["error"])

    def test_host_only_and_cluster_wide_race_have_one_winner(self):
        """Cluster-wide reservations (reservations/P/tcp) and host-only ones
        (hostreservations/node-b/P/tcp) of one port are different keys: only the guard
        (portowners/P/tcp) lets exactly one of them commit."""
        a, b = self.host("node-a"), self.host("node-b")
        names = [f"s{i}" for i in range(10)]
        for n in names:
            self.apply(a, n)
        self.wait_for(lambda: len(b.ok("service", "list")) == 10, what="10 services on B")
        for rnd, port in enumerate((20650, 20651, 20652)):
            def reserve(i, port=port, rnd=rnd):
                env = a if (i + rnd) % 2 == 0 else b
                where = ("host", "node-b") if i % 2 else ()
                return env.ctl("port", "reserve", str(port), "service", names[i], *where)

            won, _ = self.race(10, reserve)
            kvs, _ = self.etcd.range_prefix(self.prefix + "reservations/")
            hkvs, _ = self.etcd.range_prefix(self.prefix + "hostreservations/")
            held = [k for k in list(kvs) + list(hkvs) if k.endswith(f"/{port}/tcp")]
            self.assertEqual(len(held), 1, held)
            owner = names[won]
            want = (port, "node-b" if won % 2 else None, owner)
            self.wait_for(lambda: want in self.host_ports(b), what="the winner on B")
            self.assertDenied(b, b.cgroup("other"), port)
            self.assertAllowed(b, b.svc_cgroup(owner), port)

    # ---- failures ----

    def test_quorum_loss_keeps_enforcing_and_fails_mutations_with_69(self):
        a, b = self.host("node-a"), self.host("node-b")
        self.apply(a, "web")
        a.ok("port", "reserve", "20700", "service", "web")
        self.wait_for(lambda: (20700, "web") in self.ports(b), what="20700 on B")
        self.etcd.pause(0)
        self.etcd.pause(1)
        self.assertDenied(b, b.cgroup("other"), 20700)
        t = time.time()
        r = a.ctl("port", "reserve", "20701", "service", "web")
        took = time.time() - t
        self.assertEqual(r.rc, 69, r)
        self.assertLess(took, 15.0)
        self.assertIn("unavailable", r.json["error"])
        # the API and an MCP tool say the same (the reason in parentheses aside)
        same = lambda m: re.sub(r"unavailable \([^)]*\)", "unavailable (...)", m)
        r2 = request(a.api_url("/api/v1/ports"), "POST", {"port": 20701, "service": "web"},
                     token=a.token(), timeout=30)
        self.assertEqual(r2.status, 503, r2)
        self.assertEqual(same(r2.json["error"]["message"]), same(r.json["error"]))
        self.assertIn("not confirmed", r2.json["error"]["message"])
        res = mcp_tool(a.api_url("/mcp", listener="mcp"), a.token(), "reserve_port",
                       {"port": 20701, "service": "web"})
        self.assertTrue(res["isError"], res)
        self.assertEqual(same(res["content"][0]["text"]), same(r.json["error"]))
        # never applied locally
        self.assertNotIn((20701, "web"), self.ports(a))
        self.assertAllowed(a, a.cgroup("other"), 20701)
        self.assertDenied(b, b.cgroup("other"), 20700)
        self.etcd.resume(0)
        self.etcd.resume(1)
        deadline = time.time() + 20
        while True:
            r = a.ctl("port", "reserve", "20701", "service", "web")
            if r.rc == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(r.rc, 0, r)
        self.wait_for(lambda: b.bind_in(b.cgroup("other"), 20701) == errno.EPERM, timeout=10,
                      what="20701 denied on B after quorum returned")

    def test_quorum_loss_pending_reservation_does_not_stall_the_daemon(self):
        """A reservation waiting for etcd (no quorum) holds only its own request: status over
        the control socket and the API and reads answer at once meanwhile; the reservation
        then fails with 69; clients that go away mid-call leave the daemon healthy."""
        a = self.host("node-a")
        self.apply(a, "web")
        status_url, tok = a.api_url("/api/v1/status"), a.token()
        ports_url = a.api_url("/api/v1/ports")

        def reserve(port):
            return subprocess.Popen([CTL, "-c", a.config_path, "-j", "port", "reserve",
                                     str(port), "service", "web"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def timed(fn):
            t = time.time()
            r = fn()
            return r, time.time() - t

        self.etcd.pause(0)
        self.etcd.pause(1)
        pending = reserve(20720)
        killed = reserve(20721)
        # an API reservation whose client hangs up while it waits
        gone = socket.create_connection(("127.0.0.1", int(ports_url.split(":")[2].split("/")[0])))
        body = json.dumps({"port": 20722, "service": "web"})
        gone.sendall((f"POST /api/v1/ports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                      f"{body}").encode())
        time.sleep(0.5)
        self.assertIsNone(pending.poll(), "the reservation is waiting for etcd")
        killed.kill()
        killed.wait()
        gone.close()
        slowest = 0.0
        for _ in range(5):
            r, took = timed(lambda: a.ctl("status"))
            self.assertEqual(r.rc, 0, r)
            slowest = max(slowest, took)
            r, took = timed(lambda: a.ctl("port", "list"))
            self.assertEqual(r.rc, 0, r)
            slowest = max(slowest, took)
            resp, took = timed(lambda: request(status_url, token=tok, timeout=5))
            self.assertEqual(resp.status, 200, resp)
            slowest = max(slowest, took)
            time.sleep(0.1)
        self.assertLess(slowest, 0.5,
                        f"a request waited for the pending commit: {slowest:.3f} s")
        self.assertIsNone(pending.poll(), "answered before etcd's budget ran out")
        out, err = pending.communicate(timeout=20)
        self.assertEqual(pending.returncode, 69, (out, err))
        self.assertIn("unavailable", json.loads(out)["error"])
        self.assertNotIn((20720, "web"), self.ports(a))
        self.assertAllowed(a, a.cgroup("other"), 20720)
        # MCP (stdio bridge): the same outcome, as the tool's error
        res = self.mcp_call(a, "reserve_port", {"port": 20723, "service": "web"})
        self.assertTrue(res["isError"], res)
        self.assertIn("unavailable", res["content"][0]["text"])
        self.assertIsNone(a.proc.poll(), "caelumd is running")
        self.etcd.resume(0)
        self.etcd.resume(1)
        deadline = time.time() + 20
        while True:
            r = a.ctl("port", "reserve", "20721", "service", "web")
            if r.rc == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(r.rc, 0, r)
        self.assertDenied(a, a.cgroup("other"), 20721)
        self.assertEqual(a.ctl("status").rc, 0)

    def test_kill_leader_during_writes_loses_no_acknowledged_reservation(self):
        a, b = self.host("node-a"), self.host("node-b")
        self.apply(a, "web")
        self.wait_for(lambda: b.ok("service", "show", "web"), what="web on B")
        acked, ambiguous = set(), set()
        ports = list(range(21000, 21120))
        killed = threading.Event()

        def killer():
            time.sleep(0.4)
            self.leader = self.etcd.leader()
            self.etcd.kill(self.leader)
            killed.set()

        t = threading.Thread(target=killer)
        t.start()
        for i, port in enumerate(ports):
            env = a if i % 2 == 0 else b
            r = env.ctl("port", "reserve", str(port), "service", "web")
            if r.rc == 0:
                acked.add(port)
            else:
                self.assertIn(r.rc, (69, 1), r)
                ambiguous.add(port)
        t.join()
        self.assertTrue(killed.is_set())
        self.etcd.restart(self.leader)
        self.etcd.wait_healthy()
        in_etcd = {p for p, s in self.etcd_resv()}
        self.assertEqual(acked - in_etcd, set(), "acknowledged reservations lost in etcd")
        self.assertGreater(len(acked), 60)
        # an ambiguous call can be retried: saved (a no-op now) or not
        for port in sorted(ambiguous):
            self.assertEqual(a.ctl("port", "reserve", str(port), "service", "web").rc, 0)
        want = {(p, "web") for p in ports}
        self.assertEqual(self.etcd_resv(), want)
        for env in (a, b):
            self.wait_for(lambda: self.ports(env) == want, timeout=10, what="both hosts converge")
        for port in (ports[0], ports[len(ports) // 2], ports[-1]):
            self.assertDenied(b, b.cgroup("other"), port)
        # the new leader's term was seen, counted and reported
        changes = [env.ok("status")["registry"]["leader_changes"] for env in (a, b)]
        self.assertGreaterEqual(max(changes), 1, changes)

    def test_watch_paused_across_writes_and_compaction_ends_equal_to_a_fresh_range(self):
        # B watches through member 2 first; A writes through 0 and 1.
        a = self.host("node-a", order=(0, 1, 2))
        b = self.host("node-b", order=(2, 0, 1))
        self.apply(a, "web")
        a.ok("port", "reserve", "21500", "service", "web")
        self.wait_for(lambda: (21500, "web") in self.ports(b), what="21500 on B")
        b.proc.send_signal(signal.SIGSTOP)
        try:
            self.etcd.kill(2)  # B's watch stream is cut while B cannot see it
            for port in range(21501, 21601):
                a.ok("port", "reserve", str(port), "service", "web")
            a.ok("port", "release", "21500")
            _, rev = self.etcd.range_prefix(self.prefix)
            self.etcd.compact(rev)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        fresh = self.etcd_resv()
        self.assertEqual(len(fresh), 100)
        self.wait_for(lambda: self.ports(b) == fresh, timeout=15, what="B equal to etcd")
        st = b.ok("status")["registry"]
        self.assertGreaterEqual(st["compactions"], 1, st)
        self.assertGreaterEqual(st["relists"], 1, st)
        self.assertEqual(st["revision"], self.etcd.range_prefix(self.prefix)[1])
        evs = b.wait_event(lambda e: e.get("action") == "compactions", type="registry_recovered")
        self.assertTrue(evs, "no registry_recovered event for the compaction")
        self.assertAllowed(b, b.cgroup("other"), 21500)
        self.assertDenied(b, b.cgroup("other"), 21600)

    def test_restart_during_outage_enforces_the_local_copy(self):
        a, b = self.host("node-a"), self.host("node-b")
        self.apply(a, "web")
        a.ok("port", "reserve", "21700", "service", "web")
        self.wait_for(lambda: (21700, "web") in self.ports(b), what="21700 on B")
        time.sleep(1.2)  # the local copy is written at most every 0.5 s
        b.stop()
        b.ok("teardown")  # no pinned policy left: what B enforces next comes from its copy
        self.assertAllowed(b, b.cgroup("other"), 21700)
        for i in range(3):
            self.etcd.pause(i)
        b.start()
        st = b.ok("status")["registry"]
        self.assertTrue(st["stale"], st)
        self.assertTrue(st["started_from_local_copy"], st)
        self.assertIn((21700, "web"), self.ports(b))
        self.assertDenied(b, b.cgroup("other"), 21700)
        self.assertAllowed(b, b.svc_cgroup("web"), 21700)
        r = b.ctl("port", "reserve", "21701", "service", "web")
        self.assertEqual(r.rc, 69, r)
        for i in range(3):
            self.etcd.resume(i)
        self.wait_for(lambda: not b.ok("status")["registry"]["stale"], timeout=20,
                      what="B no longer stale")
        deadline = time.time() + 15
        while (r := b.ctl("port", "reserve", "21701", "service", "web")).rc != 0 \
                and time.time() < deadline:
            time.sleep(0.5)
        self.assertEqual(r.rc, 0, r)
        self.wait_for(lambda: (21701, "web") in self.ports(a), what="21701 on A")

    # ---- machine registry and discovery ----

    def mcp_call(self, env, tool, args):
        msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": tool, "arguments": args}}]
        text = "".join(json.dumps(m) + "\n" for m in msgs)
        r = subprocess.run([CTL, "-c", env.config_path, "mcp"], input=text,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines()][1]["result"]

    def test_machine_registry_hosts_up_lost_and_where_services_run(self):
        a, b = self.host("node-a", lease_ttl_s=5), self.host("node-b", lease_ttl_s=5)

        def states():
            return {h["name"]: h["state"] for h in a.ok("host", "list")}

        self.wait_for(lambda: states() == {"node-a": "up", "node-b": "up"}, what="both hosts up")
        hb = a.ok("host", "show", "node-b")
        self.assertEqual(hb["name"], "node-b")
        self.assertIsInstance(hb["addresses"], list)
        self.assertRegex(hb["dashboard_url"], r"^http://127\.0\.0\.1:\d+/$")
        self.assertRegex(hb["mcp_url"], r"^http://127\.0\.0\.1:\d+/mcp$")
        self.assertGreater(hb["capacity"]["cpus"], 0)
        self.assertEqual(hb["components"]["ports"], "enforce")
        self.assertRegex(hb["last_seen"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(a.ctl("host", "show", "node-x").rc, 1)

        # discovery: web runs on B (its cgroup there has a process), not on A
        self.apply(a, "web")
        a.ok("port", "reserve", "21800", "service", "web")
        self.wait_for(lambda: os.path.isdir(b.svc_cgroup("web")), what="web's cgroup on B")
        b.spawn_in(b.svc_cgroup("web"), ["sleep", "120"])
        self.wait_for(lambda: [w["host"] for w in a.ok("service", "where", "web")] == ["node-b"],
                      what="web found on B")
        where = a.ok("service", "where", "web")[0]
        self.assertEqual(where["state"], "up")
        self.assertEqual(where["ports"], ["21800/tcp"])
        self.assertIn("state", where["health"])

        # the same through the HTTP API and MCP
        r = request(a.api_url("/api/v1/hosts"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(h["name"] for h in r.json), ["node-a", "node-b"])
        r = request(a.api_url("/api/v1/services/web/where"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual([w["host"] for w in r.json], ["node-b"])
        self.assertEqual(request(a.api_url("/api/v1/services/nope/where")).status, 404)
        res = self.mcp_call(a, "list_hosts", {})
        self.assertFalse(res.get("isError"), res)
        self.assertEqual(sorted(h["name"] for h in res["structuredContent"]["hosts"]),
                         ["node-a", "node-b"])
        res = self.mcp_call(a, "find_service", {"name": "web"})
        self.assertEqual([w["host"] for w in res["structuredContent"]["hosts"]], ["node-b"])

        # B dies without a word: lost within its lease's TTL and 5 s
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        t = time.time()
        self.wait_for(lambda: states().get("node-b") == "lost", timeout=10, what="node-b lost")
        took = time.time() - t
        self.assertLessEqual(took, 10.0)
        self.assertEqual(states()["node-a"], "up")
        self.wait_for(lambda: a.ok("service", "where", "web") == [], timeout=3,
                      what="web's endpoint gone with B's lease")

    def test_host_record_usage_cpu_and_memory(self):
        """A's record carries what its services use, measured: a spinning service on A shows
        on B within one publish period (10 s), plus the cpu window (2 s here) to fill and
        a second for the watch."""
        a = self.env("node-a", managed=(), extra={
            "host": "node-a", "registry": self.registry(), "capacity": {"cpu_window_s": 2}})
        b = self.host("node-b")
        path = os.path.join(a.dir, "spin.json")
        with open(path, "w") as f:
            json.dump({"name": "spin", "ports": [], "resources": {"cpus": 1, "memory_mb": 64}},
                      f)
        a.ok("service", "apply", path)
        self.wait_for(lambda: os.path.isdir(a.svc_cgroup("spin")), what="spin's cgroup on A")

        def usage():
            return b.ok("host", "show", "node-a")["usage"]

        self.wait_for(lambda: "cpus" in usage(), timeout=12, what="A's record with usage")
        self.assertEqual(usage()["cpus"], 0)  # nothing runs on A yet
        a.spawn_in(a.svc_cgroup("spin"), [sys.executable, "-c", "while True: pass"])
        self.wait_for(lambda: (usage()["cpus"] or 0) > 0.5, timeout=13, what="A's CPU on B")
        u = usage()
        self.assertLessEqual(u["cpus"], 1.1)
        self.assertEqual(u["running"], 1)
        self.assertEqual(u["cpus_allocated"], 1.0)
        self.assertEqual(u["memory_mb_allocated"], 64)
        cap = b.ok("host", "show", "node-a")["capacity"]
        self.assertGreater(cap["cpus"], 0)
        # memory.current when the controller is delegated to the service's cgroup
        if os.path.exists(os.path.join(a.svc_cgroup("spin"), "memory.current")):
            self.assertGreater(u["memory_mb"], 0)
        else:
            self.assertIsNone(u["memory_mb"])
        # the same through the API
        r = request(b.api_url("/api/v1/hosts"))
        self.assertEqual(r.status, 200, r)
        ha = [h for h in r.json if h["name"] == "node-a"][0]
        self.assertGreater(ha["usage"]["cpus"], 0.5)

    def test_admission_is_per_host(self):
        """Two services of 1.5 CPUs, hosts of 2 free CPUs each: both are registered (before,
        the second was refused: every service of the cluster counted against the applying
        host); each host admits what it runs: s2 runs on B, not on A next to s1."""
        cap = {"cpus": 3, "reserved": {"cpus": 1}}
        a, b = (self.env(n, managed=(), extra={"host": n, "registry": self.registry(),
                                               "capacity": cap}) for n in ("node-a", "node-b"))
        for name in ("s1", "s2"):
            path = os.path.join(a.dir, f"{name}.json")
            with open(path, "w") as f:
                json.dump({"name": name, "ports": [], "resources": {"cpus": 1.5}}, f)
            a.ok("service", "apply", path)
        self.wait_for(lambda: os.path.isdir(b.svc_cgroup("s2")), what="s2's cgroup on B")
        self.wait_for(lambda: os.path.isdir(a.svc_cgroup("s1")), what="s1's cgroup on A")
        a.spawn_in(a.svc_cgroup("s1"), ["sleep", "60"])
        self.wait_for(lambda: a.ok("service", "show", "s1")["state"] == "running",
                      what="s1 running on A")
        r = b.ctl("run", "s2", "--", "true")
        self.assertEqual(r.rc, 0, r)
        r = a.ctl("run", "s2", "--", "true")
        self.assertEqual(r.rc, 78, r)
        self.assertEqual(r.json["error"], "s2: cpus: requested 1.5, free 0.5 of 2 (s1 1.5)")
        # a change of a service A runs is admitted against A's capacity
        path = os.path.join(a.dir, "s1.json")
        with open(path, "w") as f:
            json.dump({"name": "s1", "ports": [], "resources": {"cpus": 2.5}}, f)
        r = a.ctl("service", "apply", path)
        self.assertEqual(r.rc, 78, r)
        self.assertIn("cpus: requested 2.5", " ".join(r.json.get("errors", [r.json["error"]])))

    def test_lease_loss_recovers_by_itself(self):
        a, b = self.host("node-a", lease_ttl_s=5), self.host("node-b", lease_ttl_s=5)

        def state_of_a():
            return {h["name"]: h["state"] for h in b.ok("host", "list")}.get("node-a")

        self.wait_for(lambda: state_of_a() == "up", what="node-a up")
        a.proc.send_signal(signal.SIGSTOP)  # no keepalive for longer than the TTL
        try:
            self.wait_for(lambda: state_of_a() == "lost", timeout=10, what="node-a lost")
        finally:
            a.proc.send_signal(signal.SIGCONT)
        self.wait_for(lambda: state_of_a() == "up", timeout=10, what="node-a up again")
        self.assertGreaterEqual(a.ok("status")["registry"]["lease_losses"], 1)
        evs = a.wait_event(lambda e: e.get("action") == "lease_losses", type="registry_recovered")
        self.assertTrue(evs, "no registry_recovered event for the lost lease")

    def test_peers_auto_follows_the_machine_registry(self):
        """"peers": "auto": each host pushes its events to the other hosts of the machine
        registry (their mcp_url), and stops when one is lost."""
        token = os.urandom(32).hex()
        tok = os.path.join(self.etcd.dir, f"cluster-{self.prefix[:-1]}.token")
        with open(tok, "w") as f:
            f.write(token + "\n")
        self.addCleanup(os.unlink, tok)
        hosts = []
        for name in ("node-a", "node-b"):
            h = self.host(name, start=False, lease_ttl_s=5)
            h.config["mcp"] = {"listen": "127.0.0.1:0", "peers": "auto",
                               "peers_token_file": tok}
            h.write_config()
            # One token for the cluster: every host's MCP listener takes the shared one.
            os.makedirs(h.state_dir, exist_ok=True)
            with open(os.path.join(h.state_dir, "api.token"), "w") as f:
                f.write(token + "\n")
            os.chmod(os.path.join(h.state_dir, "api.token"), 0o600)
            h.start()
            hosts.append(h)
        a, b = hosts

        def peers(env):
            return env.ok("status")["http"]["mcp"]["peers"]

        self.wait_for(lambda: [(p["host"], p["state"]) for p in peers(a)] == [("node-b", "ready")],
                      timeout=15, what=f"A following B as its peer: {peers(a)}")
        self.assertEqual(peers(a)[0]["url"], a.ok("host", "show", "node-b")["mcp_url"])
        self.wait_for(lambda: [p["host"] for p in peers(b)] == ["node-a"], timeout=15,
                      what="B following A")

        # An event on A (a denied bind) reaches B's journal under A's name.
        self.apply(a, "web")
        a.ok("port", "reserve", "21820", "service", "web")
        self.wait_for(lambda: (21820, "web") in self.ports(a), what="21820 on A")
        self.assertEqual(a.bind_in(a.cgroup("squat"), 21820), errno.EPERM)
        self.wait_for(lambda: any(e["port"] == 21820 for e in
                                  b.events(host="node-a", type="bind_denied")),
                      timeout=5, what="A's denial in B's journal")

        # B goes away: A drops it as a peer once B is lost.
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        self.wait_for(lambda: peers(a) == [], timeout=15, what=f"B dropped: {peers(a)}")

    def test_peers_auto_with_the_file_backend_is_a_config_error(self):
        e = self.env("autofile", start=False)
        e.config["mcp"] = {"listen": "127.0.0.1:0", "peers": "auto"}
        e.write_config()
        p = e.start(wait=False)
        self.assertEqual(p.wait(timeout=15), 78)
        self.assertIn('mcp.peers: "auto" needs the etcd backend', e.log())

    def test_file_backend_has_no_machine_registry(self):
        e = self.env("filehost")
        r = e.ctl("host", "list")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("etcd", r.json["error"])


class EtcdAuth(EtcdTest):
    """etcd with authentication and simple tokens of 2 s: caelumd renews its token."""

    def test_wrong_password_refused_and_expired_tokens_renewed(self):
        etcd = EtcdCluster(members=1, base=BASE_PORT + 20,
                           extra=["--auth-token", "simple", "--auth-token-ttl", "2"])
        self.addCleanup(etcd.close)
        etcd.call(0, "/v3/auth/role/add", {"name": "root"})
        etcd.call(0, "/v3/auth/user/add", {"name": "root", "password": "s3cret"})
        etcd.call(0, "/v3/auth/user/grant", {"user": "root", "role": "root"})
        etcd.call(0, "/v3/auth/enable", {})

        def registry(pwfile):
            return {"registry": {"backend": "etcd", "endpoints": etcd.endpoints(),
                                 "prefix": f"auth{os.getpid()}/", "username": "root",
                                 "password_file": pwfile, "timeout_ms": 3000,
                                 "lease_ttl_s": 9}}

        bad = self.env("authbad", start=False, managed=())
        with open(os.path.join(bad.dir, "pw"), "w") as f:
            f.write("wrong\n")
        bad.config.update(registry(os.path.join(bad.dir, "pw")))
        bad.write_config()
        rc = bad.start(wait=False).wait(timeout=30)
        bad.proc = None
        self.assertNotEqual(rc, 0)
        self.assertIn("etcd refused user 'root'", bad.log())

        e = self.env("auth", start=False, managed=())
        with open(os.path.join(e.dir, "pw"), "w") as f:
            f.write("s3cret\n")
        e.config.update(registry(os.path.join(e.dir, "pw")))
        e.write_config()
        e.start()
        path = os.path.join(e.dir, "web.json")
        with open(path, "w") as f:
            json.dump({"name": "web", "ports": []}, f)
        e.ok("service", "apply", path)
        e.ok("port", "reserve", "21900", "service", "web")
        renewals = e.ok("status")["registry"]["token_renewals"]
        time.sleep(3.5)  # the token expired (2 s without use)
        e.ok("port", "reserve", "21901", "service", "web")
        st = e.ok("status")["registry"]
        self.assertGreater(st["token_renewals"], renewals, st)
        self.assertDenied(e, e.cgroup("other"), 21901)
        evs = e.wait_event(lambda ev: ev.get("action") == "token_renewals",
                           type="registry_recovered")
        self.assertTrue(evs, "no registry_recovered event for the renewed token")
        # The session's requests renew their token too: its keepalives (every 3 s, the
        # token lives 2 s unused) and the host record rewritten after 10 s both need one.
        first = e.ok("host", "list")[0]["last_seen"]
        time.sleep(11.5)
        self.wait_for(lambda: e.ok("host", "list")[0]["last_seen"] != first, timeout=3,
                      what="the host record rewritten with a renewed token")
        self.assertEqual(e.ok("host", "list")[0]["state"], "up")
        self.assertEqual(e.ok("status")["registry"]["lease_losses"], 0)
