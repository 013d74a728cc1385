# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""In-kernel port enforcement: real bind() calls from real cgroups."""
import errno
import signal
import time

from harness import CaelumTest

SERVICES = {"alpha": ["8100/tcp", "8101/udp", "9000"], "beta": ["8110/tcp", "9100-9102/udp"]}


class PortEnforcement(CaelumTest):
    def setUp(self):
        self.e = self.env("ports", services=SERVICES)
        self.alpha = self.e.svc_cgroup("alpha")
        self.beta = self.e.svc_cgroup("beta")
        self.other = self.e.cgroup("unmanaged/app")

    def test_tcp4_owner_allowed_others_denied(self):
        self.assertAllowed(self.e, self.alpha, 8100)
        self.assertDenied(self.e, self.beta, 8100)
        self.assertDenied(self.e, self.other, 8100)
        self.assertAllowed(self.e, self.alpha, 9000)
        self.assertDenied(self.e, self.other, 9000)

    def test_tcp6_owner_allowed_others_denied(self):
        self.assertAllowed(self.e, self.alpha, 8100, family=6)
        self.assertDenied(self.e, self.beta, 8100, family=6)
        self.assertDenied(self.e, self.other, 9000, family=6)

    def test_udp_owner_allowed_others_denied(self):
        self.assertAllowed(self.e, self.alpha, 8101, "udp")
        self.assertDenied(self.e, self.other, 8101, "udp")
        self.assertAllowed(self.e, self.beta, 9101, "udp")
        self.assertDenied(self.e, self.alpha, 9101, "udp")
        self.assertAllowed(self.e, self.alpha, 8101, "udp", family=6)

    def test_protocol_is_part_of_the_reservation(self):
        # 8100 is reserved for tcp only: udp 8100 is a managed, unreserved port.
        self.assertDenied(self.e, self.alpha, 8100, "udp")
        # 9000 is tcp (the default); udp 9000 is outside the managed range: free.
        self.assertAllowed(self.e, self.other, 9000, "udp")

    def test_descendant_cgroup_of_owner_allowed(self):
        child = self.e.cgroup("caelum/alpha/worker/deeper")
        self.assertAllowed(self.e, child, 8100)

    def test_managed_range_unreserved_denied_for_everyone(self):
        for cg in (self.alpha, self.beta, self.other):
            self.assertDenied(self.e, cg, 8150)
            self.assertDenied(self.e, cg, 8199, "udp")
        evs = self.e.wait_event(lambda ev: ev["port"] == 8150 and ev["reason"] == "managed_range",
                                type="bind_denied")
        self.assertTrue(evs)
        self.assertIsNone(evs[0]["owner"])

    def test_unmanaged_ports_and_port_zero_allowed(self):
        self.assertAllowed(self.e, self.other, 8099)
        self.assertAllowed(self.e, self.other, 8200)
        self.assertAllowed(self.e, self.other, 40000, "udp")
        got = self.e.bind_in(self.other, 0)
        self.assertGreaterEqual(got, 1000, "bind to port 0 should succeed with an ephemeral port")

    def test_denial_event_names_offender_and_owner(self):
        self.assertDenied(self.e, self.beta, 8100)
        evs = self.e.wait_event(lambda ev: ev["port"] == 8100, type="bind_denied")
        self.assertEqual(len(evs), 1, evs)
        ev = evs[0]
        self.assertEqual(ev["service"], "beta")
        self.assertEqual(ev["owner"], "alpha")
        self.assertEqual(ev["action"], "denied")
        self.assertEqual(ev["proto"], "tcp")
        self.assertEqual(ev["family"], "ipv4")
        self.assertEqual(ev["reason"], "reserved")
        self.assertEqual(ev["count"], 1)
        self.assertEqual(ev["host"], "test-node")
        self.assertEqual(ev["comm"], "python3")
        self.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
        for key in ("pid", "cgroup_id", "id"):
            self.assertIsInstance(ev[key], int)

    def test_unmanaged_offender_is_null(self):
        self.assertDenied(self.e, self.other, 9000)
        evs = self.e.wait_event(lambda ev: ev["port"] == 9000, type="bind_denied")
        self.assertEqual(evs[0]["service"], None)
        self.assertEqual(evs[0]["owner"], "alpha")

    def test_identical_denials_folded_with_count(self):
        for _ in range(10):
            self.assertEqual(self.e.bind_in(self.other, 8110), errno.EPERM)
        # The first is reported at once; the other 9 in one follow-up after the window.
        first = self.e.wait_event(lambda ev: ev["port"] == 8110, type="bind_denied")
        self.assertEqual([ev["count"] for ev in first][:1], [1])
        evs = self.e.wait_event(lambda ev: ev["port"] == 8110 and ev["followup"],
                                timeout=4, type="bind_denied")
        self.assertEqual(len(evs), 1, evs)
        self.assertEqual(evs[0]["count"], 9)
        total = sum(ev["count"] for ev in self.e.events(type="bind_denied") if ev["port"] == 8110)
        self.assertEqual(total, 10)
        # After a quiet window the next denial is reported at once again.
        time.sleep(2.2)
        self.assertEqual(self.e.bind_in(self.other, 8110), errno.EPERM)
        evs = self.e.wait_event(lambda ev: ev["port"] == 8110 and not ev["followup"],
                                type="bind_denied")
        self.assertEqual(len(evs), 2, evs)

    def test_different_cgroups_not_folded(self):
        second = self.e.cgroup("unmanaged/other2")
        self.assertDenied(self.e, self.other, 8110)
        self.assertDenied(self.e, second, 8110)
        evs = self.e.wait_event(lambda ev: ev["port"] == 8110, type="bind_denied")
        deadline = time.time() + 3
        while len(evs) < 2 and time.time() < deadline:
            evs = self.e.wait_event(lambda ev: ev["port"] == 8110, type="bind_denied")
        self.assertEqual(len({ev["cgroup_id"] for ev in evs}), 2, evs)
        self.assertTrue(all(ev["count"] == 1 and not ev["followup"] for ev in evs))

    def test_kernel_counters_in_status(self):
        self.assertDenied(self.e, self.other, 8100)
        st = self.e.ok("status")
        self.assertGreaterEqual(st["events"]["denied"], 1)
        for key in ("kernel_ringbuf_first", "kernel_ringbuf_followup", "journal", "subscribers"):
            self.assertEqual(st["events"]["lost"][key], 0)
        self.assertEqual(st["events"]["flush_errors"], 0)
        self.assertEqual(st["events"]["unaggregated"], 0)

    def test_folding_while_daemon_down_is_kept(self):
        self.e.stop(signal.SIGKILL)
        for _ in range(5):
            self.assertEqual(self.e.bind_in(self.other, 8110), errno.EPERM)
        time.sleep(1.2)  # window over, nobody flushed: the next occurrence rolls it
        self.assertEqual(self.e.bind_in(self.other, 8110), errno.EPERM)
        self.e.start()
        evs = self.e.wait_event(lambda ev: ev["port"] == 8110, type="bind_denied")
        deadline = time.time() + 3
        while len(evs) < 3 and time.time() < deadline:
            time.sleep(0.1)
            evs = self.e.wait_event(lambda ev: ev["port"] == 8110, type="bind_denied")
        self.assertEqual(sorted((ev["count"], ev["followup"]) for ev in evs),
                         [(1, False), (1, False), (4, True)])


class AuditMode(CaelumTest):
    def test_audit_allows_and_reports(self):
        e = self.env("audit", mode="audit", services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        self.assertAllowed(e, other, 8100)
        self.assertAllowed(e, other, 8150)
        evs = e.wait_event(lambda ev: ev["port"] in (8100, 8150), type="bind_denied")
        deadline = time.time() + 3
        while len(evs) < 2 and time.time() < deadline:
            evs = e.wait_event(lambda ev: ev["port"] in (8100, 8150), type="bind_denied")
        self.assertEqual(sorted(ev["port"] for ev in evs), [8100, 8150])
        self.assertTrue(all(ev["action"] == "audited" for ev in evs), evs)
        st = e.ok("status")
        self.assertEqual(st["components"][0]["mode"], "audit")
        self.assertFalse(st["components"][0]["enforcing"])
        self.assertGreaterEqual(st["events"]["audited"], 2)

    def test_component_override_off(self):
        e = self.env("off", components={"ports": "off"}, services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        self.assertAllowed(e, other, 8100)
        time.sleep(0.3)
        self.assertEqual([ev for ev in e.events(type="bind_denied")], [])
        self.assertEqual(e.ok("status")["components"][0]["mode"], "off")

    def test_component_override_enforce_under_audit(self):
        e = self.env("ovr", mode="audit", components={"ports": "enforce"},
                     services={"alpha": ["8100/tcp"]})
        self.assertDenied(e, e.cgroup("other"), 8100)


class Losses(CaelumTest):
    def test_ringbuf_overflow_is_counted_and_reported_once(self):
        # No self-verification at start: its probes would write to the tiny ring too.
        e = self.env("loss", managed=("8100-8299",),
                     extra={"ringbuf_bytes": 4096, "verify": {"interval_s": 0}})
        other = e.cgroup("other")
        e.stop(signal.SIGKILL)  # nobody drains the ring buffer now
        for port in range(8100, 8300):  # 200 distinct (cgroup, port): nothing folds
            self.assertEqual(e.bind_in(other, port), errno.EPERM)
        e.start()
        lost_ev = e.wait_event(lambda ev: ev["reason"] == "ringbuf_full", timeout=5,
                               type="events_lost")
        self.assertEqual(len(lost_ev), 1, lost_ev)
        lost = lost_ev[0]["count"]
        got = [ev for ev in e.events(type="bind_denied")]
        self.assertGreater(lost, 0)
        self.assertGreater(len(got), 0)
        self.assertEqual(len(got) + lost, 200, "every denial is either delivered or counted")
        st = e.ok("status")
        self.assertEqual(st["events"]["lost"]["kernel_ringbuf_first"], lost)
        self.assertEqual(st["events"]["denied"], 200)
        e.stop()
        e.start()
        time.sleep(1.5)
        lost_all = e.events(type="events_lost")
        self.assertEqual(len(lost_all), 1, lost_all)
