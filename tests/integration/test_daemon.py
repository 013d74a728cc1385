# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""caelumd's lifecycle: startup checks, reload, restart after SIGKILL, teardown."""
import errno
import json
import os
import signal
import subprocess
import time

from harness import CTL, DAEMON, CaelumTest, Env


class Startup(CaelumTest):
    def test_invalid_config_exits_78_with_reason(self):
        e = self.env("badcfg", start=False)
        cfg = dict(e.config, managed_ports=["8100-8199", "70000"], bogus=1)
        e.write_config(cfg)
        p = e.start(wait=False)
        self.assertEqual(p.wait(timeout=15), 78)
        log = e.log()
        self.assertIn("managed_ports[1]: port 70000 out of range 1-65535", log)
        self.assertIn("bogus: unknown key", log)

    def test_invalid_service_exits_78_naming_file(self):
        e = self.env("badsvc", start=False, services={"alpha": ["8100/tcp", "99999"]})
        p = e.start(wait=False)
        self.assertEqual(p.wait(timeout=15), 78)
        self.assertIn("alpha.json: ports[1]: port 99999 out of range 1-65535", e.log())

    def test_conflicting_services_exit_78_naming_both(self):
        e = self.env("conflict", start=False,
                     services={"alpha": ["8100/tcp"], "beta": ["8100/tcp"]})
        p = e.start(wait=False)
        self.assertEqual(p.wait(timeout=15), 78)
        self.assertRegex(e.log(), r"beta\.json: ports\[0\]: 8100/tcp conflicts with service 'alpha'")

    def test_cgroup_root_must_be_cgroup2(self):
        e = self.env("notcg", start=False)
        e.write_config(dict(e.config, cgroup_root=e.dir))
        p = e.start(wait=False)
        self.assertEqual(p.wait(timeout=15), 78)
        self.assertIn("is not a directory on cgroup2", e.log())
        self.assertFalse(os.path.exists(os.path.join(e.bpffs, "links")))

    def test_second_daemon_on_same_state_refused(self):
        e = self.env("twice", services={"alpha": ["8100/tcp"]})
        p = subprocess.run([DAEMON, "-c", e.config_path], capture_output=True, text=True,
                           timeout=15)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another caelumd", p.stderr)
        self.assertEqual(e.ok("status")["pid"], e.proc.pid)

    def test_status_reports_kernel_verified_attachment(self):
        e = self.env("status", services={"alpha": ["8100/tcp"]})
        st = e.ok("status")
        comp = st["components"][0]
        self.assertEqual(comp["name"], "ports")
        self.assertTrue(comp["attached"])
        self.assertTrue(comp["enforcing"])
        self.assertEqual(sorted(p["name"] for p in comp["programs"]), ["cm_bind4", "cm_bind6"])
        self.assertTrue(all(p["attached"] for p in comp["programs"]))
        maps = {m["name"]: m for m in st["maps"]}
        # 100 ports x tcp, udp, and the self-verification canary port
        self.assertEqual(maps["cm_port_rules"]["entries"], 201)
        # alpha, and Caelum's own .probe, .verify-owner, .verify-tasks
        self.assertEqual(maps["cm_services"]["entries"], 4)
        self.assertEqual(st["policy"]["reserved"], 2)  # 8100/tcp and the canary
        self.assertEqual(st["policy"]["managed"], 200)
        self.assertEqual(st["registry"]["backend"], "file")
        self.assertEqual(st["events"]["lost"]["kernel_ringbuf_first"], 0)
        # Every component, in the table's order, each program with where it hooks in.
        self.assertEqual([c["name"] for c in st["components"]],
                         ["ports", "devices", "tasks", "cpu", "databases", "bandwidth"])
        hooks = {p["name"]: p["attach_type"] for c in st["components"] for p in c["programs"]}
        self.assertEqual(hooks["cm_bind4"], "cgroup_inet4_bind")
        self.assertEqual(hooks["cm_dev"], "cgroup_device")
        self.assertEqual(hooks["cm_sched_switch"], "trace_raw_tp")
        # The text form names a tracing program's tracepoint, never "(null)".
        text = e.ok("status", json_out=False)
        self.assertNotIn("(null)", text)
        self.assertRegex(text, r"cm_sched_switch\s+id \d+\s+sched_switch\s+attached")


class Reload(CaelumTest):
    def test_reload_applies_new_service(self):
        e = self.env("reload", services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        self.assertAllowed(e, other, 9500)
        e.write_service("gamma", ["9500/tcp"])
        r = e.ok("reload")
        self.assertEqual(r["services"], 2)
        self.assertDenied(e, other, 9500)
        self.assertAllowed(e, e.svc_cgroup("gamma"), 9500)
        evs = e.wait_event(lambda ev: ev["reason"] == "reload", type="policy_applied")
        self.assertTrue(evs)

    def test_reload_applies_config_and_services_together_once(self):
        """The revision a reload commits reaches the kernel in one apply, with the reload's
        config: never the new services under the old config first."""
        e = self.env("together", services={"alpha": ["8100/tcp"]})
        e.write_service("gamma", ["8150/tcp"])
        e.write_config(dict(e.config, mode="audit"))
        rev = e.ok("reload")["registry_revision"]
        evs = e.events(type="policy_applied")
        self.assertEqual([(ev["reason"], ev["mode"]) for ev in evs
                          if ev["registry_revision"] == rev], [("reload", "audit")], evs)
        self.assertAllowed(e, e.cgroup("other"), 8150)  # audit: reported, not denied

    def test_sighup_reloads(self):
        e = self.env("hup", services={"alpha": ["8100/tcp"]})
        e.remove_service("alpha")
        e.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and e.ok("service", "list"):
            time.sleep(0.05)
        self.assertEqual(e.ok("service", "list"), [])
        # 8100 is now a managed, unreserved port: nobody may bind it.
        self.assertDenied(e, e.cgroup("x"), 8100)

    def test_bad_reload_rejected_old_policy_stays(self):
        e = self.env("badreload", services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        before = e.ok("status")["registry"]["revision"]
        e.write_service("beta", ["8100/tcp", "9600/tcp"])   # conflicts with alpha
        e.write_service("gamma", '{"name": "gamma", "ports": ["9700/tcp"],}')  # syntax error
        r = e.ctl("reload")
        self.assertEqual(r.rc, 78, r)
        errors = "\n".join(r.json["errors"])
        self.assertIn("gamma.json: line 1, column", errors)
        # Nothing changed: same revision, 9600 not reserved, alpha still owns 8100.
        self.assertEqual(e.ok("status")["registry"]["revision"], before)
        self.assertAllowed(e, other, 9600)
        self.assertAllowed(e, e.svc_cgroup("alpha"), 8100)
        self.assertDenied(e, other, 8100)
        os.unlink(os.path.join(e.services_dir, "gamma.json"))
        r = e.ctl("reload")
        self.assertEqual(r.rc, 78)
        self.assertIn("beta.json: ports[0]: 8100/tcp conflicts with service 'alpha'", r.json["error"])
        self.assertTrue(e.wait_event(lambda ev: True, type="reload_rejected"))

    def test_reload_refuses_changing_bpffs(self):
        e = self.env("immut", services={"alpha": ["8100/tcp"]})
        e.write_config(dict(e.config, bpffs=e.bpffs + "-other"))
        r = e.ctl("reload")
        self.assertEqual(r.rc, 78)
        self.assertIn("bpffs: changed from", r.json["error"])
        self.assertDenied(e, e.cgroup("x"), 8100)

    def test_reload_changes_mode(self):
        e = self.env("modechange", services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        self.assertDenied(e, other, 8100)
        e.write_config(dict(e.config, mode="audit"))
        e.ok("reload")
        self.assertAllowed(e, other, 8100)
        e.write_config(dict(e.config, managed_ports=["8100-8199", "9800-9801"]))
        e.ok("reload")
        self.assertDenied(e, other, 9801)


class Restart(CaelumTest):
    CGROUP_LINKS = ("cm_bind4", "cm_bind6", "cm_dev", "cm_db_conn4", "cm_db_conn6", "cm_db_send4",
                    "cm_db_send6", "cm_db_release", "cm_bw_egress", "cm_bw_ingress")
    TRACING_LINKS = ("cm_task_fork", "cm_task_exit", "cm_task_move", "cm_sched_switch",
                     "cm_cg_mkdir", "cm_cg_rmdir")

    def links(self, e):
        return {os.path.basename(l["pinned"]): l for l in e.ok("link", "show")}

    def test_sigkill_keeps_enforcement_and_restart_reuses_links(self):
        e = self.env("restart", services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        before = self.links(e)
        self.assertEqual(sorted(before), sorted(self.CGROUP_LINKS + self.TRACING_LINKS))
        e.stop(signal.SIGKILL)
        # Daemon gone: still enforced, and the denial is not lost.
        self.assertDenied(e, other, 8100)
        self.assertAllowed(e, e.svc_cgroup("alpha"), 8100)
        self.assertEqual(e.ctl("status").rc, 69)
        e.start()
        after = self.links(e)
        self.assertEqual(sorted(after), sorted(before))
        for t in self.CGROUP_LINKS:
            self.assertEqual(after[t]["id"], before[t]["id"], "link replaced, not re-created")
            self.assertNotEqual(after[t]["prog_id"], before[t]["prog_id"], "program swapped in")
        for t in self.TRACING_LINKS:  # tracing links cannot be updated: new link, old detached
            self.assertNotEqual(after[t]["id"], before[t]["id"])
            self.assertFalse(after[t]["defunct"])
        # Exactly one program per hook: no duplicate attachment.
        progs = e.ok("prog", "show")
        self.assertEqual(len(progs), 16)
        self.assertTrue(all(p["attached"] for p in progs))
        out = subprocess.run(["bpftool", "-j", "cgroup", "show", e.root], capture_output=True,
                             text=True).stdout
        attached = json.loads(out) if out.strip() else []
        self.assertEqual(sorted(a["attach_type"] for a in attached),
                         ["cgroup_device", "cgroup_inet4_bind", "cgroup_inet4_connect",
                          "cgroup_inet6_bind", "cgroup_inet6_connect", "cgroup_inet_egress",
                          "cgroup_inet_ingress", "cgroup_inet_sock_release",
                          "cgroup_udp4_sendmsg", "cgroup_udp6_sendmsg"])
        raw = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True,
                             text=True).stdout
        ours = {l["prog_id"] for l in after.values()}
        live = [l for l in json.loads(raw) if l.get("prog_id") in ours]
        self.assertEqual(len(live), 16, "the old tracing links are gone")
        self.assertDenied(e, other, 8100)
        evs = e.wait_event(lambda ev: ev["port"] == 8100, type="bind_denied")
        self.assertTrue(evs, "the denial made while caelumd was down is read after restart")

    def test_runtime_reservation_survives_restart_and_reload(self):
        e = self.env("persist", services={"alpha": ["8100/tcp"]})
        e.ok("port", "reserve", "8120/udp", "service", "alpha")
        e.stop()
        e.start()
        self.assertIn({"port": 8120, "proto": "udp", "service": "alpha", "origin": "runtime",
                       "managed": True}, e.ok("port", "list"))
        e.ok("reload")
        self.assertIn(8120, [p["port"] for p in e.ok("port", "list") if p["proto"] == "udp"])
        self.assertAllowed(e, e.svc_cgroup("alpha"), 8120, "udp")
        self.assertDenied(e, e.cgroup("x"), 8120, "udp")

    def test_journal_keeps_ids_across_restart(self):
        e = self.env("ids", services={"alpha": ["8100/tcp"]})
        last = max(ev["id"] for ev in e.events())
        e.stop()
        e.start()
        ids = [ev["id"] for ev in e.events()]
        self.assertEqual(ids, sorted(ids))
        self.assertGreater(max(ids), last)
        with open(os.path.join(e.state_dir, "events.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual([ev["id"] for ev in lines], ids)

    def test_cgroup_root_change_moves_links(self):
        e = self.env("move", services={"alpha": ["8100/tcp"]})
        first = self.links(e)
        e.stop()
        newroot = os.path.join(e.root, "inner")
        os.makedirs(newroot)
        e.write_config(dict(e.config, cgroup_root=newroot))
        e.start()
        after = self.links(e)
        for t in self.CGROUP_LINKS:
            self.assertNotEqual(after[t]["id"], first[t]["id"])
        out = subprocess.run(["bpftool", "-j", "cgroup", "show", e.root], capture_output=True,
                             text=True).stdout
        self.assertEqual(json.loads(out) if out.strip() else [], [], "old attachment removed")
        self.assertDenied(e, os.path.join(newroot, "caelum", "alpha"), 8150)


class RingBuffer(CaelumTest):
    @staticmethod
    def rss_kib(pid):
        """RssFile: the ring's pages are the map's (file-backed); the heap moves with
        allocations, more so under ASan's quarantine."""
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("RssFile:"))

    def wait_unmapped(self, e, timeout=6.0):
        deadline = time.time() + timeout
        while e.ok("status")["events"]["ring_mapped"]:
            self.assertLess(time.time(), deadline, "cm_events still mapped after 2 s idle")
            time.sleep(0.2)

    def test_ring_mapped_only_while_records_flow(self):
        """cm_events is mapped when a record arrives, unmapped after 2 s without one, mapped
        again by the next: no record lost or read twice across the remaps, and idle the ring
        costs no resident memory (mapped, a 4 MiB ring is 8 MiB of RSS)."""
        e = self.env("ringmap", services={"alpha": ["8100/tcp"]},
                     extra={"verify": {"interval_s": 0}, "ringbuf_bytes": 4 << 20})
        other = e.cgroup("other")
        self.wait_unmapped(e)
        maps = e.ok("status")["events"]["ring_maps"]
        idle = self.rss_kib(e.proc.pid)
        for n, port in enumerate((8101, 8102), 1):
            self.assertDenied(e, other, port)
            self.assertEqual(len(e.wait_event(lambda ev: ev["port"] == port,
                                              type="bind_denied")), 1)
            ev = e.ok("status")["events"]
            self.assertTrue(ev["ring_mapped"])
            self.assertEqual(ev["ring_maps"], maps + n)
            self.assertGreater(self.rss_kib(e.proc.pid) - idle, 7 * 1024,
                               "mapped: the ring's data pages, twice")
            self.wait_unmapped(e)
            self.assertLess(self.rss_kib(e.proc.pid) - idle, 1024)
        self.assertEqual(e.ok("status")["events"]["lost"]["kernel_ringbuf_first"], 0)


    def test_ring_that_cannot_be_mapped_does_not_spin(self):
        """If mapping the ring fails (here: RLIMIT_AS leaves no room for its 8 MiB), caelumd
        stops polling it until its next tick instead of spinning on a readable fd; the
        records wait in the ring and arrive once it can be mapped."""
        e = self.env("ringnomem", services={"alpha": ["8100/tcp"]},
                     extra={"verify": {"interval_s": 0}, "ringbuf_bytes": 4 << 20})
        self.wait_unmapped(e)
        pid = e.proc.pid

        def field(name):
            with open(f"/proc/{pid}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith(name))

        def cpu_s():
            with open(f"/proc/{pid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
        limit = (field("VmSize:") + 4096) * 1024
        subprocess.run(["prlimit", f"--pid={pid}", f"--as={limit}:"], check=True)
        try:
            self.assertDenied(e, e.cgroup("other"), 8101)
            time.sleep(0.3)
            c0 = cpu_s()
            time.sleep(1.0)
            self.assertLess(cpu_s() - c0, 0.3, "caelumd spins on the ring it cannot map")
            self.assertFalse(e.ok("status")["events"]["ring_mapped"])
        finally:
            subprocess.run(["prlimit", f"--pid={pid}", "--as=unlimited:"], check=True)
        self.assertEqual(len(e.wait_event(lambda ev: ev["port"] == 8101, type="bind_denied")),
                         1)
        self.assertIn("failed to map the event ring buffer", e.log())


class Teardown(CaelumTest):
    def test_teardown_removes_links_and_pins(self):
        e = self.env("teardown", services={"alpha": ["8100/tcp"]})
        other = e.cgroup("other")
        r = e.ctl("teardown")
        self.assertEqual(r.rc, 1, "refused while caelumd runs")
        self.assertIn("caelumd is running", r.json["error"])
        e.stop()
        self.assertDenied(e, other, 8100)
        r = e.ok("teardown")
        self.assertEqual(len(r["links_detached"]), 16)
        # the first version's 15, cm_port_a/b/owners, cm_db_host, cm_netns, cm_cg_follow/alias,
        # cm_db_slots, cm_bw, cm_bw_count
        self.assertEqual(len(r["maps_unpinned"]), 25)
        self.assertAllowed(e, other, 8100)
        self.assertFalse(os.path.exists(e.bpffs))
        self.assertEqual(e.ok("link", "show"), [])


class Permissions(CaelumTest):
    def test_non_root_gets_77(self):
        e = self.env("perm", services={"alpha": ["8100/tcp"]})
        os.chmod(e.dir, 0o755)
        os.chmod(e.config_path, 0o644)
        r = e.ctl("status", user="nobody")
        self.assertEqual(r.rc, 77, r)
        self.assertIn("permission denied", r.json["error"])
