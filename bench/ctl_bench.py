#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""ctl_bench: caelumctl round trips against a caelumd holding a large registry.

As a user sees it: a whole `caelumctl port reserve` (process start, socket, commit with
fsync, kernel update, reply) with N reservations already registered, and caelumd's memory.

  1. N = 60,000 runtime reservations written into the registry before caelumd starts (the
     snapshot format of user/registry/registry_file.c), then REPS reserve + release round trips:
     p50/p90/p99 of each, caelumd's RSS.
  2. 10,000 reservations made one at a time through the CLI: total time, RSS after, and RSS
     after releasing them all (memory must come back).
  3. --services N: N services (spec files) with 65,535 reservations between them: startup
     time and RSS.

Runs a private caelumd (own cgroup subtree, bpffs dir, state dir) like the integration tests
and removes it all at the end. Usage: python3 bench/ctl_bench.py --build build [--services N]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
import soak  # noqa: E402  (reservations pipelined on one connection)


def rss_kib(pid, field="VmRSS"):
    """VmRSS, or RssAnon: caelumd's own memory without the mapped BPF maps (the ring
    buffer's pages, the port tables: kernel memory, there with or without the mapping)
    and the shared libraries' pages."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def mem(pid):
    return (f"RSS {rss_kib(pid) / 1024:.1f} MiB "
            f"(anonymous {rss_kib(pid, 'RssAnon') / 1024:.1f} MiB)")


def pct(v, p):
    v = sorted(v)
    return v[int(p * (len(v) - 1))]


def write_registry(state_dir, services, resv):
    """API services (names) and reservations (port, proto, service): a snapshot at
    revision 1 in user/registry/registry_file.c's format, byte for byte as caelumd writes it
    (compact JSON: caelumd leaves a value it finds in its canonical text in the file)."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    ents = [{"key": f"services/{s}", "mod_revision": 1,
             "value": {"name": s, "ports": [], "origin": "api", "source": None}}
            for s in sorted(services)]
    ents += [{"key": f"reservations/{port}/{proto}", "mod_revision": 1,
              "value": {"service": svc, "origin": "runtime"}} for port, proto, svc in resv]
    with open(os.path.join(state_dir, "registry.json"), "w") as f:
        f.write('{"format":1,"revision":1,"entries":[')
        f.write(",".join("\n" + json.dumps(x, separators=(",", ":")) for x in ents))
        f.write("\n]}\n")


def outside_ephemeral(n):
    """n (port, proto) pairs outside net.ipv4.ip_local_port_range: caelumd keeps reservations
    inside it out of autobind (ip_local_reserved_ports), and a registry covering the whole
    range would leave no ephemeral port to the host, this bench's listeners included."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = (int(x) for x in f.read().split())
    free = [p for p in range(1, 65536) if p < lo or p > hi]
    pairs = [(p, proto) for proto in ("tcp", "udp") for p in free]
    if len(pairs) < n:
        raise SystemExit(f"only {len(pairs)} ports outside the ephemeral range {lo}-{hi}")
    return pairs[:n]


def timed(e, *args):
    t0 = time.monotonic()
    r = e.ctl(*args)
    dt = (time.monotonic() - t0) * 1e3
    if r.rc != 0:
        raise SystemExit(f"caelumctl {' '.join(args)} failed: {r}")
    return dt


def round_trips(e, reps):
    res, rel = [], []
    for i in range(reps):
        port = str(61100 + i % 50)
        res.append(timed(e, "port", "reserve", f"{port}/udp", "service", "svc"))
        rel.append(timed(e, "port", "release", f"{port}/udp"))
    return res, rel


def bench_large(harness, reps):
    e = harness.Env("ctlbench", managed=())
    try:
        write_registry(e.state_dir, ["svc"],
                       [(p, proto, "svc") for p, proto in outside_ephemeral(60000)])
        t0 = time.monotonic()
        e.start()
        start_s = time.monotonic() - t0
        pid = e.proc.pid
        st = e.ok("status")
        print(f"  caelumd with {st['policy']['entries']} entries: ready in {start_s:.2f} s "
              f"(process start to status answering), {mem(pid)}")
        base = []
        for _ in range(reps // 2):
            t0 = time.monotonic()
            subprocess.run([harness.CTL, "--version"], capture_output=True, check=True)
            base.append((time.monotonic() - t0) * 1e3)
        who = [timed(e, "port", "who", "9999") for _ in range(reps // 2)]
        print(f"  baselines: caelumctl --version (process start only) p50 {pct(base, .5):.1f} ms; "
              f"port who (round trip + socket scan, no commit) p50 {pct(who, .5):.1f} ms")
        res, rel = round_trips(e, reps)
        print(f"  caelumctl port reserve: p50 {pct(res, .5):.1f} ms  p90 {pct(res, .9):.1f} ms  "
              f"p99 {pct(res, .99):.1f} ms; release p50 {pct(rel, .5):.1f} ms  "
              f"p90 {pct(rel, .9):.1f} ms (n={reps})")
        print(f"  RSS after the round trips: {rss_kib(pid) / 1024:.1f} MiB")
    finally:
        e.stop()
        e.cleanup()


def fill_event_window(env, pairs):
    """pairs reserve + release round trips on one control-socket connection (soak.py's)."""
    if soak.reservations(env, pairs, batch=100, service="svc", base=9000, span=100) != pairs:
        raise SystemExit("event window fill: a reserve/release failed")


def bench_one_by_one(harness, n):
    e = harness.Env("ctlbench1", managed=())
    try:
        write_registry(e.state_dir, ["svc"], [])
        e.start()
        pid = e.proc.pid
        # The events kept in memory (EVENTS_WINDOW, 16,384, ~400 bytes each) fill up with
        # the reserve/release events: fill the window first, so the figure is what a
        # reservation itself costs, not a bounded buffer filling.
        fill_event_window(e, 9000)
        r0 = rss_kib(pid)
        a0 = rss_kib(pid, "RssAnon")
        t0 = time.monotonic()
        for i in range(n):
            r = e.ctl("port", "reserve", f"{10000 + i}/udp", "service", "svc")
            if r.rc != 0:
                raise SystemExit(f"reserve {10000 + i} failed: {r}")
        dt = time.monotonic() - t0
        r1 = rss_kib(pid)
        a1 = rss_kib(pid, "RssAnon")
        for i in range(n):
            r = e.ctl("port", "release", f"{10000 + i}/udp")
            if r.rc != 0:
                raise SystemExit(f"release {10000 + i} failed: {r}")
        r2 = rss_kib(pid)
        print(f"  {n} reservations one at a time through the CLI: {dt:.1f} s "
              f"({dt / n * 1e3:.2f} ms each); RSS {r0 / 1024:.1f} -> {r1 / 1024:.1f} MiB "
              f"({(r1 - r0) * 1024 / n:.0f} bytes each; anonymous {(a1 - a0) * 1024 / n:.0f}), "
              f"after releasing all {r2 / 1024:.1f} MiB")
    finally:
        e.stop()
        e.cleanup()


def bench_services(harness, n_svcs):
    names = [f"s{i:05d}" for i in range(n_svcs)]
    e = harness.Env("ctlbenchs", managed=())
    try:
        write_registry(e.state_dir, names,
                       [(p, proto, names[i % n_svcs])
                        for i, (p, proto) in enumerate(outside_ephemeral(65535))])
        t0 = time.monotonic()
        e.start()
        start_s = time.monotonic() - t0
        st = e.ok("status")
        print(f"  {n_svcs} services, {st['policy']['reserved']} reservations: ready in "
              f"{start_s:.1f} s, {mem(e.proc.pid)}")
    finally:
        e.stop()
        e.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--one-by-one", type=int, default=10000)
    ap.add_argument("--services", type=int, default=0)
    args = ap.parse_args()
    os.environ["CAELUM_BUILD"] = os.path.abspath(args.build)
    import harness  # after CAELUM_BUILD is set
    print("ctl_bench: caelumctl round trips against a large registry")
    bench_large(harness, args.reps)
    if args.one_by_one:
        bench_one_by_one(harness, args.one_by_one)
    if args.services:
        bench_services(harness, args.services)
    return 0


if __name__ == "__main__":
    sys.exit(main())
