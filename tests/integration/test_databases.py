# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Databases, credentials, startup validation, health, drift, integrity and self-verification,
against real PostgreSQL, Redis and MariaDB servers started on loopback."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from dbservers import MariaDB, Postgres, Redis
from harness import CTL, CaelumTest


def connect_in(env, cg, host, port, family=4, how="connect", hold=None):
    """errno of connect()/sendto() from a child placed in cgroup cg (0 = allowed).

    hold: a path; the child keeps the socket open until that file appears."""
    code = f"""
import os, socket, sys, time
fam = socket.AF_INET6 if {family} == 6 else socket.AF_INET
how = {how!r}
try:
    if how == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.sendto(b"x", ({host!r}, {port}))
    elif how == "tfo":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.sendto(b"x", socket.MSG_FASTOPEN, ({host!r}, {port}))
    else:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(({host!r}, {port}))
    print(0, flush=True)
except OSError as e:
    print(e.errno, flush=True)
    sys.exit(0)
hold = {hold!r}
while hold and not os.path.exists(hold):
    time.sleep(0.02)
"""
    p = env.spawn_in(cg, [sys.executable, "-c", code])
    line = p.stdout.readline().strip()
    if hold is None:
        p.wait(timeout=10)
    return int(line), p


SO_COOKIE = 57
DB_SLOTS = 65536  # CAELUM_MAX_DB_SLOTS


def counted_socket(env, cg, port, hold, collide_with=None):
    """A child in cgroup cg connects to 127.0.0.1:port and keeps the socket until hold
    appears; returns (errno, its socket cookie, the child).

    collide_with: a cookie; the child first opens sockets until one's cookie falls on the
    same slot of cm_db_slots, and connects that one."""
    code = f"""
import os, socket, sys, time
def cookie(s):
    return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, {SO_COOKIE}, 8), "little")
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # one CPU's run of cookies
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
target = {collide_with!r}
for _ in range(64 * {DB_SLOTS}):
    if target is None or (cookie(s) - target) % {DB_SLOTS} == 0:
        break
    s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
else:
    print(-1, 0, flush=True)
    sys.exit(0)
try:
    s.connect(("127.0.0.1", {port}))
    print(0, cookie(s), flush=True)
except OSError as e:
    print(e.errno, cookie(s), flush=True)
while not os.path.exists({hold!r}):
    time.sleep(0.02)
"""
    p = env.spawn_in(cg, [sys.executable, "-c", code])
    rc, cookie = (int(x) for x in p.stdout.readline().split())
    return rc, cookie, p


def db_slot(env, cookie):
    """The cookie of the socket holding cookie's slot in cm_db_slots (0: free)."""
    key = (cookie % DB_SLOTS).to_bytes(4, "little")
    out = subprocess.run(["bpftool", "-j", "map", "lookup", "pinned",
                          f"{env.bpffs}/maps/cm_db_slots", "key", *map(str, key)],
                         capture_output=True, text=True, check=True, timeout=30)
    value = bytes(int(b, 16) for b in json.loads(out.stdout)["value"])
    return int.from_bytes(value[:8], "little")


def db_file(env, name, kind, address, unmanaged="allow"):
    d = os.path.join(env.dir, "databases.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{name}.json"), "w") as f:
        json.dump({"name": name, "kind": kind, "address": address, "unmanaged": unmanaged}, f)


def svc_file(env, name, **spec):
    env.write_service(name, json.dumps(dict({"name": name, "ports": []}, **spec)))


class Enforcement(CaelumTest):
    """Declared, undeclared, unmanaged, caps, IPv6, UDP and TCP Fast Open."""

    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def setUp(self):
        self.e = self.env("dbenf", start=False,
                          extra={"databases_dir": "databases.d"})
        os.makedirs(os.path.join(self.e.dir, "databases.d"), exist_ok=True)
        db_file(self.e, "pg", "postgresql", f"localhost:{self.pg.port}", unmanaged="deny")
        svc_file(self.e, "etl", databases=[{"name": "pg", "max_connections": 2}])
        svc_file(self.e, "web")
        self.e.start()

    def test_host_name_resolved(self):
        # "localhost" is 127.0.0.1 and ::1 (RFC 6761), though this host's /etc/hosts has
        # no ::1 line.
        show = self.e.ok("db", "show", "pg")
        self.assertEqual(show["addresses"], [f"127.0.0.1:{self.pg.port}", f"[::1]:{self.pg.port}"])
        self.assertTrue(show["local"])
        self.assertEqual(show["resolve_interval_s"], 10)
        self.assertEqual(show["services"][0]["service"], "etl")

    def test_undeclared_service_denied_on_both_families(self):
        web = self.e.svc_cgroup("web")
        self.assertEqual(connect_in(self.e, web, "127.0.0.1", self.pg.port)[0], errno.EPERM)
        self.assertEqual(connect_in(self.e, web, "::1", self.pg.port, family=6)[0], errno.EPERM)
        # An IPv6 socket reaching the IPv4 address through its mapped form is the same target.
        self.assertEqual(connect_in(self.e, web, "::ffff:127.0.0.1", self.pg.port, family=6)[0],
                         errno.EPERM)
        self.assertEqual(connect_in(self.e, self.e.svc_cgroup("etl"), "::1", self.pg.port,
                                    family=6)[0], 0)
        evs = self.e.wait_event(lambda ev: ev["service"] == "web", type="db_connect_denied")
        self.assertEqual((evs[0]["database"], evs[0]["reason"], evs[0]["action"]),
                         ("pg", "undeclared", "denied"))
        self.assertIn(str(self.pg.port), evs[0]["address"])

    def test_udp_and_fast_open_cannot_bypass(self):
        web = self.e.svc_cgroup("web")
        self.assertEqual(connect_in(self.e, web, "127.0.0.1", self.pg.port, how="udp")[0],
                         errno.EPERM)
        self.assertEqual(connect_in(self.e, web, "127.0.0.1", self.pg.port, how="tfo")[0],
                         errno.EPERM)

    def test_unmanaged_deny_and_allow(self):
        other = self.e.cgroup("other")
        self.assertEqual(connect_in(self.e, other, "127.0.0.1", self.pg.port)[0], errno.EPERM)
        ev = self.e.wait_event(lambda ev: ev["service"] is None, type="db_connect_denied")
        self.assertEqual(ev[0]["reason"], "unmanaged")
        db_file(self.e, "pg", "postgresql", f"localhost:{self.pg.port}", unmanaged="allow")
        self.e.ok("reload")
        self.assertEqual(connect_in(self.e, other, "127.0.0.1", self.pg.port)[0], 0)

    def test_cap_reached_then_freed_by_close(self):
        etl = self.e.svc_cgroup("etl")
        flag = os.path.join(self.e.dir, "release")
        rc1, p1 = connect_in(self.e, etl, "127.0.0.1", self.pg.port, hold=flag)
        rc2, p2 = connect_in(self.e, etl, "::ffff:127.0.0.1", self.pg.port, family=6,
                             hold=flag + "2")
        self.assertEqual((rc1, rc2), (0, 0))
        conns = self.e.ok("db", "show", "pg")["services"][0]["connections"]
        self.assertEqual(conns, 2)
        self.assertEqual(connect_in(self.e, etl, "127.0.0.1", self.pg.port)[0], errno.EPERM)
        ev = self.e.wait_event(lambda ev: True, type="db_conn_limit")
        self.assertEqual((ev[0]["service"], ev[0]["connections"], ev[0]["max_connections"]),
                         ("etl", 2, 2))
        open(flag, "w").close()  # the first holder closes its socket
        p1.wait(timeout=10)
        deadline = time.time() + 3
        while time.time() < deadline and self.e.ok("db", "show", "pg")["services"][0]["connections"] != 1:
            time.sleep(0.05)
        self.assertEqual(self.e.ok("db", "show", "pg")["services"][0]["connections"], 1)
        self.assertEqual(connect_in(self.e, etl, "127.0.0.1", self.pg.port)[0], 0)
        open(flag + "2", "w").close()
        p2.wait(timeout=10)

    def connections(self, want, db="pg"):
        """The etl connections counted for db, once they reach want (or 3 s pass)."""
        deadline = time.time() + 3
        while True:
            n = self.e.ok("db", "show", db)["services"][0]["connections"]
            if n == want or time.time() > deadline:
                return n
            time.sleep(0.05)

    def test_socket_on_a_taken_slot_counted_and_released(self):
        # A counted socket is remembered in the slot of its cookie; a second one whose
        # cookie falls on the same slot is remembered in its sk_storage: both count, both
        # are released on close, each from its own place.
        etl = self.e.svc_cgroup("etl")
        flag = os.path.join(self.e.dir, "release")
        rc1, c1, p1 = counted_socket(self.e, etl, self.pg.port, hold=flag)
        self.assertEqual(rc1, 0)
        self.assertEqual(db_slot(self.e, c1), c1)
        rc2, c2, p2 = counted_socket(self.e, etl, self.pg.port, hold=flag + "2",
                                     collide_with=c1)
        self.assertEqual(rc2, 0, "no socket cookie found on the slot")
        self.assertNotEqual(c2, c1)
        self.assertEqual(c2 % DB_SLOTS, c1 % DB_SLOTS)
        self.assertEqual(db_slot(self.e, c2), c1)  # the slot stays the first socket's
        self.assertEqual(self.connections(2), 2)
        self.assertEqual(connect_in(self.e, etl, "127.0.0.1", self.pg.port)[0], errno.EPERM)
        open(flag + "2", "w").close()  # the one in sk_storage closes first
        p2.wait(timeout=10)
        self.assertEqual(self.connections(1), 1)
        self.assertEqual(db_slot(self.e, c1), c1)
        open(flag, "w").close()
        p1.wait(timeout=10)
        self.assertEqual(self.connections(0), 0)
        self.assertEqual(db_slot(self.e, c1), 0)
        comp = next(c for c in self.e.ok("status")["components"] if c["name"] == "databases")
        self.assertEqual(comp["connections_uncounted"], 0)

    def test_socket_connecting_again_counted_once(self):
        # A connected UDP socket connecting again: to the same database through another
        # alias it stays counted once; to another database it moves its count there.
        db_file(self.e, "cache", "redis", "127.0.0.1:6399", unmanaged="deny")
        svc_file(self.e, "etl", databases=[{"name": "pg", "max_connections": 2},
                                           {"name": "cache"}])
        self.e.ok("reload")
        flag = os.path.join(self.e.dir, "go")
        code = f"""
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i, dst in enumerate([("127.0.0.1", {self.pg.port}), ("127.0.0.1", {self.pg.port}),
                         ("127.0.0.2", {self.pg.port}), ("127.0.0.1", 6399)]):
    s.connect(dst)
    print(i, flush=True)
    while not os.path.exists({flag!r} + str(i)):
        time.sleep(0.02)
"""
        p = self.e.spawn_in(self.e.svc_cgroup("etl"), [sys.executable, "-c", code])
        for i, (pg, cache) in enumerate([(1, 0), (1, 0), (1, 0), (0, 1)]):
            self.assertEqual(int(p.stdout.readline()), i)
            self.assertEqual((self.connections(pg), self.connections(cache, "cache")),
                             (pg, cache), f"after connect {i}")
            open(flag + str(i), "w").close()
        p.wait(timeout=10)
        self.assertEqual(self.connections(0, "cache"), 0)

    def test_counts_survive_restart(self):
        etl = self.e.svc_cgroup("etl")
        flag = os.path.join(self.e.dir, "hold")
        rc, p = connect_in(self.e, etl, "127.0.0.1", self.pg.port, hold=flag)
        self.assertEqual(rc, 0)
        self.e.stop(signal.SIGKILL)
        self.e.start()
        self.assertEqual(self.e.ok("db", "show", "pg")["services"][0]["connections"], 1)
        open(flag, "w").close()
        p.wait(timeout=10)

    def test_db_apply_delete_and_refusals(self):
        path = os.path.join(self.e.dir, "cache.json")
        with open(path, "w") as f:
            json.dump({"name": "cache", "kind": "redis", "address": "127.0.0.1:1"}, f)
        self.assertEqual(self.e.ok("db", "apply", path)["name"], "cache")
        self.assertIn("cache", [d["name"] for d in self.e.ok("db", "list")])
        r = self.e.ctl("db", "delete", "pg")
        self.assertEqual(r.rc, 78)
        self.assertIn("remove the file and reload", r.json["error"])
        with open(path, "w") as f:
            json.dump({"name": "cache", "kind": "mongo", "address": "nohost", "x": 1}, f)
        r = self.e.ctl("db", "apply", path)
        self.assertEqual(r.rc, 78)
        errs = " | ".join(r.json["errors"])
        self.assertIn('kind: unknown kind "mongo"', errs)
        self.assertIn('address: "nohost": expected host:port', errs)
        self.assertIn("x: unknown key", errs)
        self.e.ok("db", "delete", "cache")
        self.assertNotIn("cache", [d["name"] for d in self.e.ok("db", "list")])


class HostOnly(CaelumTest):
    """db apply FILE host H: in force on H only (this host is "test-node")."""

    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def write(self, name, obj):
        path = os.path.join(self.e.dir, name)
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def setUp(self):
        self.e = self.env("dbhost", start=False, extra={"databases_dir": "databases.d"})
        os.makedirs(os.path.join(self.e.dir, "databases.d"), exist_ok=True)
        self.e.start()

    def test_this_hosts_enforced_another_hosts_not(self):
        addr = f"127.0.0.1:{self.pg.port}"
        here = self.write("pg.json", {"name": "pg", "kind": "postgresql", "address": addr,
                                      "unmanaged": "deny"})
        far = self.write("far.json", {"name": "far", "kind": "postgresql",
                                      "address": f"127.0.0.2:{self.pg.port}"})
        self.assertEqual(self.e.ok("db", "apply", here, "host", "test-node")["host"],
                         "test-node")
        self.assertEqual(self.e.ok("db", "apply", far, "host", "node-b")["host"], "node-b")
        listed = {d["name"]: d for d in self.e.ok("db", "list")}
        self.assertEqual((listed["pg"]["host"], listed["far"]["host"]), ("test-node", "node-b"))
        self.assertEqual(self.e.ok("db", "show", "pg")["addresses"], [addr])
        self.assertEqual(self.e.ok("db", "show", "far")["addresses"], [])  # not here

        self.e.ok("service", "apply", self.write("etl.json", {
            "name": "etl", "ports": [], "databases": [{"name": "pg"}]}))
        self.e.ok("service", "apply", self.write("away.json", {
            "name": "away", "ports": [], "databases": [{"name": "far"}]}))
        # pg (this host's) reaches the connect maps: etl connects, away (which declares
        # only node-b's far, not here) is refused
        self.assertEqual(connect_in(self.e, self.e.svc_cgroup("etl"), "127.0.0.1",
                                    self.pg.port)[0], 0)
        self.assertEqual(connect_in(self.e, self.e.svc_cgroup("away"), "127.0.0.1",
                                    self.pg.port)[0], errno.EPERM)

        # refused, nothing changed: the other kind of one name (both named), a bad host
        r = self.e.ctl("db", "apply", here)
        self.assertEqual(r.rc, 78)
        self.assertIn("database 'pg' is defined on host 'test-node'", r.json["error"])
        r = self.e.ctl("db", "apply", far, "host", "bad_host")
        self.assertEqual(r.rc, 64)
        self.assertIn('host: invalid host name "bad_host"', r.json["error"])
        self.assertEqual(len(self.e.ok("db", "list")), 2)

        # delete: one host's only
        self.e.ok("service", "delete", "away")
        r = self.e.ctl("db", "delete", "far")  # no definition on every host
        self.assertNotEqual(r.rc, 0)
        self.assertEqual(r.json["error"], "database 'far' not found")
        self.e.ok("db", "delete", "far", "host", "node-b")
        self.assertEqual([d["name"] for d in self.e.ok("db", "list")], ["pg"])


class StartupValidation(CaelumTest):
    def make(self, tag, dbs, **svc):
        e = self.env(tag, start=False, extra={"databases_dir": "databases.d"})
        os.makedirs(os.path.join(e.dir, "databases.d"), exist_ok=True)
        for name, (kind, addr) in dbs.items():
            db_file(e, name, kind, addr)
        svc_file(e, "app", **svc)
        return e

    def test_every_failure_reported_at_once(self):
        down = Redis()
        port = down.reserve_port()  # nothing listens there
        e = self.make("valall", {"cache": ("redis", f"127.0.0.1:{port}")})
        key = os.path.join(e.dir, "app.key")
        with open(key, "w") as f:
            f.write("s3cret-value")
        os.chmod(key, 0o644)
        svc_file(e, "app", databases=[{"name": "cache"}],
                 credentials=[{"env": "APP_TOKEN"}, {"file": key, "mode": "0600", "owner": "root"}])
        e.start()
        env = dict(os.environ)
        env.pop("APP_TOKEN", None)
        marker = os.path.join(e.dir, "started")
        r = e.ctl("run", "app", "--", "touch", marker, env=env)
        self.assertEqual(r.rc, 78, r)
        errs = r.json["errors"]
        self.assertEqual(len(errs), 3, errs)
        joined = " | ".join(errs)
        self.assertIn("environment variable APP_TOKEN is not set or is empty", joined)
        self.assertIn(f"{key} has mode 0644, looser than 0600", joined)
        self.assertIn(f"cache (redis at 127.0.0.1:{port}) is not reachable", joined)
        self.assertNotIn("s3cret", r.out + r.err)
        self.assertFalse(os.path.exists(marker), "nothing was started")
        r = e.ctl("check", "service", "app", env=env)
        self.assertEqual((r.rc, len(r.json["errors"])), (78, 3))

    def test_passing_checks_show_fingerprints_only(self):
        with Postgres() as pg, MariaDB() as my, Redis() as rd:
            e = self.make("valok", {"pg": ("postgresql", pg.address4),
                                    "my": ("mysql", my.address6),
                                    "rd": ("redis", rd.address4)})
            key = os.path.join(e.dir, "app.key")
            with open(key, "w") as f:
                f.write("s3cret-value")
            os.chmod(key, 0o600)
            svc_file(e, "app", databases=[{"name": "pg"}, {"name": "my"}, {"name": "rd"}],
                     credentials=[{"env": "APP_TOKEN"}, {"file": key, "mode": "0640"}])
            e.start()
            env = dict(os.environ, APP_TOKEN="tok-123")
            r = e.ctl("check", "service", "app", env=env)
            self.assertEqual(r.rc, 0, r)
            self.assertEqual([d["ok"] for d in r.json["databases"]], [True, True, True])
            details = " ".join(d["detail"] for d in r.json["databases"])
            self.assertIn("PostgreSQL", details)
            self.assertIn("MariaDB", details)
            self.assertIn("PONG", details)
            import hashlib
            self.assertEqual(r.json["credentials"][1]["sha256"],
                             hashlib.sha256(b"s3cret-value").hexdigest())
            self.assertEqual(r.json["environment"][0]["sha256"],
                             hashlib.sha256(b"tok-123").hexdigest())
            self.assertNotIn("tok-123", r.out)
            self.assertNotIn("s3cret", r.out)

    def test_wait_for_late_database(self):
        late = MariaDB()
        port = late.reserve_port()
        try:
            e = self.make("valwait", {"my": ("mysql", f"127.0.0.1:{port}")},
                          databases=[{"name": "my"}])
            e.start()
            timer = threading.Timer(1.5, late.start)
            timer.start()
            t0 = time.time()
            r = e.ctl("run", "--wait", "20", "app", "--", "true", timeout=60)
            timer.join()
            self.assertEqual(r.rc, 0, r)
            self.assertGreater(time.time() - t0, 1.5)
        finally:
            late.stop()
        r = e.ctl("run", "app", "--", "true")  # down again, no wait: refused
        self.assertEqual(r.rc, 78)


class Monitoring(CaelumTest):
    def test_health_transitions(self):
        e = self.env("health", start=False)
        port = Redis().reserve_port()
        svc_file(e, "app", health={"tcp": f"127.0.0.1:{port}", "interval_s": 1, "timeout_s": 1,
                                   "failures_before_critical": 2})
        e.start()
        code = (f"import socket,time,os\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                f"s.bind(('127.0.0.1',{port}));s.listen()\nprint('up',flush=True)\n"
                f"while not os.path.exists('{e.dir}/down'): time.sleep(0.05)\ns.close()\ntime.sleep(30)\n")
        p = subprocess.Popen([CTL, "-c", e.config_path, "run", "app", "--", sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().strip(), "up")
        passing = e.wait_event(lambda ev: ev["to"] == "passing", timeout=5, type="health_changed")
        self.assertTrue(passing)
        self.assertEqual(e.ok("service", "show", "app")["health"]["state"], "passing")
        open(os.path.join(e.dir, "down"), "w").close()
        crit = e.wait_event(lambda ev: ev["to"] == "critical", timeout=8, type="health_changed")
        self.assertTrue(crit)
        seq = [(ev["from"], ev["to"]) for ev in e.events(type="health_changed")]
        self.assertEqual(seq, [("unknown", "passing"), ("passing", "warning"),
                               ("warning", "critical")])

    def test_health_exec_runs_unprivileged(self):
        """A health check is the spec author's code, run by root's caelumd: it runs as
        health.user ("nobody" when unset), with no capabilities and no_new_privs."""
        import shutil
        import tempfile
        out = tempfile.mkdtemp(prefix="caelum-hexec-")
        self.addCleanup(shutil.rmtree, out, True)
        os.chmod(out, 0o1777)
        e = self.env("hexec", start=False)
        script = ("grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs):' /proc/self/status "
                  "> {}/$(id -un).tmp && mv {}/$(id -un).tmp {}/$(id -un)")
        for name, user in (("plain", None), ("asdaemon", "daemon")):
            health = {"exec": ["/bin/sh", "-c", script.format(out, out, out)],
                      "interval_s": 1, "timeout_s": 1}
            if user:
                health["user"] = user
            svc_file(e, name, health=health)
        e.start()
        procs = [subprocess.Popen([CTL, "-c", e.config_path, "run", n, "--", "sleep", "20"])
                 for n in ("plain", "asdaemon")]
        for p in procs:
            self.addCleanup(p.kill)
        want = {"nobody": "65534", "daemon": "1"}
        deadline = time.time() + 10
        while time.time() < deadline and not all(os.path.exists(os.path.join(out, u))
                                                   for u in want):
            time.sleep(0.2)
        for user, uid in want.items():
            with open(os.path.join(out, user)) as f:
                st = dict(line.split(":", 1) for line in f.read().splitlines())
            st = {k: v.split() for k, v in st.items()}
            self.assertEqual(st["Uid"], [uid] * 4, (user, st))
            self.assertEqual(st["Groups"], [], (user, st))
            self.assertEqual(st["CapEff"], ["0000000000000000"], (user, st))
            self.assertEqual(st["CapPrm"], ["0000000000000000"], (user, st))
            self.assertEqual(st["NoNewPrivs"], ["1"], (user, st))
        self.assertEqual(e.ok("service", "show", "asdaemon")["health"]["state"], "passing")

    def test_credential_drift_after_chmod(self):
        e = self.env("drift", start=False)
        key = os.path.join(e.dir, "k")
        with open(key, "w") as f:
            f.write("x")
        os.chmod(key, 0o600)
        svc_file(e, "app", credentials=[{"file": key, "mode": "0600"}])
        e.start()
        time.sleep(0.3)
        os.chmod(key, 0o644)
        ev = e.wait_event(lambda ev: True, timeout=8, type="credential_drift")
        self.assertEqual((ev[0]["service"], ev[0]["file"], ev[0]["change"]),
                         ("app", key, "mode 0600 -> 0644"))
        with open(key, "w") as f:
            f.write("y")
        ev = e.wait_event(lambda ev: ev["change"] == "content changed", timeout=8,
                          type="credential_drift")
        self.assertTrue(ev)

    def test_db_reachability_events(self):
        rd = Redis()
        rd.start()
        try:
            e = self.env("reach", start=False, extra={"databases_dir": "databases.d"})
            db_file(e, "rd", "redis", rd.address4)
            e.start()
            deadline = time.time() + 15
            while time.time() < deadline and e.ok("db", "show", "rd")["reachable"] is not True:
                time.sleep(0.2)
            self.assertTrue(e.ok("db", "show", "rd")["reachable"])
            rd.stop()
            ev = e.wait_event(lambda ev: True, timeout=15, type="db_unreachable")
            self.assertEqual(ev[0]["database"], "rd")
            rd.start()
            ev = e.wait_event(lambda ev: True, timeout=15, type="db_recovered")
            self.assertEqual(ev[0]["database"], "rd")
        finally:
            rd.stop()


class SelfVerification(CaelumTest):
    def test_verify_passes_and_is_in_status(self):
        e = self.env("verify", services={"alpha": ["8100/tcp"]})
        r = e.ctl("verify")
        self.assertEqual(r.rc, 0, r)
        for comp in ("ports", "databases", "devices", "tasks", "cpu", "bandwidth"):
            self.assertTrue(r.json["components"][comp]["ok"], (comp, r.json))
        st = e.ok("status")
        self.assertTrue(st["verification"]["ok"])
        # The probes' denials reached caelumd but are not events about the host.
        self.assertGreaterEqual(st["events"]["verification_records"], 4)
        self.assertEqual([ev for ev in e.events() if ev.get("port") == 65001], [])

    def test_detached_link_fails_verification_then_repaired(self):
        e = self.env("verifyfail", services={"alpha": ["8100/tcp"]},
                     extra={"verify": {"interval_s": 0}})
        pin = os.path.join(e.bpffs, "links", "cm_bind4")
        out = subprocess.run(["bpftool", "-j", "link", "show", "pinned", pin],
                             capture_output=True, text=True).stdout
        link_id = json.loads(out)["id"]
        subprocess.run(["bpftool", "link", "detach", "id", str(link_id)], check=True)
        r = e.ctl("verify")
        self.assertEqual(r.rc, 1, r)
        self.assertFalse(r.json["components"]["ports"]["ok"])
        self.assertIn("NOT refused", r.json["components"]["ports"]["detail"])
        ev = e.wait_event(lambda ev: True, timeout=10, type="integrity_repaired")
        self.assertEqual(ev[0]["object"], "cm_bind4")
        self.assertEqual(e.ctl("verify").rc, 0)
        self.assertDenied(e, e.cgroup("x"), 8100)
