# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""systemd's notify protocol (sd_notify through libsystemd), without systemd: the test binds
the datagram socket that $NOTIFY_SOCKET names and reads what caelumd sends. And the
capabilities caelumd really runs with, which make test-package bounds to the unit's set."""
import os
import signal
import socket
import time

from harness import DAEMON_WRAPPER, CaelumTest, notify_recv_until


def caps_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no CapEff in /proc/{pid}/status")


class Notify(CaelumTest):
    def setUp(self):
        self.e = self.env("notify", start=False, services={"alpha": ["8100/tcp"]})
        self.path = os.path.join(self.e.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.addCleanup(self.sock.close)
        self.got = []

    def start(self, **extra):
        env = dict(os.environ, NOTIFY_SOCKET=self.path, **extra)
        env.pop("WATCHDOG_PID", None)
        self.e.start(wait=False, env=env)

    def recv_until(self, pred, timeout=15.0):
        """Messages (dicts of the KEY=VALUE lines) until pred(msg) holds; that one last."""
        return [m for _, m in notify_recv_until(self.sock, pred, timeout, self.e.log)]

    def test_ready_only_once_enforcing_with_revision(self):
        self.start()
        msgs = self.recv_until(lambda m: "READY" in m)
        # At READY the programs are attached and the policy is in the kernel: a bind by
        # anyone but alpha to alpha's port is refused right now, before anything else waits.
        self.assertDenied(self.e, self.e.cgroup("unmanaged/app"), 8100)
        self.assertEqual(msgs[-1]["READY"], "1")
        st = self.e.ok("status")
        rev = st["policy"]["registry_revision"]
        self.assertEqual(msgs[-1]["STATUS"], f"enforcing registry revision {rev} (1 services)")
        # A registry change is reported with its new revision.
        self.e.ok("port", "reserve", "8101", "service", "alpha")
        m = self.recv_until(lambda m: "STATUS" in m)[-1]
        self.assertEqual(m["STATUS"], f"enforcing registry revision {rev + 1} (1 services)")

    def test_reload_and_stop(self):
        self.start()
        self.recv_until(lambda m: "READY" in m)
        self.e.proc.send_signal(signal.SIGHUP)
        msgs = self.recv_until(lambda m: "READY" in m)
        self.assertEqual(msgs[0].get("RELOADING"), "1", msgs)
        self.e.write_config({**self.e.config, "ringbuf_bytes": 1 << 20})
        self.e.proc.send_signal(signal.SIGHUP)
        msgs = self.recv_until(lambda m: m.get("STATUS", "").startswith("reload rejected"))
        self.assertIn("ringbuf_bytes", msgs[-1]["STATUS"])
        self.e.write_config()
        self.e.proc.send_signal(signal.SIGTERM)
        m = self.recv_until(lambda m: "STOPPING" in m)[-1]
        self.assertEqual(m["STATUS"], "stopping; the pinned programs stay attached")
        self.assertEqual(self.e.proc.wait(timeout=15), 0)

    def test_watchdog_pings_at_half_the_interval(self):
        self.start(WATCHDOG_USEC="400000")
        self.recv_until(lambda m: "READY" in m)
        t0 = time.time()
        self.recv_until(lambda m: "WATCHDOG" in m, timeout=2)
        self.recv_until(lambda m: "WATCHDOG" in m, timeout=2)
        # Two pings at 200 ms apart (the loop ticks every 250 ms): well within one interval.
        self.assertLess(time.time() - t0, 1.0)

    def test_no_watchdog_pings_without_watchdog_usec(self):
        self.start()
        msgs = self.recv_until(lambda m: "READY" in m)
        self.sock.settimeout(1.0)
        try:
            extra = self.sock.recv(4096).decode()
        except socket.timeout:
            extra = ""
        self.assertNotIn("WATCHDOG", extra, msgs)


class Capabilities(CaelumTest):
    def test_daemon_runs_with_the_expected_capabilities(self):
        """Under CAELUM_DAEMON_WRAPPER caelumd has exactly CAELUM_EXPECT_CAPS (the unit's
        bounding set, as a hex mask); without a wrapper, those of the test runner."""
        e = self.env("caps")
        want = os.environ.get("CAELUM_EXPECT_CAPS")
        if DAEMON_WRAPPER:
            self.assertIsNotNone(want, "CAELUM_DAEMON_WRAPPER without CAELUM_EXPECT_CAPS")
            self.assertEqual(caps_of(e.proc.pid), int(want, 16))
        else:
            self.assertEqual(caps_of(e.proc.pid), caps_of(os.getpid()))
