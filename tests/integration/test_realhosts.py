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
