# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Integration test harness: a private caelumd per test.

Every Env gets its own cgroup subtree under the cgroup2 mount, its own bpffs directory,
state/runtime/services directories in a temp dir, and removes all of them afterwards.
Nothing is attached to the host's root cgroup and no process ever moves between v1
hierarchies: only cgroup2 paths below the test's own subtree are written.
"""
import errno
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.path.abspath(os.environ.get("CAELUM_BUILD", "build"))
CTL = os.path.join(BUILD, "caelumctl")
DAEMON = os.path.join(BUILD, "caelumd")
# A command every caelumd of the tests is started under, e.g. the packaged unit's capability
# bounding set applied with setpriv (tests/package/daemon-wrapper.sh): a fault of the unit's
# restrictions then fails the same tests that a fault of caelumd would.
DAEMON_WRAPPER = shlex.split(os.environ.get("CAELUM_DAEMON_WRAPPER", ""))
_seq = 0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_sanitizers(text, what):
    """Under make test SAN=1 a sanitizer report anywhere fails the test."""
    for mark in SANITIZER_MARKS:
        if mark in text:
            raise AssertionError(f"sanitizer report from {what}:\n{text}")


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    raise RuntimeError("no cgroup2 mount")


CG2 = cgroup2_mount()


def own_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return CG2 + line[3:].strip().rstrip("/")
    return CG2


def move_self(path):
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err
        self.json = None
        if out.strip():
            try:
                self.json = json.loads(out)
            except ValueError:
                pass

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def _child_bind(cg, port, proto, family, addr, wfd):
    """In a forked child: join cgroup cg, bind, report errno through wfd."""
    code = 0
    try:
        move_self(cg)
        fam = socket.AF_INET6 if family == 6 else socket.AF_INET
        typ = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(fam, typ)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host = addr or ("::1" if family == 6 else "127.0.0.1")
        s.bind((host, port))
        code = 0 if port else 1000 + s.getsockname()[1] % 1000  # port 0: prove it got one
        s.close()
    except OSError as e:
        code = e.errno
    except Exception:  # pragma: no cover - surfaces as a failed assertion
        code = 255
    os.write(wfd, str(code).encode())
    os._exit(0)


class Env:
    """A private caelumd: config, cgroup subtree, bpffs dir, and the daemon process."""

    def __init__(self, tag, managed=("8100-8199",), mode="enforce", components=None,
                 services=None, extra=None):
        global _seq
        _seq += 1
        self.name = f"ct{os.getpid()}-{_seq}-{tag}"[:48]
        self.root = os.path.join(CG2, self.name)
        self.bpffs = f"/sys/fs/bpf/{self.name}"
        self.dir = tempfile.mkdtemp(prefix=f"caelum-{tag}-")
        self.services_dir = os.path.join(self.dir, "services.d")
        self.state_dir = os.path.join(self.dir, "state")
        self.runtime_dir = os.path.join(self.dir, "run")
        self.config_path = os.path.join(self.dir, "caelum.json")
        self.proc = None
        self.children = []
        self.log_path = os.path.join(self.dir, "caelumd.log")
        os.mkdir(self.root)
        os.mkdir(self.services_dir)
        self.config = {
            "host": "test-node", "mode": mode, "bpffs": self.bpffs,
            "state_dir": self.state_dir, "runtime_dir": self.runtime_dir,
            "services_dir": self.services_dir, "managed_ports": list(managed),
            "cgroup_root": self.root,
            # The kernel picks the ports: tests run side by side (api_url() reads them).
            "http": {"listen": "127.0.0.1:0"},
            "mcp": {"listen": "127.0.0.1:0"},
        }
        if components:
            self.config["components"] = components
        if extra:
            self.config.update(extra)
        self.write_config()
        for name, ports in (services or {}).items():
            self.write_service(name, ports)

    # ---- files ----
    def write_config(self, config=None):
        with open(self.config_path, "w") as f:
            json.dump(config if config is not None else self.config, f)

    def write_service(self, name, ports, filename=None):
        path = os.path.join(self.services_dir, filename or f"{name}.json")
        with open(path, "w") as f:
            if isinstance(ports, str):
                f.write(ports)
            else:
                json.dump({"name": name, "ports": ports}, f)
        return path

    def remove_service(self, name):
        os.unlink(os.path.join(self.services_dir, f"{name}.json"))

    # ---- daemon ----
    def start(self, wait=True, args=(), prefix=(), nofile=None, env=None):
        """prefix: argv the daemon runs under (e.g. a private mount namespace), inside
        CAELUM_DAEMON_WRAPPER; nofile=(soft, hard): start caelumd under that RLIMIT_NOFILE."""
        log = open(self.log_path, "a")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)) if nofile else None
        self.proc = subprocess.Popen([*DAEMON_WRAPPER, *prefix, DAEMON, "-c", self.config_path,
                                      *args], stdout=log, stderr=log, preexec_fn=limit, env=env)
        log.close()
        if not wait:
            return self.proc
        sock = os.path.join(self.runtime_dir, "caelumd.sock")
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"caelumd exited {self.proc.returncode}: {self.log()}")
            if os.path.exists(sock) and self.ctl("status").rc == 0:
                return self.proc
            time.sleep(0.05)
        raise AssertionError(f"caelumd did not become ready: {self.log()}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    # ---- HTTP ----
    def api_url(self, path="", listener="dashboard"):
        port = self.ok("status")["http"][listener]["port"]
        return f"http://127.0.0.1:{port}{path}"

    def token(self):
        with open(os.path.join(self.state_dir, "api.token")) as f:
            return f.read().strip()

    # ---- CLI ----
    def ctl(self, *args, json_out=True, env=None, timeout=30, user=None):
        cmd = [CTL, "-c", self.config_path] + (["-j"] if json_out else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           user=user)
        check_sanitizers(p.stderr, "caelumctl " + " ".join(args))
        return Result(p.returncode, p.stdout, p.stderr)

    def ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        if r.rc != 0:
            raise AssertionError(f"caelumctl {' '.join(args)} failed: {r}")
        return r.json if kw.get("json_out", True) else r.out

    def events(self, **filters):
        args = ["events"]
        for k, v in filters.items():
            args += [k, str(v)]
        return self.ok(*args)

    def wait_event(self, pred, timeout=5.0, **filters):
        deadline = time.time() + timeout
        while True:
            evs = [e for e in self.events(**filters) if pred(e)]
            if evs or time.time() > deadline:
                return evs
            time.sleep(0.1)

    # ---- cgroups and sockets ----
    def cgroup(self, rel):
        """A cgroup below this test's root (made if needed): unmanaged unless under caelum/."""
        path = os.path.join(self.root, rel)
        os.makedirs(path, exist_ok=True)
        return path

    def svc_cgroup(self, svc):
        return os.path.join(self.root, "caelum", svc)

    def bind_in(self, cg, port, proto="tcp", family=4, addr=None):
        """errno of bind() from a child process placed in cgroup cg (0 = allowed)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child_bind(cg, port, proto, family, addr, w)
        os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 64)
            if not chunk:
                break
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        return int(data or b"255")

    def spawn_in(self, cg, argv):
        """A long-running child placed in cgroup cg before it execs argv."""
        p = subprocess.Popen(argv, preexec_fn=lambda: move_self(cg),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.children.append(p)
        return p

    def listen_in(self, cg, port, proto="tcp"):
        code = ("import socket,sys,time\n"
                f"s=socket.socket(socket.AF_INET,socket.{'SOCK_STREAM' if proto == 'tcp' else 'SOCK_DGRAM'})\n"
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                f"s.bind(('127.0.0.1',{port}))\n"
                + ("s.listen()\n" if proto == "tcp" else "")
                + "print('ready',flush=True)\ntime.sleep(120)\n")
        p = self.spawn_in(cg, [sys.executable, "-c", code])
        line = p.stdout.readline().strip()
        if line != "ready":
            raise AssertionError(f"listener on {port}/{proto} failed: {p.stderr.read()}")
        return p

    # ---- teardown ----
    def cleanup(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait()
        # A graceful stop exits 0 and lets LeakSanitizer look at the daemon under SAN=1.
        running = self.proc is not None and self.proc.poll() is None
        rc = self.stop(signal.SIGTERM)
        log = self.log()
        if os.path.isdir(self.bpffs) or os.path.isdir(self.root):
            self.ctl("teardown", timeout=30)
        self._kill_cgroup_procs(self.root)
        self._rmdir_tree(self.root)
        self._rmdir_tree(self.bpffs)
        shutil.rmtree(self.dir, ignore_errors=True)
        check_sanitizers(log, "caelumd")
        if running and rc != 0:
            raise AssertionError(f"caelumd exited {rc} on SIGTERM:\n{log}")

    def _kill_cgroup_procs(self, path):
        for top, dirs, files in os.walk(path):
            try:
                with open(os.path.join(top, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            except OSError:
                pass
        time.sleep(0.05)

    @staticmethod
    def _rmdir_tree(path):
        if not os.path.isdir(path):
            return
        for top, dirs, files in os.walk(path, topdown=False):
            if top.startswith("/sys/fs/bpf"):
                for f in files:
                    try:
                        os.unlink(os.path.join(top, f))
                    except OSError:
                        pass
            for _ in range(50):
                try:
                    os.rmdir(top)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


class CaelumTest(unittest.TestCase):
    """Base: self.env(...) makes an Env that is always cleaned up."""

    def env(self, tag, start=True, **kw):
        e = Env(tag, **kw)
        self.addCleanup(e.cleanup)
        if start:
            e.start()
        return e

    def assertDenied(self, env, cg, port, proto="tcp", family=4):
        self.assertEqual(env.bind_in(cg, port, proto, family), errno.EPERM,
                         f"bind {port}/{proto} v{family} from {cg} should be EPERM")

    def assertAllowed(self, env, cg, port, proto="tcp", family=4):
        self.assertEqual(env.bind_in(cg, port, proto, family), 0,
                         f"bind {port}/{proto} v{family} from {cg} should be allowed")


def notify_recv_until(sock, pred, timeout, log=lambda: ""):
    """sd_notify(3) datagrams read from sock (bound where $NOTIFY_SOCKET points), each a dict
    of its KEY=VALUE lines, as (time, message) pairs until pred(message) holds: that one
    last. AssertionError (with log()) if none does within timeout seconds."""
    deadline = time.time() + timeout
    out = []
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            break
        msg = dict(line.split("=", 1) for line in data.split("\n") if line)
        out.append((time.time(), msg))
        if pred(msg):
            return out
    raise AssertionError(f"no matching message within {timeout}s; got {out}\n{log()}")
