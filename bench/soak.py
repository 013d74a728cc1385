#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""caelumd's memory and descriptors under sustained use (root; a private caelumd).

    python3 bench/soak.py [--build build] [--binds 100000] [--reservations 10000]

Denied binds (a process in a cgroup of its own binds managed ports it does not own, 100
different ports so that aggregation does not fold them all), then port reservations and
releases over one control-socket connection, then both again. RSS (VmRSS) and the number
of open descriptors of caelumd are sampled before, between and after; the figures are
printed as JSON. Fails (exit 1) when RSS grows by more than --max-rss-growth-kib after the
first round (the first round warms caches, the event window and the journal) or any
descriptor is left over."""
import argparse
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def denied_binds(env, n):
    """n binds of managed ports from a cgroup that owns none: each one EPERM."""
    cg = env.cgroup("soak-squatter")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        denied = 0
        for i in range(n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", 8100 + i % 100))
            except PermissionError:
                denied += 1
            finally:
                s.close()
        os.write(w, str(denied).encode())
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 64):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return int(out or b"0")


def reservations(env, n, batch=50, service="soak", base=8200, span=50):
    """n reserve + release pairs of ports base..base+span-1 for service, pipelined in batches
    on one connection; how many pairs succeeded."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(env.runtime_dir, "caelumd.sock"))
    f = s.makefile("rb")
    ok = 0
    for start in range(0, n, batch):
        msgs = []
        for i in range(start, min(n, start + batch)):
            port = base + i % span
            msgs.append({"jsonrpc": "2.0", "id": 2 * i, "method": "port.reserve",
                         "params": {"port": port, "proto": "tcp", "service": service}})
            msgs.append({"jsonrpc": "2.0", "id": 2 * i + 1, "method": "port.release",
                         "params": {"port": port, "proto": "tcp"}})
        s.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))
        for _ in msgs:
            ok += "result" in json.loads(f.readline())
    s.close()
    return ok // 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--binds", type=int, default=100000)
    ap.add_argument("--reservations", type=int, default=10000)
    ap.add_argument("--max-rss-growth-kib", type=int, default=4096)
    args = ap.parse_args()
    os.environ["CAELUM_BUILD"] = os.path.abspath(args.build)
    from harness import Env  # after CAELUM_BUILD is set

    env = Env("soak", managed=("8100-8299",), services={"soak": ["8099/tcp"]})
    try:
        env.start()
        pid = env.proc.pid
        time.sleep(0.5)
        figures = {"start": sample(pid)}
        for rnd in (1, 2):
            t = time.time()
            d = denied_binds(env, args.binds)
            figures[f"round{rnd}_binds"] = {"denied": d, "seconds": round(time.time() - t, 1),
                                            **sample(pid)}
            t = time.time()
            k = reservations(env, args.reservations)
            time.sleep(1.5)  # aggregation windows flush, the journal catches up
            figures[f"round{rnd}_reservations"] = {"done": k,
                                                   "seconds": round(time.time() - t, 1),
                                                   **sample(pid)}
        figures["events"] = env.ok("status")["events"]
    finally:
        env.cleanup()
    growth = figures["round2_reservations"]["rss_kib"] - figures["round1_reservations"]["rss_kib"]
    fd_growth = figures["round2_reservations"]["fds"] - figures["start"]["fds"]
    figures["rss_growth_round2_kib"] = growth
    figures["fd_growth"] = fd_growth
    print(json.dumps(figures, indent=1))
    if growth > args.max_rss_growth_kib or fd_growth > 0:
        print(f"soak: RSS grew {growth} KiB in round 2, descriptors by {fd_growth}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
