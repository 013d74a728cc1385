#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""mem_bench: caelumd's memory, as /proc reports it (root; private caelumds).

Figures, not a timed test (issue 9's targets in brackets):
  1. 10,000 services (API entries) and 65,535 reservations between them in the registry
     before caelumd starts: VmRSS [<= 32 MiB] and its parts RssAnon, RssFile, RssShmem, and
     the largest mappings by Rss (/proc/PID/smaps) with --detail; just started, and at rest
     (the event ring is mapped only while records flow: user/lib/ringbuf.h).
  2. One service, the in-memory event window filled first (it is bounded: 16,384 events,
     filled by reserve/release pairs), then 10,000 reservations on one control-socket
     connection: RSS and anonymous memory per reservation [<= 300 bytes], and after they are
     all released.
  3. Three rounds of 2,000 reserved and released: RSS after each [comes back down].
  4. The ring buffer's size against its requirement: 60,000 distinct denials in one burst
     (one process binds 60,000 managed ports it does not own, back to back on one socket)
     must all reach caelumd: none lost in the kernel, every one a kernel record. Exit 1 if
     any is lost.

Every figure is the whole process's: nothing is subtracted. Usage:
  python3 bench/mem_bench.py --build build [--services 10000] [--detail]
"""
import argparse
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
import soak  # noqa: E402  (reserve/release pairs pipelined on one connection)
from ctl_bench import write_registry, outside_ephemeral  # noqa: E402


# caelumd gives the heap back on its tick (250 ms) after many entries were released.
TICK_S = 0.6


def status_kib(pid):
    """VmRSS and its parts, KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def mappings(pid, top):
    """The top mappings by Rss: (rss KiB, anonymous KiB, size KiB, name)."""
    rows, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head[0].endswith(":") or "-" in head[0]:
                name = head[5] if len(head) > 5 else "[anon]"
                cur = {"name": name, "Rss": 0, "Anonymous": 0, "Size": 0}
                rows.append(cur)
            elif head[0][:-1] in ("Rss", "Anonymous", "Size"):
                cur[head[0][:-1]] = int(head[1])
    merged = {}
    for r in rows:
        key = r["name"] if r["name"] != "anon_inode:bpf-map" else f"bpf-map {r['Size']} KiB"
        m = merged.setdefault(key, [0, 0, 0])
        m[0] += r["Rss"]
        m[1] += r["Anonymous"]
        m[2] += r["Size"]
    return sorted(((v[0], v[1], v[2], k) for k, v in merged.items()), reverse=True)[:top]


def fmt(m):
    return (f"RSS {m['VmRSS'] / 1024:.1f} MiB (anon {m['RssAnon'] / 1024:.1f}, "
            f"file {m['RssFile'] / 1024:.1f}, shmem {m['RssShmem'] / 1024:.1f})")


def show_mappings(pid, top):
    for rss, anon, size, name in mappings(pid, top):
        print(f"      {rss:8d} KiB rss {anon:8d} KiB anon {size:9d} KiB size  {name}")


def at_rest(env, timeout=10.0):
    """/proc/PID/status once caelumd has unmapped its event ring (2 s without a record)."""
    deadline = time.monotonic() + timeout
    while env.ok("status")["events"]["ring_mapped"]:
        if time.monotonic() > deadline:
            raise SystemExit("the event ring stayed mapped")
        time.sleep(0.2)
    return status_kib(env.proc.pid)


def pipelined(env, method, ports, service="svc", batch=200):
    """method ("port.reserve" or "port.release") for each (port, proto) on one connection;
    how many succeeded."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(env.runtime_dir, "caelumd.sock"))
    f = s.makefile("rb")
    ok = 0
    for start in range(0, len(ports), batch):
        msgs = []
        for i, (port, proto) in enumerate(ports[start:start + batch]):
            p = {"port": port, "proto": proto}
            if method == "port.reserve":
                p["service"] = service
            msgs.append({"jsonrpc": "2.0", "id": start + i, "method": method, "params": p})
        s.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))
        for _ in msgs:
            ok += "result" in json.loads(f.readline())
    s.close()
    return ok


def bench_scale(harness, n_svcs, n_resv, detail):
    names = [f"s{i:05d}" for i in range(n_svcs)]
    e = harness.Env("membench", managed=())
    try:
        write_registry(e.state_dir, names,
                       [(p, proto, names[i % n_svcs])
                        for i, (p, proto) in enumerate(outside_ephemeral(n_resv))])
        e.start()
        st = e.ok("status")
        m = status_kib(e.proc.pid)
        print(f"  {n_svcs} services, {st['policy']['reserved']} reservations, just started "
              f"(event ring {'mapped' if st['events']['ring_mapped'] else 'not mapped'}): "
              f"{fmt(m)}")
        m = at_rest(e)
        print(f"  the same at rest (event ring not mapped): {fmt(m)}; peak RSS since start "
              f"(VmHWM) {m['VmHWM'] / 1024:.1f} MiB")
        if detail:
            show_mappings(e.proc.pid, 14)
        return m
    finally:
        e.stop()
        e.cleanup()


def bench_rounds(harness, n, rounds, n_round, detail):
    e = harness.Env("membench1", managed=())
    try:
        write_registry(e.state_dir, ["svc"], [])
        e.start()
        pid = e.proc.pid
        # The event window is bounded (16,384 events, ~400 bytes each): fill it first, so
        # the figures are what reservations cost, not a bounded buffer filling.
        if soak.reservations(e, 9000, batch=100, service="svc", base=9000, span=100) != 9000:
            raise SystemExit("event window fill: a reserve/release failed")
        m0 = status_kib(pid)
        print(f"  one service, event window full: {fmt(m0)}")
        ports = [(p, "udp") for p in range(10000, 10000 + n)]
        if pipelined(e, "port.reserve", ports) != n:
            raise SystemExit("a reservation failed")
        m1 = status_kib(pid)
        if detail:
            show_mappings(pid, 8)
        if pipelined(e, "port.release", ports) != n:
            raise SystemExit("a release failed")
        time.sleep(TICK_S)
        m2 = status_kib(pid)
        per = (m1["VmRSS"] - m0["VmRSS"]) * 1024 / n
        per_anon = (m1["RssAnon"] - m0["RssAnon"]) * 1024 / n
        print(f"  {n} reservations: {fmt(m1)}: {per:.0f} bytes per reservation "
              f"(anonymous {per_anon:.0f}); all released: {fmt(m2)}")
        ports = [(p, "udp") for p in range(30000, 30000 + n_round)]
        for r in range(rounds):
            if pipelined(e, "port.reserve", ports) != n_round:
                raise SystemExit("a reservation failed")
            a = status_kib(pid)
            if pipelined(e, "port.release", ports) != n_round:
                raise SystemExit("a release failed")
            time.sleep(TICK_S)
            b = status_kib(pid)
            print(f"  round {r + 1}: {n_round} reserved: RSS {a['VmRSS'] / 1024:.1f} MiB "
                  f"(anon {a['RssAnon'] / 1024:.1f}); released: RSS "
                  f"{b['VmRSS'] / 1024:.1f} MiB (anon {b['RssAnon'] / 1024:.1f})")
        return m0, m2, b
    finally:
        e.stop()
        e.cleanup()


def burst_child(cg, ports, wfd, reuse):
    """In cgroup cg: bind each port (TCP, loopback) once. reuse: all on one socket (a refused
    bind leaves it unbound: one syscall a denial, as fast as the kernel refuses); else a
    socket per bind, as a program that retries with a new socket does."""
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    s = socket.socket() if reuse else None
    denied = 0
    for p in ports:
        t = s or socket.socket()
        try:
            t.bind(("127.0.0.1", p))
            break  # allowed: not the burst this measures
        except PermissionError:
            denied += 1
        finally:
            if not reuse:
                t.close()
    os.write(wfd, str(denied).encode())
    os._exit(0)


def bench_burst(harness, n, ringbuf, reuse):
    extra = {"verify": {"interval_s": 0}}
    if ringbuf:
        extra["ringbuf_bytes"] = ringbuf
    lo = 2000
    e = harness.Env("memburst", managed=(f"{lo}-{lo + n - 1}/tcp",), extra=extra)
    try:
        e.start()
        before = e.ok("status")["events"]
        cg = e.cgroup("burst")
        r, w = os.pipe()
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            burst_child(cg, range(lo, lo + n), w, reuse)
        os.close(w)
        denied = int(os.read(r, 64) or b"0")
        os.close(r)
        os.waitpid(pid, 0)
        t_gen = time.monotonic() - t0
        want = before["kernel_records"] + denied
        deadline = time.monotonic() + 60
        while True:
            ev = e.ok("status")["events"]
            lost = ev["lost"]["kernel_ringbuf_first"] + ev["lost"]["kernel_ringbuf_followup"]
            if ev["kernel_records"] >= want or lost or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        t_all = time.monotonic() - t0
        got = ev["kernel_records"] - before["kernel_records"]
        print(f"  burst ({'one socket' if reuse else 'a socket per bind'}): {denied} distinct "
              f"denials in {t_gen:.2f} s, ring buffer "
              f"{e.config.get('ringbuf_bytes', 'default')} bytes: {got} records in "
              f"{t_all:.2f} s, lost in the kernel {lost}, in the journal "
              f"{ev['lost']['journal']}")
        return denied == n and got >= denied and not lost and not ev["lost"]["journal"]
    finally:
        e.stop()
        e.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--reservations", type=int, default=65535)
    ap.add_argument("--per", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round", type=int, default=2000)
    ap.add_argument("--detail", action="store_true")
    ap.add_argument("--burst", type=int, default=60000)
    ap.add_argument("--ringbuf", type=int, default=0, help="ringbuf_bytes (0: the default)")
    ap.add_argument("--only-burst", action="store_true")
    ap.add_argument("--burst-reuse", action="store_true",
                    help="all binds on one socket (faster than caelumd drains: a stress)")
    args = ap.parse_args()
    os.environ["CAELUM_BUILD"] = os.path.abspath(args.build)
    import harness  # after CAELUM_BUILD is set
    print("mem_bench: caelumd's memory (/proc/PID/status; whole process)")
    if not args.only_burst:
        bench_scale(harness, args.services, args.reservations, args.detail)
        bench_rounds(harness, args.per, args.rounds, args.round, args.detail)
    if args.burst and not bench_burst(harness, args.burst, args.ringbuf, args.burst_reuse):
        print("mem_bench: events of the burst were lost", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
