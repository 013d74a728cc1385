# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A real 3-member etcd (Debian's etcd-server) on loopback ports, for the etcd backend's tests.

Members listen on 127.0.0.1:BASE+2i (clients) and BASE+2i+1 (peers), keep their data in a
temp dir, and are stopped (SIGSTOP), continued, killed and restarted by the tests. The
client side talks to them through the same JSON gateway caelumd uses.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
BASE_PORT = int(os.environ.get("CAELUM_ETCD_PORT", "23790"))


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def prefix_end(p):
    b = bytearray(p.encode())
    b[-1] += 1
    return bytes(b)


class EtcdCluster:
    def __init__(self, members=3, base=BASE_PORT, extra=()):
        self.dir = tempfile.mkdtemp(prefix="caelum-etcd-")
        self.extra = list(extra)
        self.n = members
        self.base = base
        self.procs = [None] * members
        self.logs = [os.path.join(self.dir, f"m{i}.log") for i in range(members)]
        self.initial = ",".join(f"m{i}=http://127.0.0.1:{base + 2 * i + 1}" for i in range(members))
        for i in range(members):
            self.start(i, new=True)
        self.wait_healthy()

    def endpoint(self, i):
        return f"http://127.0.0.1:{self.base + 2 * i}"

    def endpoints(self):
        return [self.endpoint(i) for i in range(self.n)]

    def start(self, i, new=False):
        args = [ETCD, "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}.etcd"),
                "--listen-client-urls", self.endpoint(i),
                "--advertise-client-urls", self.endpoint(i),
                "--listen-peer-urls", f"http://127.0.0.1:{self.base + 2 * i + 1}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.base + 2 * i + 1}",
                "--initial-cluster", self.initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", f"caelum-test-{self.base}", *self.extra]
        log = open(self.logs[i], "a")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()

    def wait_healthy(self, timeout=20, members=None):
        deadline = time.time() + timeout
        members = range(self.n) if members is None else members
        while time.time() < deadline:
            try:
                if all(self.call(i, "/v3/kv/range", {"key": b64("health")}, timeout=1)
                       for i in members):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError("etcd cluster did not become healthy:\n" + self.log_tail())

    def log_tail(self):
        out = []
        for p in self.logs:
            try:
                with open(p) as f:
                    out.append(p + ":\n" + "".join(f.readlines()[-15:]))
            except OSError:
                pass
        return "\n".join(out)

    def call(self, i, path, body, timeout=5):
        req = urllib.request.Request(self.endpoint(i) + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def any_call(self, path, body, timeout=5):
        last = None
        for i in range(self.n):
            if self.procs[i] is None or self.procs[i].poll() is not None:
                continue
            try:
                return self.call(i, path, body, timeout)
            except (OSError, urllib.error.URLError) as e:
                last = e
        raise AssertionError(f"no etcd member answered {path}: {last}")

    # ---- data ----
    def range_prefix(self, prefix):
        """{key: (value, mod_revision)} under prefix, and the revision."""
        r = self.any_call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        kvs = {unb64(kv["key"]): (unb64(kv.get("value", "")), int(kv["mod_revision"]))
               for kv in r.get("kvs", [])}
        return kvs, int(r["header"]["revision"])

    def put(self, key, value):
        r = self.any_call("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(r["header"]["revision"])

    def compact(self, rev):
        self.any_call("/v3/kv/compaction", {"revision": str(rev), "physical": True})

    def leader(self):
        """Index of the member that is the leader."""
        for i in range(self.n):
            try:
                s = self.call(i, "/v3/maintenance/status", {}, timeout=1)
            except (OSError, urllib.error.URLError):
                continue
            if s.get("leader") and s["leader"] == s["header"]["member_id"]:
                return i
        raise AssertionError("no etcd leader")

    # ---- faults ----
    def pause(self, i):
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.procs[i].send_signal(signal.SIGCONT)

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def restart(self, i):
        self.start(i)

    def close(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
