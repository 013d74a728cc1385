# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Real hosts (issue 11): one daemon per pin set, foreign writers, restarts, network
namespaces, the ephemeral range. Real syscalls, asserting errno."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import CTL, DAEMON, CaelumTest

SERVICES = {"alpha": ["8100/tcp"]}


def bpftool(*args):
    p = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"bpftool {' '.join(args)}: {p.stderr}")
    return json.loads(p.stdout) if p.stdout.strip() else None


class OneDaemonPerPinSet(CaelumTest):
    def second_daemon(self, e, **override):
        """caelumd on e's pins (or override) with its own state and runtime dirs."""
        d = tempfile.mkdtemp(prefix="caelum-second-")
        self.addCleanup(subprocess.run, ["rm", "-rf", d])
        cfg = dict(e.config, state_dir=os.path.join(d, "state"),
                   runtime_dir=os.path.join(d, "run"),
                   services_dir=os.path.join(d, "services.d"), **override)
        os.mkdir(cfg["services_dir"])
        path = os.path.join(d, "caelum.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return subprocess.run([DAEMON, "-c", path], capture_output=True, text=True, timeout=30)

    def test_second_daemon_same_pins_refused_first_unchanged(self):
        e = self.env("pins", services=SERVICES)
        other = e.cgroup("other")
        self.assertDenied(e, other, 8100)
        table = bpftool("map", "lookup", "pinned", f"{e.bpffs}/maps/cm_port_outer",
                        "key", "0", "0", "0", "0")
        p = self.second_daemon(e)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"another caelumd (pid {e.proc.pid}) uses bpffs '{e.bpffs}'", p.stderr)
        # Nothing of the first changed: same table in the slot, denial and ownership hold.
        self.assertEqual(bpftool("map", "lookup", "pinned", f"{e.bpffs}/maps/cm_port_outer",
                                 "key", "0", "0", "0", "0"), table)
        self.assertDenied(e, other, 8100)
        self.assertAllowed(e, e.svc_cgroup("alpha"), 8100)
        self.assertEqual(e.ok("status")["pid"], e.proc.pid)
        self.assertEqual(e.proc.poll(), None)

    def test_same_cgroup_root_other_bpffs_refused(self):
        e = self.env("pincg", services=SERVICES)
        bpffs = e.bpffs + "-b"
        self.addCleanup(e._rmdir_tree, bpffs)
        p = self.second_daemon(e, bpffs=bpffs)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"another caelumd (pid {e.proc.pid}) uses cgroup_root '{e.root}'",
                      p.stderr)
        # It stopped before loading anything: no map of its own was pinned.
        self.assertEqual(os.listdir(os.path.join(bpffs, "maps")), [])
        self.assertDenied(e, e.cgroup("other"), 8100)

    def test_lock_released_when_daemon_killed(self):
        e = self.env("pinkill", services=SERVICES)
        e.stop(9)
        e.start()  # the kernel dropped the dead daemon's locks
        self.assertDenied(e, e.cgroup("other"), 8100)


class ForeignWriter(CaelumTest):
    def setUp(self):
        self.e = self.env("foreign", services=SERVICES)
        self.other = self.e.cgroup("other")
        self.maps = f"{self.e.bpffs}/maps"

    def repaired(self):
        evs = self.e.wait_event(lambda ev: ev["object"] == "port policy", timeout=12,
                                type="integrity_repaired")
        self.assertTrue(evs, self.e.log())
        return evs[0]

    def test_config_switched_off_is_repaired(self):
        val = bpftool("map", "lookup", "pinned", f"{self.maps}/cm_config",
                      "key", "0", "0", "0", "0")["value"]
        off = ["0x01"] + [v for v in val[1:]]  # mode[ports] = OFF (little endian u32)
        bpftool("map", "update", "pinned", f"{self.maps}/cm_config", "key", "0", "0", "0", "0",
                "value", *off)
        self.assertAllowed(self.e, self.other, 8100)  # the foreign write took effect
        ev = self.repaired()
        self.assertEqual(ev["action"], "repaired")
        self.assertIn("cm_config mode[0] is 1, caelumd applied 3", ev["problem"])
        self.assertDenied(self.e, self.other, 8100)

    def test_port_table_swapped_is_repaired(self):
        pin = f"{self.e.bpffs}/foreign_table"
        bpftool("map", "create", pin, "type", "hash", "key", "4", "value", "16",
                "entries", "131072", "name", "foreign", "flags", "1")
        self.addCleanup(lambda: os.path.exists(pin) and os.unlink(pin))
        bpftool("map", "update", "pinned", f"{self.maps}/cm_port_outer",
                "key", "0", "0", "0", "0", "value", "pinned", pin)
        self.assertAllowed(self.e, self.other, 8100)  # an empty policy is in force
        ev = self.repaired()
        self.assertRegex(ev["problem"], r"cm_port_outer\[0\] holds map id \d+, caelumd applied \d+")
        self.assertDenied(self.e, self.other, 8100)
        self.assertAllowed(self.e, self.e.svc_cgroup("alpha"), 8100)


SERVER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8100))
s.listen()
print("listening", flush=True)
c, _ = s.accept()
print("accepted", flush=True)
time.sleep(120)
"""


def tcp_states(e, port):
    return [(l["state"], l["pid"]) for l in e.ok("port", "who", f"{port}/tcp")["listeners"]]


def wait_state(e, port, state, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(s == state for s, _ in tcp_states(e, port)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {state} socket on {port}: {tcp_states(e, port)}")


class Restarts(CaelumTest):
    def test_restart_with_client_holding_old_connection(self):
        e = self.env("restart", services={"web": ["8100/tcp"]})
        old = subprocess.Popen([CTL, "-c", e.config_path, "run", "web", "--", sys.executable,
                                "-c", SERVER], stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: old.poll() is None and old.kill())
        self.assertEqual(old.stdout.readline().strip(), "listening")
        client = socket.create_connection(("127.0.0.1", 8100))
        self.addCleanup(client.close)
        self.assertEqual(old.stdout.readline().strip(), "accepted")
        old.send_signal(signal.SIGKILL)  # the old instance dies; the client keeps its end
        old.wait()
        wait_state(e, 8100, "fin_wait2")
        self.assertEqual(tcp_states(e, 8100), [("fin_wait2", 0)])
        r = e.ctl("check", "service", "web")
        self.assertEqual(r.rc, 0, r)
        code = ("import socket;s=socket.socket();"
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                "s.bind(('127.0.0.1',8100));s.listen();print('restarted')")
        r = e.ctl("run", "web", "--", sys.executable, "-c", code, json_out=False)
        self.assertEqual((r.rc, r.out.strip()), (0, "restarted"), r)

    def test_foreign_listener_still_blocks_run(self):
        e = self.env("restartneg", start=False, services={"web": ["9410/tcp"]})
        l = e.listen_in(e.cgroup("other"), 9410)
        e.start()
        r = e.ctl("run", "web", "--", "true")
        self.assertEqual(r.rc, 78, r)
        self.assertIn(f"9410/tcp is bound by pid {l.pid}", r.json["errors"][0])

    def test_alloc_skips_time_wait(self):
        e = self.env("alloctw", services={"web": ["8100/tcp"]})
        # This test runs outside cgroup_root: the programs do not see its binds.
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 8101))
        srv.listen()
        client = socket.create_connection(("127.0.0.1", 8101))
        conn, _ = srv.accept()
        conn.close()  # the server side closes first: it is the one left in TIME_WAIT
        srv.close()
        client.close()
        wait_state(e, 8101, "time_wait")
        plain = socket.socket()
        with self.assertRaises(OSError) as cm:
            plain.bind(("127.0.0.1", 8101))
        plain.close()
        self.assertEqual(cm.exception.errno, errno.EADDRINUSE)
        got = e.ok("port", "alloc", "service", "web")
        self.assertEqual(got["port"], 8102, got)
