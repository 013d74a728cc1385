# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""caelumctl: JSON shapes, exit codes, reserve/release/alloc/who, run, service apply/delete."""
import json
import os
import subprocess
import sys
import time

from harness import CTL, CaelumTest


class Shapes(CaelumTest):
    def setUp(self):
        self.e = self.env("shapes", services={"alpha": ["8100/tcp", "8101/udp", "9000"],
                                              "beta": ["8110-8111/tcp"]})

    def test_status_text_names_every_hook_in_columns(self):
        """Plain status: every program says where it hooks in (no "(null)" for dev and
        tracing programs), and the id column lines up whatever the names' lengths."""
        out = self.e.ok("status", json_out=False)
        self.assertNotIn("(null)", out)
        progs = [ln for ln in out.splitlines() if ln.startswith("    ") and " id " in ln]
        self.assertGreaterEqual(len(progs), 10, out)
        self.assertEqual(len({ln.index(" id ") for ln in progs}), 1, out)
        hooks = {ln.split()[3] for ln in progs}
        self.assertTrue({"cgroup_inet4_bind", "cgroup_device", "sched_switch"} <= hooks, hooks)
        self.assertIn("registry revision", out)

    def test_ctl_does_not_load_libcurl(self):
        """libcurl's library tree costs every caelumctl call ~5 ms of dynamic loading;
        caelumctl probes databases only, HTTP probes are caelumd's (user/daemon/probe_http.c)."""
        libs = subprocess.run(["ldd", CTL], capture_output=True, text=True, check=True).stdout
        self.assertNotIn("libcurl", libs)
        self.assertIn("libbpf", libs)

    def test_port_list_shape(self):
        ports = self.e.ok("port", "list")
        self.assertEqual([(p["port"], p["proto"], p["service"]) for p in ports],
                         [(8100, "tcp", "alpha"), (8101, "udp", "alpha"), (8110, "tcp", "beta"),
                          (8111, "tcp", "beta"), (9000, "tcp", "alpha")])
        self.assertEqual(set(ports[0]), {"port", "proto", "service", "origin", "managed"})
        self.assertEqual(ports[-1]["managed"], False)

    def test_service_list_shape(self):
        svcs = self.e.ok("service", "list")
        self.assertEqual([s["name"] for s in svcs], ["alpha", "beta"])
        self.assertEqual(svcs[0]["ports"], ["8100/tcp", "8101/udp", "9000/tcp"])
        self.assertEqual(svcs[1]["ports"], ["8110-8111/tcp"])
        self.assertEqual(svcs[0]["origin"], "file")
        self.assertEqual(svcs[0]["state"], "stopped")
        self.assertTrue(svcs[0]["source"].endswith("/alpha.json"))
        self.assertEqual(svcs[0]["cgroup"], self.e.svc_cgroup("alpha"))

    def test_service_show(self):
        s = self.e.ok("service", "show", "beta")
        self.assertEqual(s["name"], "beta")
        self.assertEqual(s["processes"], 0)
        self.assertIn("recent_denials", s)
        r = self.e.ctl("service", "show", "nope")
        self.assertEqual(r.rc, 1)
        self.assertEqual(r.json["error"], "service 'nope' not found")

    def test_events_shape(self):
        evs = self.e.events()
        self.assertTrue(evs)
        keys = {"id", "time", "host", "type", "action", "service", "pid", "comm", "cgroup_id",
                "port", "proto", "family", "owner", "count"}
        for ev in evs:
            self.assertTrue(keys <= set(ev), ev)
        types = [ev["type"] for ev in evs]
        self.assertIn("policy_applied", types)
        self.assertIn("daemon_started", types)
        self.assertEqual(len(self.e.events(limit=1)), 1)
        self.assertEqual(self.e.events(type="daemon_started")[0]["type"], "daemon_started")

    def test_map_dump_port_rules(self):
        rules = self.e.ok("map", "dump", "cm_port_rules")
        by_key = {(r["port"], r["proto"]): r for r in rules}
        self.assertEqual(by_key[(8100, "tcp")]["service"], "alpha")
        self.assertEqual(by_key[(8100, "tcp")]["flags"], ["reserved", "managed"])
        self.assertEqual(by_key[(8150, "udp")]["flags"], ["managed"])
        self.assertEqual(by_key[(9000, "tcp")]["flags"], ["reserved"])
        self.assertNotIn((9000, "udp"), by_key)
        cfg = self.e.ok("map", "dump", "cm_config")
        self.assertEqual(cfg["modes"]["ports"], "enforce")
        svcs = self.e.ok("map", "dump", "cm_services")
        self.assertEqual(sorted(s["service"] for s in svcs if not s["internal"]), ["alpha", "beta"])
        self.assertEqual(sorted(s["service"] for s in svcs if s["internal"]),
                         [".probe", ".verify-owner", ".verify-tasks"])
        canary = by_key[(65001, "tcp")]  # the self-verification canary
        self.assertEqual((canary["service"], canary["flags"]), (".verify-owner", ["reserved"]))
        r = self.e.ctl("map", "dump", "cm_events")
        self.assertEqual(r.rc, 1)
        self.assertIn("ring buffer", r.json["error"])

    def test_map_and_prog_show(self):
        maps = {m["name"]: m for m in self.e.ok("map", "show")}
        self.assertEqual(set(maps), {"cm_events", "cm_stats", "cm_config", "cm_services",
                                     "cm_agg", "cm_port_outer", "cm_port_a", "cm_port_b",
                                     "cm_port_owners", "cm_devices",
                                     "cm_task_svc", "cm_task_live", "cm_task_budget",
                                     "cm_cpu_time", "cm_db_addrs", "cm_db_host", "cm_db_decl",
                                     "cm_db_conns", "cm_db_slots", "cm_db_sk", "cm_netns",
                                     "cm_cg_follow", "cm_cg_alias", "cm_bw", "cm_bw_count"})
        self.assertEqual(maps["cm_port_a"]["max_entries"], 131072)
        # exactly one table is in cm_port_outer[0]; both hold the same rules
        self.assertEqual(sorted([maps["cm_port_a"]["active"], maps["cm_port_b"]["active"]]),
                         [False, True])
        a, b = self.e.ok("map", "dump", "cm_port_a"), self.e.ok("map", "dump", "cm_port_b")
        self.assertGreater(len(a), 100)
        self.assertEqual(a, b)
        self.assertEqual(a, self.e.ok("map", "dump", "cm_port_rules"))
        progs = self.e.ok("prog", "show")
        self.assertEqual({p.get("attach_type") or p["tracepoint"] for p in progs},
                         {"cgroup_inet4_bind", "cgroup_inet6_bind", "cgroup_device",
                          "sched_process_fork", "sched_process_exit", "cgroup_attach_task",
                          "sched_switch", "cgroup_inet4_connect", "cgroup_inet6_connect",
                          "cgroup_udp4_sendmsg", "cgroup_udp6_sendmsg",
                          "cgroup_inet_sock_release", "cgroup_mkdir", "cgroup_rmdir",
                          "cgroup_inet_egress", "cgroup_inet_ingress"})
        for p in progs:
            self.assertIn("run_time_ns", p)
            self.assertIn("run_cnt", p)

    def test_human_output_is_not_json(self):
        out = self.e.ok("port", "list", json_out=False)
        self.assertIn("PORT", out)
        self.assertIn("8100", out)

    def test_usage_errors_exit_2(self):
        for args in (["port", "reserve", "8100"], ["port", "frobnicate"], ["nosuchobject"],
                     ["port", "reserve", "abc", "service", "alpha"],
                     ["events", "limit", "0"], ["run", "alpha"]):
            r = self.e.ctl(*args)
            self.assertEqual(r.rc, 64, (args, r))
            self.assertIn("error", r.json)

    def test_pretty_is_valid_json(self):
        r = self.e.ctl("-p", "status")
        self.assertEqual(r.rc, 0)
        self.assertIn("\n  ", r.out)
        self.assertEqual(json.loads(r.out)["host"], "test-node")

    def test_daemon_down_exit_69(self):
        self.e.stop()
        r = self.e.ctl("port", "list")
        self.assertEqual(r.rc, 69)
        self.assertIn("caelumd is not running", r.json["error"])


class Reservations(CaelumTest):
    def setUp(self):
        self.e = self.env("resv", services={"alpha": ["8100/tcp"], "beta": ["8110/tcp"]})
        self.other = self.e.cgroup("other")

    def test_reserve_and_release(self):
        self.assertDenied(self.e, self.e.svc_cgroup("alpha"), 8130)
        r = self.e.ok("port", "reserve", "8130", "service", "alpha")
        self.assertEqual(r, {"port": 8130, "proto": "tcp", "service": "alpha"})
        self.assertAllowed(self.e, self.e.svc_cgroup("alpha"), 8130)
        self.assertDenied(self.e, self.e.svc_cgroup("beta"), 8130)
        self.assertEqual(self.e.ok("port", "release", "8130")["service"], "alpha")
        self.assertDenied(self.e, self.e.svc_cgroup("alpha"), 8130)
        types = [ev["type"] for ev in self.e.events()]
        self.assertIn("port_reserved", types)
        self.assertIn("port_released", types)

    def test_reserve_owned_by_other_refused(self):
        r = self.e.ctl("port", "reserve", "8100/tcp", "service", "beta")
        self.assertEqual(r.rc, 78)
        self.assertIn("already reserved by service 'alpha'", r.json["error"])
        r = self.e.ctl("port", "reserve", "8140", "service", "nosuch")
        self.assertEqual(r.rc, 78)
        self.assertIn("unknown service 'nosuch'", r.json["error"])

    def test_host_only_reservation(self):
        """port reserve ... host H over the file backend: this host's is enforced here,
        another host's is listed but not enforced; conflicts and bad input change nothing."""
        r = self.e.ok("port", "reserve", "9400", "service", "alpha", "host", "test-node")
        self.assertEqual(r, {"port": 9400, "proto": "tcp", "service": "alpha",
                             "host": "test-node"})
        self.assertDenied(self.e, self.other, 9400)
        self.assertAllowed(self.e, self.e.svc_cgroup("alpha"), 9400)
        self.e.ok("port", "reserve", "9401", "service", "beta", "host", "node-x")
        self.assertAllowed(self.e, self.other, 9401)
        # the same port on another host for another service
        self.e.ok("port", "reserve", "9400", "service", "beta", "host", "node-x")
        self.assertDenied(self.e, self.e.svc_cgroup("beta"), 9400)
        listed = {(p["port"], p.get("host")): p["service"] for p in self.e.ok("port", "list")}
        self.assertEqual(listed[(9400, "test-node")], "alpha")
        self.assertEqual(listed[(9400, "node-x")], "beta")
        self.assertEqual(listed[(9401, "node-x")], "beta")
        self.assertEqual(listed[(8100, None)], "alpha")
        text = self.e.ctl("port", "list", json_out=False).out
        self.assertRegex(text, r"9401\s+tcp\s+beta\s+runtime\s+no\s+node-x")
        beta = self.e.ok("service", "show", "beta")
        self.assertIn({"port": "9401/tcp", "host": "node-x"}, beta["host_ports"])
        self.assertNotIn("9401/tcp", beta["ports"])
        self.assertIn("9400/tcp", self.e.ok("service", "show", "alpha")["runtime_ports"])

        before = self.e.ok("port", "list")
        r = self.e.ctl("port", "reserve", "9400", "service", "beta", "host", "test-node")
        self.assertEqual(r.rc, 78, r)
        self.assertIn("already reserved on host 'test-node' by service 'alpha'", r.json["error"])
        r = self.e.ctl("port", "reserve", "9400", "service", "beta")
        self.assertEqual(r.rc, 78, r)
        self.assertIn("already reserved on host", r.json["error"])
        r = self.e.ctl("port", "reserve", "9402", "service", "alpha", "host", "bad_host")
        self.assertEqual(r.rc, 64, r)
        self.assertIn("host", r.json["error"])
        self.assertIn("bad_host", r.json["error"])
        r = self.e.ctl("port", "reserve", "0", "service", "alpha", "host", "test-node")
        self.assertEqual(r.rc, 64, r)
        self.assertIn("port 0", r.json["error"])
        r = self.e.ctl("port", "reserve", "9402", "service", "alpha", "host")
        self.assertEqual(r.rc, 64, r)
        # -j keeps its promise of one JSON document on stdout for help and usage too
        for args in (("token",), ("port", "help"), ("service", "hel"), ("help",)):
            r = self.e.ctl(*args)
            self.assertEqual((r.rc, json.loads(r.out)), (0, None), (args, r))
        # already the service's: success, nothing written
        self.e.ok("port", "reserve", "9400", "service", "alpha", "host", "test-node")
        self.assertEqual(self.e.ok("port", "list"), before)

        r = self.e.ctl("port", "release", "9400")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not reserved", r.json["error"])
        r = self.e.ok("port", "release", "9400", "host", "test-node")
        self.assertEqual(r["host"], "test-node")
        self.assertAllowed(self.e, self.other, 9400)
        self.assertAllowed(self.e, self.e.svc_cgroup("beta"), 9400)  # node-x's only now
        ev = [x for x in self.e.events() if x["type"] == "port_released"]
        self.assertEqual(ev[-1].get("on_host"), "test-node")
        # alloc reserves on every host: a port another host holds is not free
        self.e.ok("port", "reserve", "8101", "service", "beta", "host", "node-x")
        self.assertEqual(self.e.ok("port", "alloc", "service", "alpha")["port"], 8102)

    def test_reserve_vs_live_listener(self):
        p = self.e.listen_in(self.other, 9300)
        r = self.e.ctl("port", "reserve", "9300", "service", "alpha")
        self.assertEqual(r.rc, 78, r)
        self.assertIn(f"9300/tcp is bound by pid {p.pid} (python3)", r.json["error"])
        self.assertNotIn(9300, [x["port"] for x in self.e.ok("port", "list")])
        # The same listener inside the service is fine.
        p.kill()
        p.wait()
        self.e.listen_in(self.e.svc_cgroup("alpha"), 9300)
        self.e.ok("port", "reserve", "9300", "service", "alpha")

    def test_release_spec_port_refused(self):
        r = self.e.ctl("port", "release", "8100")
        self.assertEqual(r.rc, 78)
        self.assertIn("declared in the spec of service 'alpha'", r.json["error"])
        r = self.e.ctl("port", "release", "8199/udp")
        self.assertEqual(r.rc, 1)
        self.assertIn("not reserved", r.json["error"])

    def test_alloc_lowest_free(self):
        a = self.e.ok("port", "alloc", "service", "alpha")
        self.assertEqual((a["port"], a["proto"]), (8101, "tcp"))
        b = self.e.ok("port", "alloc", "service", "beta", "proto", "udp")
        self.assertEqual((b["port"], b["proto"]), (8100, "udp"))
        c = self.e.ok("port", "alloc", "service", "beta")
        self.assertEqual(c["port"], 8102)
        self.assertAllowed(self.e, self.e.svc_cgroup("alpha"), 8101)

    def test_alloc_exhausted(self):
        e = self.env("alloc2", managed=("8400-8401",), services={"alpha": ["8400/tcp"]})
        self.assertEqual(e.ok("port", "alloc", "service", "alpha")["port"], 8401)
        r = e.ctl("port", "alloc", "service", "alpha")
        self.assertEqual(r.rc, 78)
        self.assertIn("no free tcp port", r.json["error"])

    def test_alloc_skips_squatter(self):
        e = self.env("squat", start=False, services={"alpha": ["8100/tcp"]})
        e.listen_in(e.cgroup("other"), 8101)  # bound before Caelum enforced anything
        e.start()
        a = e.ok("port", "alloc", "service", "alpha")
        self.assertEqual(a["port"], 8102)

    def test_who(self):
        p = self.e.listen_in(self.e.svc_cgroup("alpha"), 8100)
        w = self.e.ok("port", "who", "8100")
        self.assertEqual(w["owner"], "alpha")
        self.assertTrue(w["managed"])
        self.assertEqual(len(w["listeners"]), 1)
        l = w["listeners"][0]
        self.assertEqual((l["pid"], l["comm"], l["in_owner"], l["listening"]),
                         (p.pid, "python3", True, True))
        self.assertTrue(l["cgroup"].endswith("/caelum/alpha"))
        w = self.e.ok("port", "who", "8177/udp")
        self.assertEqual((w["owner"], w["listeners"]), (None, []))


class ServiceCommands(CaelumTest):
    def test_apply_and_delete(self):
        e = self.env("apply", services={"alpha": ["8100/tcp"]})
        spec = os.path.join(e.dir, "gamma.json")
        with open(spec, "w") as f:
            json.dump({"name": "gamma", "ports": ["8120/tcp", "8121/udp"]}, f)
        s = e.ok("service", "apply", spec)
        self.assertEqual((s["name"], s["origin"]), ("gamma", "api"))
        self.assertAllowed(e, e.svc_cgroup("gamma"), 8120)
        self.assertDenied(e, e.cgroup("x"), 8120)
        e.stop()
        e.start()
        self.assertIn("gamma", [x["name"] for x in e.ok("service", "list")])
        e.ok("service", "delete", "gamma")
        self.assertFalse(os.path.exists(e.svc_cgroup("gamma")))
        self.assertDenied(e, e.cgroup("x"), 8120)  # managed again, unreserved
        r = e.ctl("service", "delete", "alpha")
        self.assertEqual(r.rc, 78)
        self.assertIn("remove the file and reload", r.json["error"])

    def test_apply_invalid_names_field_and_changes_nothing(self):
        e = self.env("applybad", services={"alpha": ["8100/tcp"]})
        spec = os.path.join(e.dir, "bad.json")
        with open(spec, "w") as f:
            json.dump({"name": "gamma", "ports": ["8120/tcp", "8100/tcp", 70000], "x": 1}, f)
        r = e.ctl("service", "apply", spec)
        self.assertEqual(r.rc, 78)
        errs = r.json["errors"]
        self.assertIn(f"{spec}: x: unknown key", errs)
        self.assertIn(f"{spec}: ports[2]: port 70000 out of range 1-65535", errs)
        self.assertEqual([s["name"] for s in e.ok("service", "list")], ["alpha"])
        with open(spec, "w") as f:
            json.dump({"name": "gamma", "ports": ["8100/tcp"]}, f)
        r = e.ctl("service", "apply", spec)
        self.assertEqual(r.rc, 78)
        self.assertIn("8100/tcp conflicts with service 'alpha'", r.json["error"])

    def test_delete_running_refused(self):
        e = self.env("delrun")
        spec = os.path.join(e.dir, "g.json")
        with open(spec, "w") as f:
            json.dump({"name": "gamma", "ports": ["8120/tcp"]}, f)
        e.ok("service", "apply", spec)
        p = e.spawn_in(e.svc_cgroup("gamma"), ["sleep", "60"])
        time.sleep(0.2)
        r = e.ctl("service", "delete", "gamma")
        self.assertEqual(r.rc, 78)
        self.assertIn("is running", r.json["error"])
        p.kill()
        p.wait()
        time.sleep(0.2)
        e.ok("service", "delete", "gamma")


class Run(CaelumTest):
    def test_run_places_sets_env_and_reports(self):
        e = self.env("run", services={"alpha": ["8100/tcp", "8101/udp"]})
        code = ("import os,socket;print(os.environ['CAELUM_SERVICE']);"
                "print(os.environ['CAELUM_PORTS']);"
                "print([l for l in open('/proc/self/cgroup') if l.startswith('0::')][0].strip());"
                "s=socket.socket();s.bind(('127.0.0.1',8100));print('bound')")
        r = e.ctl("run", "alpha", "--", sys.executable, "-c", code, json_out=False)
        self.assertEqual(r.rc, 0, r)
        lines = r.out.split("\n")
        self.assertEqual(lines[0], "alpha")
        self.assertEqual(lines[1], "8100/tcp,8101/udp")
        self.assertTrue(lines[2].endswith("/caelum/alpha"), lines[2])
        self.assertEqual(lines[3], "bound")
        started = e.wait_event(lambda ev: True, type="service_started")
        self.assertEqual((started[0]["service"], started[0]["comm"]), ("alpha", "python3"))
        stopped = e.wait_event(lambda ev: True, type="service_stopped")
        self.assertEqual(stopped[0]["service"], "alpha")

    def test_run_exit_status_and_state(self):
        e = self.env("runstate", services={"alpha": ["8100/tcp"]})
        p = subprocess.Popen([CTL, "-c", e.config_path, "run", "alpha", "--", "sleep", "30"])
        deadline = time.time() + 5
        while time.time() < deadline and e.ok("service", "show", "alpha")["state"] != "running":
            time.sleep(0.05)
        s = e.ok("service", "show", "alpha")
        self.assertEqual((s["state"], s["processes"], s["main_pid"]), ("running", 1, p.pid))
        p.kill()
        p.wait()
        deadline = time.time() + 5
        while time.time() < deadline and e.ok("service", "show", "alpha")["state"] != "stopped":
            time.sleep(0.05)
        self.assertEqual(e.ok("service", "show", "alpha")["state"], "stopped")

    def test_run_refuses_unknown_service(self):
        e = self.env("rununk")
        r = e.ctl("run", "ghost", "--", "true")
        self.assertEqual(r.rc, 78)
        self.assertIn("unknown service 'ghost'", r.json["error"])

    def test_run_refuses_port_held_by_other(self):
        e = self.env("runheld", start=False, services={"alpha": ["9400/tcp", "9401/tcp"]})
        l1 = e.listen_in(e.cgroup("other"), 9400)  # squatting since before Caelum enforced
        l2 = e.listen_in(e.cgroup("other"), 9401)
        e.start()
        r = e.ctl("run", "alpha", "--", "true")
        self.assertEqual(r.rc, 78)
        self.assertEqual(len(r.json["errors"]), 2, r.json)
        self.assertIn(f"9400/tcp is bound by pid {l1.pid}", r.json["errors"][0])
        self.assertIn(f"9401/tcp is bound by pid {l2.pid}", r.json["errors"][1])
        self.assertEqual(e.ok("service", "show", "alpha")["processes"], 0)

    def test_run_command_not_found(self):
        e = self.env("run127", services={"alpha": ["8100/tcp"]})
        r = e.ctl("run", "alpha", "--", "/nonexistent/binary")
        self.assertEqual(r.rc, 127)


class Check(CaelumTest):
    def test_check_valid_and_invalid(self):
        e = self.env("check", start=False, services={"alpha": ["8100/tcp"]})
        r = e.ctl("check")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual((r.json["valid"], r.json["services"], r.json["reservations"]),
                         (True, 1, 1))
        e.write_service("beta", '{"name": "beta", "ports": ["8100/tcp", "1-0"]}')
        r = e.ctl("check")
        self.assertEqual(r.rc, 78)
        self.assertIn("beta.json: ports[1]: port 0 out of range 1-65535", " ".join(r.json["errors"]))
        e.write_config(dict(e.config, mode="loud"))
        r = e.ctl("check")
        self.assertEqual(r.rc, 78)
        self.assertIn('mode: invalid mode "loud" (expected enforce or audit)', r.json["error"])

    def test_check_syntax_error_line_column(self):
        e = self.env("checksyn", start=False)
        with open(e.config_path, "w") as f:
            f.write('{\n  "host": "a",\n  "mode" "enforce"\n}\n')
        r = e.ctl("check")
        self.assertEqual(r.rc, 78)
        self.assertRegex(r.json["error"], r"caelum\.json: line 3, column \d+: ")


class Events(CaelumTest):
    def test_follow_streams_new_denials(self):
        e = self.env("follow", services={"alpha": ["8100/tcp"]})
        p = subprocess.Popen([CTL, "-c", e.config_path, "-j", "events", "follow", "type",
                              "bind_denied"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        time.sleep(0.3)
        t0 = time.time()
        self.assertDenied(e, e.cgroup("other"), 8100)
        line = p.stdout.readline()
        self.assertLess(time.time() - t0, 1.0)
        ev = json.loads(line)
        self.assertEqual((ev["type"], ev["port"], ev["owner"]), ("bind_denied", 8100, "alpha"))

    def test_journal_rotates_and_compresses(self):
        import gzip
        e = self.env("journal", services={"alpha": ["8100/tcp"]},
                     extra={"journal": {"max_bytes": 4096, "keep": 2}})
        for _ in range(15):
            e.ok("port", "reserve", "8150", "service", "alpha")
            e.ok("port", "release", "8150")
        files = sorted(os.listdir(e.state_dir))
        self.assertIn("events.jsonl.1.gz", files)
        self.assertIn("events.jsonl.2.gz", files)
        self.assertNotIn("events.jsonl.3.gz", files)
        with gzip.open(os.path.join(e.state_dir, "events.jsonl.1.gz"), "rt") as f:
            rotated = [json.loads(l) for l in f]
        with open(os.path.join(e.state_dir, "events.jsonl")) as f:
            current = [json.loads(l) for l in f]
        self.assertTrue(rotated)
        self.assertEqual(rotated[-1]["id"] + 1, current[0]["id"], "rotation loses nothing")
        self.assertLessEqual(os.path.getsize(os.path.join(e.state_dir, "events.jsonl")), 4096)
