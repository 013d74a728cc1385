#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""make cluster-demo: one registry, two hosts, on this machine (root, loopback only).

Starts a 3-member etcd on 127.0.0.1:23830-23835 and two caelumd "hosts", node-a and node-b,
each with its own cgroup subtree, bpffs directory, state directory and listeners, sharing
the registry through etcd. Then: a service and a reservation made on node-a, a bind of that
port on node-b denied by node-b's kernel, the machine registry and discovery, and an etcd
quorum loss (node-b keeps enforcing, a change fails with 69). Everything is removed at the
end. Usage: python3 deploy/cluster_demo.py --build build
"""
import argparse
import json
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def say(text):
    print(f"\n### {text}", flush=True)


def ctl(env, *args):
    r = env.ctl(*args, json_out=False)
    print(f"$ caelumctl -c {env.config['host']}.json {shlex.join(args)}")
    print((r.out + r.err).rstrip())
    print(f"(exit {r.rc})")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("cluster-demo needs root (BPF programs, cgroups)")
    os.environ["CAELUM_BUILD"] = os.path.abspath(args.build)
    from etcdcluster import EtcdCluster  # noqa: E402 (after CAELUM_BUILD)
    from harness import Env  # noqa: E402

    say("a 3-member etcd on 127.0.0.1:23830, :23832, :23834")
    etcd = EtcdCluster(base=23830)
    envs = []
    try:
        reg = {"backend": "etcd", "endpoints": etcd.endpoints(), "prefix": "demo/",
               "lease_ttl_s": 5, "timeout_ms": 3000}
        for name in ("node-a", "node-b"):
            e = Env(name, managed=(), extra={"host": name, "registry": reg})
            envs.append(e)
            e.start()
        a, b = envs
        print(json.dumps({"registry": reg}, indent=1))

        say("node-a registers service web and reserves 18080 for it")
        spec = os.path.join(a.dir, "web.json")
        with open(spec, "w") as f:
            json.dump({"name": "web", "ports": []}, f)
        ctl(a, "service", "apply", spec)
        ctl(a, "port", "reserve", "18080", "service", "web")
        time.sleep(0.3)

        say("node-b received it through its etcd watch")
        ctl(b, "port", "list")
        say("a process outside web binds 18080 on node-b: node-b's kernel says EPERM")
        print("bind errno:", b.bind_in(b.cgroup("intruder"), 18080), "(1 = EPERM)")
        print("the same from web's cgroup on node-b:", b.bind_in(b.svc_cgroup("web"), 18080),
              "(0 = allowed)")

        say("both hosts race for port 18081: one wins, the other is told who owns it")
        spec_b = os.path.join(b.dir, "api.json")
        with open(spec_b, "w") as f:
            json.dump({"name": "api", "ports": []}, f)
        ctl(b, "service", "apply", spec_b)
        ctl(a, "port", "reserve", "18081", "service", "web")
        ctl(b, "port", "reserve", "18081", "service", "api")

        say("the machine registry, and where web runs (a process in web's cgroup on node-b)")
        b.spawn_in(b.svc_cgroup("web"), ["sleep", "60"])
        time.sleep(2)
        ctl(a, "host", "list")
        ctl(a, "service", "where", "web")

        say("etcd loses quorum (two members SIGSTOPped)")
        etcd.pause(0)
        etcd.pause(1)
        print("bind errno on node-b:", b.bind_in(b.cgroup("intruder"), 18080), "(still EPERM)")
        t = time.time()
        ctl(a, "port", "reserve", "18082", "service", "web")
        print(f"failed after {time.time() - t:.1f} s; this host's policy is unchanged")
        etcd.resume(0)
        etcd.resume(1)
        etcd.wait_healthy()
        say("quorum is back")
        for _ in range(20):
            if a.ctl("port", "reserve", "18082", "service", "web").rc == 0:
                break
            time.sleep(0.5)
        time.sleep(0.3)
        ctl(b, "port", "list")
        ctl(b, "status")
    finally:
        say("cleaning up")
        for e in envs:
            e.cleanup()
        etcd.close()


if __name__ == "__main__":
    main()
