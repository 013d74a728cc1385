# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The private database servers of dbservers.py: both addresses, protocol greeting, clean stop."""
import os
import socket
import struct
import threading
import time
import unittest

import dbservers
from dbservers import MariaDB, Postgres, Redis, recv_exact

HOSTS = (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6))


def connect(host, fam, port, timeout=5):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def greet_postgres(s):
    s.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
    return recv_exact(s, 1) in (b"N", b"S")


def greet_mariadb(s):
    head = recv_exact(s, 5)  # 3-byte length, sequence id, protocol version
    return len(head) == 5 and head[4] == 0x0A


def greet_redis(s):
    s.sendall(b"PING\r\n")
    return recv_exact(s, 7) == b"+PONG\r\n"


CASES = ((Postgres, "postgresql", greet_postgres),
         (Redis, "redis", greet_redis),
         (MariaDB, "mysql", greet_mariadb))


class DbServers(unittest.TestCase):
    def server(self, cls, **kw):
        s = cls(**kw)
        self.addCleanup(s.stop)
        return s

    def assertGreets(self, srv, greet):
        for host, fam in HOSTS:
            with connect(host, fam, srv.port) as s:
                self.assertTrue(greet(s), f"{srv.kind} greeting on [{host}]:{srv.port}")

    def assertClosed(self, port):
        for host, fam in HOSTS:
            with self.assertRaises(ConnectionRefusedError, msg=f"[{host}]:{port} still open"):
                connect(host, fam, port).close()

    def assertGone(self, procs, tmpdir):
        table = dbservers._proc_table()
        left = [p for p, st in procs.items() if p in table and table[p][2] == st]
        self.assertEqual(left, [], "server processes left after stop()")
        if tmpdir:
            self.assertFalse(os.path.exists(tmpdir), f"{tmpdir} left after stop()")

    def check_server(self, cls, kind, greet):
        srv = self.server(cls)
        self.assertEqual(srv.kind, kind)
        t0 = time.monotonic()
        srv.start()
        started = time.monotonic() - t0
        self.assertTrue(srv.running)
        self.assertEqual(srv.address4, f"127.0.0.1:{srv.port}")
        self.assertEqual(srv.address6, f"[::1]:{srv.port}")
        self.assertLess(started, 15, f"{kind} took {started:.1f}s to start")
        procs = dbservers._tree(srv.proc.pid)
        self.assertIn(srv.proc.pid, procs)
        if cls.user:  # never root
            uid = os.stat(f"/proc/{srv.proc.pid}").st_uid
            self.assertNotEqual(uid, 0, f"{kind} runs as root")
        tmpdir = srv.dir
        self.assertGreets(srv, greet)
        t0 = time.monotonic()
        srv.stop()
        self.assertLess(time.monotonic() - t0, 10)
        self.assertFalse(srv.running)
        self.assertIsNone(srv.dir)
        self.assertClosed(srv.port)
        self.assertGone(procs, tmpdir)
        srv.stop()  # idempotent

    def test_postgres(self):
        self.check_server(*CASES[0])

    def test_redis(self):
        self.check_server(*CASES[1])

    def test_mariadb(self):
        self.check_server(*CASES[2])

    def test_late_start_and_restart(self):
        """reserve_port() first, a client waits for the port, start() comes late on it;
        then stop() and start() again on the same port."""
        for cls, kind, greet in CASES:
            with self.subTest(kind):
                srv = self.server(cls)
                port = srv.reserve_port()
                self.assertEqual(srv.reserve_port(), port)
                self.assertFalse(srv.running)
                self.assertClosed(port)
                errors = []

                def late():
                    time.sleep(0.5)
                    try:
                        srv.start()
                    except Exception as e:  # surfaces below
                        errors.append(e)
                t = threading.Thread(target=late)
                t.start()
                try:
                    got = {}
                    deadline = time.monotonic() + 30
                    while len(got) < 2 and time.monotonic() < deadline and not errors:
                        for host, fam in HOSTS:
                            if host in got:
                                continue
                            try:
                                with connect(host, fam, port, timeout=2) as s:
                                    got[host] = greet(s)
                            except OSError:
                                pass
                        time.sleep(0.05)
                finally:
                    t.join()
                self.assertEqual(errors, [])
                self.assertEqual(got, {"127.0.0.1": True, "::1": True})
                self.assertEqual(srv.port, port)
                first = dbservers._tree(srv.proc.pid)
                srv.stop()
                self.assertClosed(port)
                self.assertGone(first, None)
                srv.start()
                self.assertEqual(srv.port, port)
                self.assertGreets(srv, greet)
                tmpdir, procs = srv.dir, dbservers._tree(srv.proc.pid)
                srv.stop()
                self.assertClosed(port)
                self.assertGone(procs, tmpdir)

    def test_context_manager(self):
        with Redis() as r:
            port, tmpdir, procs = r.port, r.dir, dbservers._tree(r.proc.pid)
            self.assertGreets(r, greet_redis)
        self.assertClosed(port)
        self.assertGone(procs, tmpdir)

    def test_failed_start_cleans_up(self):
        """A server that cannot come up raises with its log and leaves nothing behind."""
        # Redis exits when it cannot bind; PostgreSQL keeps running on the one address
        # it got and is stopped at the deadline.
        for cls, timeout in ((Redis, 30), (Postgres, 4)):
            with self.subTest(cls.kind):
                srv = self.server(cls)
                port = srv.reserve_port()
                blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.addCleanup(blocker.close)
                blocker.bind(("127.0.0.1", port))
                blocker.listen()
                before = set(dbservers._proc_table())
                with self.assertRaises(RuntimeError) as cm:
                    srv.start(timeout=timeout)
                msg = str(cm.exception)
                self.assertIn("log tail", msg)
                self.assertIn(str(port), msg)
                self.assertFalse(srv.running)
                self.assertIsNone(srv.dir)
                new = {p: t[2] for p, t in dbservers._proc_table().items() if p not in before}
                self.assertEqual([p for p in new if self._is_server(p)], [])
                blocker.close()
                with self.assertRaises(ConnectionRefusedError):
                    connect("::1", socket.AF_INET6, port).close()

    @staticmethod
    def _is_server(pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip() in ("postgres", "redis-server", "mariadbd")
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main()
