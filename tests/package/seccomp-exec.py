#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""seccomp-exec.py UNIT CMD [ARG...]: exec CMD under the seccomp filter systemd would install
for UNIT's [Service] SystemCallFilter=, SystemCallErrorNumber=, RestrictAddressFamilies=,
RestrictNamespaces=yes and MemoryDenyWriteExecute=yes (systemd.exec(5)), built with libseccomp
(python3-seccomp). Groups are expanded by `systemd-analyze syscall-filter`, so @system-service
means here what it means to the host's systemd. Needs no_new_privs (unit-sandbox.sh sets it).
"""
import errno
import os
import re
import socket
import subprocess
import sys

import seccomp

# systemd.exec(5): "execve(), exit(), exit_group(), getrlimit(), rt_sigreturn(), sigreturn()
# and the system calls for querying time and sleeping are implicitly allow-listed".
IMPLICIT = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn",
            "clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "nanosleep",
            "time"}
CLONE_NS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | \
    0x40000000 | 0x00000080  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
PROT_WRITE, PROT_EXEC = 0x2, 0x4


def groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], check=True,
                         capture_output=True, text=True).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = g.setdefault(line.strip(), [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return g


def expand(items, g, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for it in items:
        if it.startswith("@"):
            if it not in seen:
                seen.add(it)
                out |= expand(g[it], g, seen)
        else:
            out.add(it)
    return out


def unit_settings(path):
    s = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^(\w+)=(.*)$", line.strip())
            if m:
                s.setdefault(m[1], []).append(m[2])
    return s


def allowed_syscalls(filters, g):
    """systemd's rule: the first assignment decides allow or deny list; later ones add to or
    remove from it."""
    allow = None
    for value in filters:
        deny = value.startswith("~")
        names = expand(value.lstrip("~").split(), g)
        if allow is None:
            if deny:
                raise SystemExit("seccomp-exec: a deny-list SystemCallFilter= is not emulated")
            allow = set(names)
        elif deny:
            allow -= names
        else:
            allow |= names
    return (allow or set()) | IMPLICIT


def add(f, action, name, *args):
    try:
        f.add_rule(action, name, *args)
    except (RuntimeError, ValueError, OSError):
        pass  # not a syscall of this architecture


def build(unit):
    s = unit_settings(unit)
    g = groups()
    allow = allowed_syscalls(s.get("SystemCallFilter", []), g)
    err = getattr(errno, s.get("SystemCallErrorNumber", ["EPERM"])[-1])
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(err))
    special = {"socket", "mmap", "mprotect", "pkey_mprotect", "clone", "clone3", "unshare",
               "setns"}
    for name in sorted(allow - special):
        add(f, seccomp.ALLOW, name)
    fams = s.get("RestrictAddressFamilies", [""])[-1].split()
    for fam in fams if fams else []:
        add(f, seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, getattr(socket, fam)))
    if not fams and "socket" in allow:
        add(f, seccomp.ALLOW, "socket")
    mdwe = s.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes"
    for name in ("mmap", "mprotect", "pkey_mprotect"):
        if name not in allow:
            continue
        if not mdwe:
            add(f, seccomp.ALLOW, name)
            continue
        arg = 2
        if name == "mmap":  # anything but writable and executable at once
            for v in (0, PROT_WRITE, PROT_EXEC):
                add(f, seccomp.ALLOW, name,
                    seccomp.Arg(arg, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC, v))
        else:  # no making memory executable later
            add(f, seccomp.ALLOW, name, seccomp.Arg(arg, seccomp.MASKED_EQ, PROT_EXEC, 0))
    ns = s.get("RestrictNamespaces", ["no"])[-1] == "yes"
    for name in ("clone", "unshare"):
        if name in allow:
            add(f, seccomp.ALLOW, name, *([seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NS, 0)]
                                          if ns else []))
    if "clone3" in allow:  # systemd answers clone3 with ENOSYS: glibc falls back to clone
        add(f, seccomp.ERRNO(errno.ENOSYS) if ns else seccomp.ALLOW, "clone3")
    if "setns" in allow and not ns:
        add(f, seccomp.ALLOW, "setns")
    return f


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    build(sys.argv[1]).load()
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
