# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A reload waiting for etcd without a quorum (two of three members SIGSTOPped) holds only its
own callers: status over the control socket and the API answers at once meanwhile; the reload
ends with the backend's outcome (exit 69, nothing changed); reloads asked while one is pending
are queued into one follow-up that reads the files after the pending one ended (systemd's
rule for a reload job that meets a running one); a SIGHUP likewise, with READY=1 only once the
last reload ended. And the commit of services_dir retried after a start without etcd does not
stall the loop either."""
import json
import os
import signal
import socket
import subprocess
import time

from harness import CTL, notify_recv_until
from httpc import request
import test_etcd  # its fixture (a module import: its tests are not collected here)

# A request that waits for nobody answers well within this (the figure of the async work).
FAST_S = 0.5


def timed(fn):
    t = time.time()
    r = fn()
    return r, time.time() - t


def status_url(env):
    """The API's status URL and token, asked before anything is pending (api_url asks the
    daemon for its listener's port)."""
    return env.api_url("/api/v1/status"), env.token()


def slowest_status(test, env, url, rounds=5):
    """The slowest of `rounds` status calls over the control socket and over the API."""
    url, tok = url
    slowest = 0.0
    for _ in range(rounds):
        r, took = timed(lambda: env.ctl("status"))
        test.assertEqual(r.rc, 0, r)
        slowest = max(slowest, took)
        resp, took = timed(lambda: request(url, token=tok, timeout=15))
        test.assertEqual(resp.status, 200, resp)
        slowest = max(slowest, took)
        time.sleep(0.1)
    return slowest


class EtcdReload(test_etcd.EtcdFixture):
    def reload_proc(self, env):
        return subprocess.Popen([CTL, "-c", env.config_path, "-j", "reload"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def lose_quorum(self):
        self.etcd.pause(0)
        self.etcd.pause(1)

    def regain_quorum(self):
        self.etcd.resume(0)
        self.etcd.resume(1)
        self.etcd.wait_healthy()

    def test_pending_reload_does_not_stall_status_and_a_second_one_is_queued(self):
        a = self.host("node-a")
        other = a.cgroup("other")
        a.write_service("web", ["20730/tcp"])
        url = status_url(a)
        self.lose_quorum()
        first = self.reload_proc(a)
        time.sleep(0.5)
        self.assertIsNone(first.poll(), "the reload is waiting for etcd")
        slowest = slowest_status(self, a, url)
        print(f"\n[reload] slowest status during a pending reload: {slowest:.3f} s",
              flush=True)
        self.assertLess(slowest, FAST_S, f"status waited for the pending reload: {slowest:.3f} s")
        # A second reload while the first is pending: queued behind it, it reads the files
        # once the first ended, so it sees this conflict (the first never did).
        a.write_service("dup", ["20730/tcp"])
        second = self.reload_proc(a)
        time.sleep(0.3)
        self.assertIsNone(second.poll(), "the second reload waits for the first")
        out, err = first.communicate(timeout=30)
        first_done = time.time()
        self.assertEqual(first.returncode, 69, (out, err))
        self.assertIn("unavailable", json.loads(out)["error"])
        out, err = second.communicate(timeout=30)
        self.assertEqual(second.returncode, 78, (out, err))
        self.assertIn("20730/tcp conflicts with service", json.loads(out)["error"])
        self.assertGreaterEqual(time.time(), first_done)
        # Nothing changed: web is not registered, 20730 is anyone's.
        self.assertAllowed(a, other, 20730)
        self.assertEqual(a.ok("service", "list"), [])
        rejected = a.wait_event(lambda ev: True, type="reload_rejected")
        self.assertGreaterEqual(len(rejected), 2, rejected)
        # With the quorum back the same reload goes through (the API's route this time).
        os.unlink(os.path.join(a.services_dir, "dup.json"))
        self.regain_quorum()
        deadline = time.time() + 20
        while True:
            resp = request(a.api_url("/api/v1/reload"), method="POST", token=a.token(),
                           timeout=30)
            if resp.status == 200 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json["services"], 1, resp)
        self.assertDenied(a, other, 20730)
        self.assertAllowed(a, a.svc_cgroup("web"), 20730)

    def test_client_gone_during_pending_reload(self):
        """A caller that leaves while its reload is pending: its answer is dropped, the reload
        still ends (and is reported), the daemon stays healthy."""
        a = self.host("node-a")
        a.write_service("web", ["20731/tcp"])
        url = status_url(a)
        self.lose_quorum()
        gone = self.reload_proc(a)
        time.sleep(0.5)
        gone.kill()
        gone.wait()
        self.assertLess(slowest_status(self, a, url, rounds=2), FAST_S)
        self.assertTrue(a.wait_event(lambda ev: True, timeout=20, type="reload_rejected"))
        self.assertIsNone(a.proc.poll(), "caelumd is running")
        self.regain_quorum()
        deadline = time.time() + 20
        while True:
            r = a.ctl("reload")
            if r.rc == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(r.rc, 0, r)
        self.assertDenied(a, a.cgroup("other"), 20731)

    def test_stop_during_pending_reload(self):
        """SIGTERM while a reload waits for etcd: caelumd stops cleanly (exit 0), the
        waiting caller hears that the daemon went away."""
        a = self.host("node-a")
        a.write_service("web", ["20734/tcp"])
        self.lose_quorum()
        pending = self.reload_proc(a)
        time.sleep(0.5)
        self.assertIsNone(pending.poll(), "the reload is waiting for etcd")
        self.assertEqual(a.stop(), 0, a.log())
        out, err = pending.communicate(timeout=10)
        self.assertNotEqual(pending.returncode, 0, (out, err))
        self.assertIn("stopping", a.log())


class EtcdSighup(test_etcd.EtcdFixture):
    def setUp(self):
        super().setUp()
        self.a = self.host("node-a", start=False)
        self.path = os.path.join(self.a.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.addCleanup(self.sock.close)
        env = dict(os.environ, NOTIFY_SOCKET=self.path)
        env.pop("WATCHDOG_PID", None)
        self.a.start(wait=False, env=env)

    def recv_until(self, pred, timeout=30.0):
        """(time, message) pairs until pred(message) holds; that one last."""
        return notify_recv_until(self.sock, pred, timeout, self.a.log)

    def test_sighup_pending_reload_ready_only_when_the_last_one_ended(self):
        a = self.a
        self.recv_until(lambda m: "READY" in m)
        a.write_service("web", ["20732/tcp"])
        url = status_url(a)
        self.etcd.pause(0)
        self.etcd.pause(1)
        a.proc.send_signal(signal.SIGHUP)
        t0 = time.time()
        msgs = self.recv_until(lambda m: "RELOADING" in m, timeout=5)
        self.assertEqual(msgs[-1][1]["RELOADING"], "1")
        slowest = slowest_status(self, a, url, rounds=3)
        print(f"\n[reload] slowest status during a pending SIGHUP reload: {slowest:.3f} s",
              flush=True)
        self.assertLess(slowest, FAST_S, f"status waited for the SIGHUP reload: {slowest:.3f} s")
        # Two more SIGHUPs while it is pending: one follow-up reload, after the first.
        a.proc.send_signal(signal.SIGHUP)
        a.proc.send_signal(signal.SIGHUP)
        msgs = self.recv_until(lambda m: "READY" in m, timeout=40)
        took = msgs[-1][0] - t0
        # READY only once both reloads ended, each after etcd's budget (timeout_ms 4000)
        self.assertGreater(took, 6.0, msgs)
        self.assertNotIn("READY", "".join(str(m) for _, m in msgs[:-1]))
        # and the STATUS line that follows says why the last one was rejected
        msg = self.recv_until(lambda m: "STATUS" in m and "READY" not in m, timeout=2)[-1][1]
        self.assertTrue(msg["STATUS"].startswith("reload rejected"), msg)
        self.assertIn("unavailable", msg["STATUS"])
        log = a.log()
        self.assertEqual(log.count("reload queued"), 1, log)
        self.assertAllowed(a, a.cgroup("other"), 20732)
        # The quorum back: the next SIGHUP goes through.
        self.etcd.resume(0)
        self.etcd.resume(1)
        self.etcd.wait_healthy()
        deadline = time.time() + 20
        while a.bind_in(a.cgroup("other"), 20732) == 0 and time.time() < deadline:
            a.proc.send_signal(signal.SIGHUP)
            self.recv_until(lambda m: "READY" in m, timeout=30)
        self.assertDenied(a, a.cgroup("other"), 20732)

    def test_services_dir_commit_retried_without_stalling(self):
        """Started without etcd's quorum (the local copy is enforced), the commit of
        services_dir is retried from the loop's tick: status stays fast meanwhile, and once
        the quorum is back the services reach the registry."""
        a = self.a
        self.recv_until(lambda m: "READY" in m)
        a.stop()
        a.write_service("web", ["20733/tcp"])
        self.etcd.pause(0)
        self.etcd.pause(1)
        env = dict(os.environ, NOTIFY_SOCKET=self.path)
        env.pop("WATCHDOG_PID", None)
        a.start(wait=False, env=env)
        self.recv_until(lambda m: "READY" in m, timeout=40)
        self.assertIn("not committed yet", a.log())
        url = status_url(a)  # untimed: it asks the daemon for the API's port
        # retries run every second meanwhile; none may hold the loop
        slowest = slowest_status(self, a, url, rounds=10)
        print(f"\n[reload] slowest status while services_dir's commit is retried: "
              f"{slowest:.3f} s", flush=True)
        self.assertLess(slowest, FAST_S, f"status waited for the retried commit: {slowest:.3f} s")
        self.etcd.resume(0)
        self.etcd.resume(1)
        self.wait_for(lambda: a.bind_in(a.cgroup("other"), 20733) != 0, timeout=30,
                      what="web's port enforced once the commit went through")
        self.assertEqual([s["name"] for s in a.ok("service", "list")], ["web"])
