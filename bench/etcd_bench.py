#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""etcd_bench: how fast a change made on one host is enforced on another.

A 3-member etcd on loopback (tests/integration/etcdcluster.py, ports 23810+) and two caelumd
"hosts" A and B sharing it (etcd backend), each with its own cgroup subtree, bpffs dir and
state dir. For each of N reservations:

  propagation  `port reserve` sent to A's API (POST /api/v1/ports) → the entry of that port
               present in both of B's pinned port tables (cm_port_a, cm_port_b, read through
               mmap while spinning; the second store is the instant the change takes effect)
  round trip   the same call's reply from A: its txn in etcd, its own watch, its kernel apply

then p50/p90/p99/max of each, and the same for a CAS race: two hosts reserving one port at
once (exactly one winner each round). Usage: python3 bench/etcd_bench.py --build build [-n N]
"""
import argparse
import ctypes
import http.client
import json
import mmap
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

BPF_OBJ_GET = 7
SLOTS = 65536 * 2
LIBC = ctypes.CDLL(None, use_errno=True)


class BpfAttrObjGet(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32)]


def map_open(path):
    """A pinned BPF_F_MMAPABLE array of 8-byte entries, mapped read-only."""
    p = ctypes.create_string_buffer(path.encode())
    attr = BpfAttrObjGet(ctypes.cast(p, ctypes.c_void_p).value, 0, 0)
    fd = LIBC.syscall(321, BPF_OBJ_GET, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"BPF_OBJ_GET {path}")
    m = mmap.mmap(fd, SLOTS * 8, mmap.MAP_SHARED, mmap.PROT_READ)
    os.close(fd)
    return m


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]


def summary(name, v):
    ms = [x * 1000 for x in v]
    print(f"  {name:<34} p50 {pct(ms, .5):7.2f} ms  p90 {pct(ms, .9):7.2f} ms  "
          f"p99 {pct(ms, .99):7.2f} ms  max {max(ms):7.2f} ms  (n={len(ms)})")


def post(port_url, token, body):
    """Send a POST without reading the answer: (connection, t_sent)."""
    host, port = port_url
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.connect()
    data = json.dumps(body)
    t = time.perf_counter()
    c.request("POST", "/api/v1/ports", body=data,
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return c, t


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def scale_run(etcd, reg, a, b, Env, n):
    """A third host, then n reservations written straight into etcd (txns of 100 puts):
    how long until all three kernels hold them, and each caelumd's RSS and CPU meanwhile."""
    from etcdcluster import b64  # noqa: E402
    c = Env("bench-c", managed=(), extra={"host": "bench-c", "registry": reg})
    try:
        c.start()
        hosts = {"bench-a": a, "bench-b": b, "bench-c": c}
        cpu0 = {k: proc_cpu_s(e.proc.pid) for k, e in hosts.items()}
        value = b64(json.dumps({"service": "web", "origin": "runtime"}))
        t0 = time.perf_counter()
        for lo in range(0, n, 100):
            ops = [{"request_put": {"key": b64(f"{reg['prefix']}reservations/{1100 + p}/udp"),
                                    "value": value}} for p in range(lo, min(n, lo + 100))]
            etcd.any_call("/v3/kv/txn", {"success": ops}, timeout=30)
        deadline = time.time() + 120
        while True:
            counts = [e.ok("status")["policy"]["reserved"] for e in hosts.values()]
            if all(x >= n for x in counts) or time.time() > deadline:
                break
            time.sleep(0.05)
        took = time.perf_counter() - t0
        if not all(x >= n for x in counts):
            raise SystemExit(f"hosts did not converge: {counts} policy entries, want >= {n}")
        return {"converge_s": took,
                "hosts": {k: (proc_rss_kib(e.proc.pid), proc_cpu_s(e.proc.pid) - cpu0[k])
                          for k, e in hosts.items()}}
    finally:
        c.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-n", type=int, default=250)
    ap.add_argument("--scale", type=int, default=10000,
                    help="reservations for the 3-host memory and CPU run (0: skip it)")
    args = ap.parse_args()
    os.environ["CAELUM_BUILD"] = os.path.abspath(args.build)
    from etcdcluster import EtcdCluster, b64  # noqa: E402 (after CAELUM_BUILD)
    from harness import Env  # noqa: E402

    etcd = EtcdCluster(base=int(os.environ.get("CAELUM_ETCD_BENCH_PORT", "23810")))
    envs = []
    try:
        reg = {"backend": "etcd", "endpoints": etcd.endpoints(), "prefix": f"bench{os.getpid()}/"}
        a = Env("bench-a", managed=(), extra={"host": "bench-a", "registry": reg})
        b = Env("bench-b", managed=(), extra={"host": "bench-b", "registry": reg})
        envs = [a, b]
        a.start()
        b.start()
        spec = os.path.join(a.dir, "web.json")
        with open(spec, "w") as f:
            json.dump({"name": "web", "ports": []}, f)
        a.ok("service", "apply", spec)
        tables = [map_open(os.path.join(b.bpffs, "maps", n)) for n in ("cm_port_a", "cm_port_b")]
        api = ("127.0.0.1", a.ok("status")["http"]["dashboard"]["port"])
        tok = a.token()

        prop, rtt = [], []
        for i in range(args.n):
            port = 22000 + i
            off = port * 2 * 8
            c, t0 = post(api, tok, {"port": port, "service": "web"})
            deadline = t0 + 10
            while not all(t[off:off + 8] != b"\0" * 8 for t in tables):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"port {port} never reached B's tables")
            t1 = time.perf_counter()
            r = c.getresponse()
            r.read()
            t2 = time.perf_counter()
            c.close()
            if r.status != 201:
                raise SystemExit(f"reserve {port}: HTTP {r.status}")
            prop.append(t1 - t0)
            rtt.append(t2 - t0)

        # The same without A: a put straight into etcd, and what of it is etcd's own commit
        direct, put_rtt = [], []
        for i in range(min(args.n, 200)):
            port = 24000 + i
            off = port * 2 * 8
            body = json.dumps({"key": b64(f"{reg['prefix']}reservations/{port}/tcp"),
                               "value": b64(json.dumps({"service": "web", "origin": "runtime"}))})
            c = http.client.HTTPConnection("127.0.0.1", etcd.base, timeout=30)
            c.connect()
            t0 = time.perf_counter()
            c.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
            deadline = t0 + 10
            while not all(t[off:off + 8] != b"\0" * 8 for t in tables):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"port {port} never reached B's tables")
            t1 = time.perf_counter()
            c.getresponse().read()
            t2 = time.perf_counter()
            c.close()
            direct.append(t1 - t0)
            put_rtt.append(t2 - t0)

        # CAS race: A and B reserve the same port at the same moment, for two services
        b_spec = os.path.join(b.dir, "api.json")
        with open(b_spec, "w") as f:
            json.dump({"name": "api", "ports": []}, f)
        b.ok("service", "apply", b_spec)
        api_b = ("127.0.0.1", b.ok("status")["http"]["dashboard"]["port"])
        tok_b = b.token()
        race, winners = [], {"web": 0, "api": 0}
        rounds = max(50, args.n // 5)
        for i in range(rounds):
            port = 23000 + i
            go = threading.Barrier(2)
            res = {}

            def one(k, where, token, svc):
                go.wait()
                c, t = post(where, token, {"port": port, "service": svc})
                r = c.getresponse()
                r.read()
                res[k] = (r.status, time.perf_counter() - t)
                c.close()

            th = [threading.Thread(target=one, args=("a", api, tok, "web")),
                  threading.Thread(target=one, args=("b", api_b, tok_b, "api"))]
            t0 = time.perf_counter()
            for t in th:
                t.start()
            for t in th:
                t.join()
            race.append(time.perf_counter() - t0)
            ok = [k for k, (st, _) in res.items() if st == 201]
            if len(ok) != 1:
                raise SystemExit(f"race on {port}: {res} (expected exactly one winner)")
            winners["web" if ok == ["a"] else "api"] += 1

        scale = scale_run(etcd, reg, a, b, Env, args.scale) if args.scale else None

        st = a.ok("status")["registry"]
        print(f"etcd_bench: 3-member etcd on loopback, 2 caelumd hosts, {args.n} reservations")
        summary("propagation A commit -> B kernel", prop)
        summary("reservation round trip (A, API)", rtt)
        summary("etcd put -> B kernel (no A)", direct)
        summary("etcd put round trip (its commit)", put_rtt)
        summary(f"CAS race, 2 hosts x 1 port ({rounds})", race)
        print(f"  CAS race winners: {winners}; {rounds / sum(race):.0f} races/s; "
              f"A: {st['requests']} etcd requests, {st['failovers']} failovers")
        if scale:
            print(f"  3 hosts x {args.scale} reservations (written to etcd in txns of 100): "
                  f"all 3 kernels have them after {scale['converge_s']:.2f} s")
            for name, (rss, cpu) in scale["hosts"].items():
                print(f"    {name}: RSS {rss / 1024:.1f} MiB, CPU {cpu:.2f} s while they arrived")
    finally:
        for e in envs:
            e.cleanup()
        etcd.close()


if __name__ == "__main__":
    main()
