# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Real hosts (issue 11): one daemon per pin set, foreign writers, restarts, network
namespaces, the ephemeral range. Real syscalls, asserting errno."""
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import harness
from harness import CTL, DAEMON, CaelumTest, move_self

CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)

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
        self.second_cfg = cfg
        return subprocess.run([DAEMON, "-c", path], capture_output=True, text=True, timeout=30)

    def assertNothingMade(self):
        """The refused daemon made nothing: no state (registry, journal), no runtime dir."""
        for key in ("state_dir", "runtime_dir"):
            self.assertFalse(os.path.exists(self.second_cfg[key]), key)

    def test_second_daemon_same_pins_refused_first_unchanged(self):
        e = self.env("pins", services=SERVICES)
        other = e.cgroup("other")
        self.assertDenied(e, other, 8100)
        table = bpftool("map", "lookup", "pinned", f"{e.bpffs}/maps/cm_port_outer",
                        "key", "0", "0", "0", "0")
        # Its own cgroup_root (a cgroup below e's, free), e's bpffs: refused on bpffs.
        p = self.second_daemon(e, cgroup_root=e.cgroup("second-root"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"another caelumd (pid {e.proc.pid}) uses bpffs '{e.bpffs}'", p.stderr)
        self.assertNothingMade()
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
        # It stopped before making anything: not even its bpffs directory, state or journal.
        self.assertFalse(os.path.exists(bpffs))
        self.assertNothingMade()
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
        # what cm_port_outer takes: an mmap-able array of one-word entries (BPF_F_MMAPABLE)
        bpftool("map", "create", pin, "type", "array", "key", "4", "value", "8",
                "entries", "131072", "name", "foreign", "flags", "1024")
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


def _enter_netns(netns):
    """In a child: a fresh namespace ("new") or the one at a path; its lo up."""
    if netns == "new":
        if LIBC.unshare(CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "unshare")
    else:
        fd = os.open(netns, os.O_RDONLY)
        if LIBC.setns(fd, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def sock_op(cg, op, port, proto="tcp", netns=None, family=4):
    """errno of bind() or connect() to 127.0.0.1/::1 from a child in cgroup cg, in the host's
    network namespace (netns None), a new one ("new") or the one at a path."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            move_self(cg)
            if netns:
                _enter_netns(netns)
            fam = socket.AF_INET6 if family == 6 else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            addr = ("::1" if family == 6 else "127.0.0.1", port)
            s.bind(addr) if op == "bind" else s.connect(addr)
            s.close()
        except OSError as e:
            code = e.errno
        except Exception:
            code = 255
        os.write(w, str(code).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    return int(data or b"255")


class NetworkNamespaces(CaelumTest):
    def make_netns(self):
        name = f"caelum-t{os.getpid()}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", name])
        return f"/run/netns/{name}"

    def test_other_namespace_allowed_host_denied(self):
        e = self.env("netns", services={"alpha": ["8100/tcp", "8101/udp"]})
        other = e.cgroup("other")
        for port, proto in ((8100, "tcp"), (8150, "tcp"), (8101, "udp"), (8160, "udp")):
            for family in (4, 6):
                self.assertEqual(sock_op(other, "bind", port, proto, family=family),
                                 errno.EPERM, f"host {port}/{proto} v{family}")
                self.assertEqual(sock_op(other, "bind", port, proto, "new", family=family), 0,
                                 f"unshare -n {port}/{proto} v{family}")
        # The owner may bind in either; the denial still holds on the host afterwards.
        self.assertEqual(sock_op(e.svc_cgroup("alpha"), "bind", 8100, netns="new"), 0)
        self.assertEqual(sock_op(e.svc_cgroup("alpha"), "bind", 8100), 0)
        self.assertEqual(sock_op(other, "bind", 8100), errno.EPERM)
        self.assertEqual(e.ok("status")["network_namespaces"]["opted_in"], [])

    def test_database_in_other_namespace_is_not_the_hosts(self):
        e = self.env("netnsdb", services={"alpha": ["8100/tcp"]})
        path = os.path.join(e.dir, "pg.json")
        with open(path, "w") as f:
            json.dump({"name": "pg", "kind": "tcp", "address": "127.0.0.1:5999",
                       "unmanaged": "deny"}, f)
        e.ok("db", "apply", path)
        other = e.cgroup("other")
        self.assertEqual(sock_op(other, "connect", 5999), errno.EPERM)
        # Inside a container, 127.0.0.1:5999 is its own loopback: nobody listens there.
        self.assertEqual(sock_op(other, "connect", 5999, netns="new"), errno.ECONNREFUSED)
        self.assertEqual(sock_op(other, "connect", 5999), errno.EPERM)

    def test_opted_in_namespace_enforced(self):
        ns = self.make_netns()
        e = self.env("netnsin", services={"alpha": ["8100/tcp"]},
                     extra={"network_namespaces": [ns]})
        other = e.cgroup("other")
        self.assertEqual(sock_op(other, "bind", 8100, netns=ns), errno.EPERM)
        self.assertEqual(sock_op(other, "bind", 8100, netns="new"), 0)
        self.assertEqual(sock_op(e.svc_cgroup("alpha"), "bind", 8100, netns=ns), 0)
        opted = e.ok("status")["network_namespaces"]["opted_in"]
        self.assertEqual([o["path"] for o in opted], [ns])
        self.assertGreater(opted[0]["cookie"], 0)
        # Opting it out again on reload: allowed there from then on.
        e.config.pop("network_namespaces")
        e.write_config()
        e.ok("reload")
        self.assertEqual(sock_op(other, "bind", 8100, netns=ns), 0)
        self.assertEqual(sock_op(other, "bind", 8100), errno.EPERM)

    def test_bad_namespace_refused_with_field(self):
        e = self.env("netnsbad", start=False, services={"alpha": ["8100/tcp"]},
                     extra={"network_namespaces": ["/nonexistent/ns"]})
        p = e.start(wait=False)
        self.assertEqual(p.wait(timeout=15), 78)
        self.assertIn('network_namespaces[0]: "/nonexistent/ns": No such file or directory',
                      e.log())
        self.assertFalse(os.path.exists(os.path.join(e.bpffs, "links")))
        e.config["network_namespaces"] = ["/etc/hostname", "", "/etc/hostname"]
        e.write_config()
        r = e.ctl("check")
        self.assertEqual(r.rc, 78, r)
        self.assertEqual(r.json["errors"], [
            f"{e.config_path}: network_namespaces[1]: empty path",
            f'{e.config_path}: network_namespaces[2]: "/etc/hostname" is listed twice'])

    def test_bad_namespace_on_reload_changes_nothing(self):
        e = self.env("netnsrel", services={"alpha": ["8100/tcp"]})
        e.config["network_namespaces"] = ["/etc/hostname"]
        e.write_config()
        r = e.ctl("reload")
        self.assertEqual(r.rc, 78, r)
        self.assertEqual(r.json["errors"], [f'{e.config_path}: network_namespaces[0]: '
                                            '"/etc/hostname": is not a network namespace'])
        self.assertEqual(e.ok("status")["network_namespaces"]["opted_in"], [])
        self.assertEqual(sock_op(e.cgroup("other"), "bind", 8100), errno.EPERM)


def connect_many(cg, netns, port, n):
    """From a child in cg and netns: n connects to 127.0.0.1:port kept open; their local
    ports, then the errno that stopped them (0 if none did)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = {"ports": [], "errno": 0}
        try:
            os.close(r)
            move_self(cg)
            fd = os.open(netns, os.O_RDONLY)
            if LIBC.setns(fd, CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns")
            keep = []
            for _ in range(n):
                c = socket.socket()
                c.connect(("127.0.0.1", port))
                keep.append(c)
                out["ports"].append(c.getsockname()[1])
        except OSError as e:
            out["errno"] = e.errno
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


class EphemeralRange(CaelumTest):
    """caelumd in a network namespace of the test's own, whose ephemeral range is narrowed
    to 20 ports: the host's sysctls are never touched. caelumd's own listeners are off, so
    that they take none of the 20."""

    NO_LISTENERS = {"http": {"listen": "off"}, "mcp": {"listen": "off"}}

    def setUp(self):
        self.ns_name = f"caelum-eph{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.ns_name], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns_name])
        self.ns = f"/run/netns/{self.ns_name}"
        self.nsexec("ip", "link", "set", "lo", "up")
        self.nsexec("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40019")
        self.nsexec("sysctl", "-qw", "net.ipv4.ip_local_reserved_ports=40010")

    def nsexec(self, *argv, check=True):
        # nsenter --net only: ip netns exec would also remount /sys (bpffs, cgroup2 gone).
        return subprocess.run(["nsenter", f"--net={self.ns}", *argv], check=check,
                              capture_output=True, text=True)

    def sysctl_reserved(self):
        return self.nsexec("cat", "/proc/sys/net/ipv4/ip_local_reserved_ports").stdout.strip()

    def start_in_ns(self, e):
        wrapper = os.path.join(e.dir, "caelumd-in-ns")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec nsenter --net={self.ns} {DAEMON} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        saved, harness.DAEMON = harness.DAEMON, wrapper
        try:
            e.start()
        finally:
            harness.DAEMON = saved

    def test_reservation_never_autobound(self):
        e = self.env("ephem", start=False, managed=(), services={"alpha": ["40005/tcp"]},
                     extra=self.NO_LISTENERS)
        self.start_in_ns(e)
        self.assertEqual(self.sysctl_reserved(), "40005,40010")
        st = e.ok("status")["reserved_ports"]
        self.assertEqual((st["ephemeral_range"], st["protected"], st["unprotected"], st["error"]),
                         ("40000-40019", "40005", "", None))
        # A listener in the namespace, outside cgroup_root; many connects from below it.
        lst = subprocess.Popen(["nsenter", f"--net={self.ns}", sys.executable, "-c",
                                "import socket,time\ns=socket.socket()\n"
                                "s.bind(('127.0.0.1',9999))\ns.listen(100)\n"
                                "print('ok',flush=True)\ntime.sleep(60)"],
                               stdout=subprocess.PIPE, text=True)
        self.addCleanup(lst.kill)
        self.assertEqual(lst.stdout.readline().strip(), "ok")
        got = connect_many(e.cgroup("other"), self.ns, 9999, 40)
        # 20 ports, 40005 (ours) and 40010 (the admin's) kept out: 18 connects, then none left.
        self.assertEqual(len(got["ports"]), 18, got)
        self.assertNotIn(40005, got["ports"])
        self.assertNotIn(40010, got["ports"])
        self.assertEqual(got["errno"], errno.EADDRNOTAVAIL)

    def test_release_and_teardown_restore_admin_list(self):
        e = self.env("ephrel", start=False, managed=(), services={"alpha": ["8100/tcp"]},
                     extra=self.NO_LISTENERS)
        self.start_in_ns(e)
        self.assertEqual(self.sysctl_reserved(), "40010")  # 8100 is outside the range
        e.ok("port", "reserve", "40003/udp", "service", "alpha")
        self.assertEqual(self.sysctl_reserved(), "40003,40010")
        self.assertEqual(e.ok("status")["reserved_ports"]["protected"], "40003")
        e.ok("port", "release", "40003/udp")
        self.assertEqual(self.sysctl_reserved(), "40010")
        e.ok("port", "reserve", "40001/tcp", "service", "alpha")
        e.ok("port", "reserve", "40010/tcp", "service", "alpha")  # the admin's too
        self.assertEqual(self.sysctl_reserved(), "40001,40010")
        # The admin adds one meanwhile: it stays theirs.
        self.nsexec("sysctl", "-qw", "net.ipv4.ip_local_reserved_ports=40001,40010,40015")
        e.stop()
        self.assertEqual(self.sysctl_reserved(), "40001,40010,40015")  # outlives caelumd
        r = e.ctl("teardown")
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(r.json["reserved_ports_restored"])  # wrong namespace: refused
        self.assertIn("run teardown in caelumd's network namespace", r.err)
        self.assertEqual(self.sysctl_reserved(), "40001,40010,40015")
        p = self.nsexec(CTL, "-c", e.config_path, "-j", "teardown", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(json.loads(p.stdout)["reserved_ports_restored"])
        self.assertEqual(self.sysctl_reserved(), "40010,40015")


class FollowedCgroup(CaelumTest):
    """A service identified by an existing cgroup (spec key "cgroup"), as systemd makes
    them: removed and made again with a new id on every restart."""

    UNIT = "system.slice/web.service"

    def setUp(self):
        self.e = self.env("follow", start=False, services={})
        self.e.write_service("web", json.dumps({"name": "web", "ports": ["8100/tcp", "9500/tcp"],
                                                "cgroup": self.UNIT}))
        self.unit = os.path.join(self.e.root, self.UNIT)
        self.other = self.e.cgroup("system.slice/other.service")
        self.e.start()

    def remove_unit(self):
        self.e._kill_cgroup_procs(self.unit)
        os.rmdir(self.unit)

    def test_owns_its_port_across_20_recreations(self):
        show = self.e.ok("service", "show", "web")
        self.assertEqual((show["cgroup"], show["cgroup_followed"], show["cgroup_id"]),
                         (self.unit, True, 0))
        self.assertDenied(self.e, self.other, 9500)
        ids = set()
        for i in range(20):
            os.mkdir(self.unit)  # what systemd does on (re)start
            self.assertEqual(self.e.bind_in(self.unit, 9500), 0, f"cycle {i}: owner refused")
            self.assertEqual(self.e.bind_in(self.unit, 8100), 0, f"cycle {i}: owner refused")
            self.assertEqual(self.e.bind_in(self.other, 9500), errno.EPERM, f"cycle {i}")
            ids.add(os.stat(self.unit).st_ino)
            self.remove_unit()
            self.assertEqual(self.e.bind_in(self.other, 9500), errno.EPERM, f"cycle {i}")
        self.assertEqual(len(ids), 20, "every recreation has a new cgroup id")
        # caelumd never made nor kept it; its own caelum/ has no web.
        self.assertFalse(os.path.exists(self.e.svc_cgroup("web")))
        self.assertEqual(self.e.ok("service", "show", "web")["cgroup_followed"], True)

    def test_existing_cgroup_and_daemon_restart(self):
        os.mkdir(self.unit)
        self.e.stop()
        self.e.start()  # resolved from the cgroup that exists
        self.assertEqual(self.e.ok("service", "show", "web")["cgroup_id"],
                         os.stat(self.unit).st_ino)
        self.assertAllowed(self.e, self.unit, 9500)
        self.assertDenied(self.e, self.other, 9500)
        self.e.ok("reload")
        self.assertAllowed(self.e, self.unit, 9500)

    def test_run_refused_changes_nothing(self):
        os.mkdir(self.unit)
        r = self.e.ctl("run", "web", "--", "true")
        self.assertEqual(r.rc, 78, r)
        self.assertIn(f"service 'web' is identified by the existing cgroup '{self.unit}'",
                      r.json["error"])
        with open(os.path.join(self.unit, "cgroup.procs")) as f:
            self.assertEqual(f.read(), "")
        self.assertEqual(self.e.ctl("check", "service", "web").rc, 0)

    def test_bad_cgroup_values_refused(self):
        for bad, why in (("/system.slice/x", "is not a path relative to cgroup_root"),
                         ("a/../b", "is not a path relative to cgroup_root"),
                         ("caelum/web", "is below Caelum's own"),
                         ("a b", "character ' ' is not allowed"),
                         ("", "must be 1-95 characters")):
            path = os.path.join(self.e.dir, "bad.json")
            with open(path, "w") as f:
                json.dump({"name": "bad", "ports": ["8150/tcp"], "cgroup": bad}, f)
            r = self.e.ctl("service", "apply", path)
            self.assertEqual(r.rc, 78, r)
            self.assertIn(f"cgroup: \"{bad}\"", r.json["error"])
            self.assertIn(why, r.json["error"])
        self.assertEqual([s["name"] for s in self.e.ok("service", "list")], ["web"])

    def test_started_stopped_follow_population(self):
        os.mkdir(self.unit)
        p = self.e.spawn_in(self.unit, ["sleep", "60"])
        started = self.e.wait_event(lambda ev: ev["service"] == "web", type="service_started")
        self.assertEqual(len(started), 1, started)
        self.assertEqual((started[0]["cgroup"], started[0]["cgroup_id"]),
                         (self.unit, os.stat(self.unit).st_ino))
        self.assertEqual(self.e.ok("service", "show", "web")["state"], "running")
        p.kill()
        p.wait()
        stopped = self.e.wait_event(lambda ev: ev["service"] == "web", type="service_stopped")
        self.assertEqual(len(stopped), 1, stopped)
        self.remove_unit()
        os.mkdir(self.unit)  # a restart: a new cgroup, started again
        self.e.spawn_in(self.unit, ["sleep", "60"])
        started = self.e.wait_event(lambda ev: ev["service"] == "web" and
                                    ev["cgroup_id"] == os.stat(self.unit).st_ino,
                                    type="service_started")
        self.assertEqual(len(started), 1, started)


class TaskBudgetNote(CaelumTest):
    def test_run_says_the_budget_kills_the_process(self):
        e = self.env("tasknote", services={})
        e.write_service("worker", json.dumps({"name": "worker", "resources": {"tasks": 8}}))
        e.ok("reload")
        self.assertEqual(e.ok("status")["resources"]["tasks"], "kernel (BPF budget)",
                         "this test expects a host without a delegated pids controller")
        r = e.ctl("run", "worker", "--", "true", json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("caelumctl: note: tasks of 'worker': BPF budget only (no delegated cgroup "
                      "v2 pids controller): a task past the budget is sent SIGKILL, which kills "
                      "its whole process", r.err)
        # No budget, no note.
        e.write_service("plain", json.dumps({"name": "plain", "ports": []}))
        e.ok("reload")
        r = e.ctl("run", "plain", "--", "true", json_out=False)
        self.assertEqual((r.rc, r.err), (0, ""), r)
