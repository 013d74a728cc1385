#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Module graphs of user/: who links against whom, who includes whom; cycles printed.

  link graph     a -> b when an object of a has an undefined symbol an object of b defines
  include graph  a -> b when a file of module a includes a header of module b
  A module is a file stem, except that one module's private parts belong to it: X_int.h
  and X_user.h (an enforcement path's header, named apart from its ABI header
  include/caelum/X.h) are X's, handlers_*.c are handlers', ctl_*.c are caelumctl's.
  Sources are found in every folder below --src (user/<role>/). A header without a .c of the
  same stem (daemon.h) is a module of its own.

  tools/modgraph.py [--objs build/obj] [--only a,b,c] [--unique DIR...] [--why a b]
  Exit status 1 when a cycle among the --only modules (default: all) exists, or when two C
  files or headers under --src and the --unique folders share a name.
"""
import argparse
import os
import re
import subprocess
import sys


def module_of(stem):
    for suffix in ("_int", "_user"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if stem.startswith("handlers_"):
        return "handlers"
    if stem.startswith("ctl_"):
        return "caelumctl"
    return stem


def link_graph(objdir):
    defs, undefs = {}, {}
    for f in sorted(os.listdir(objdir)):
        if not f.endswith(".o"):
            continue
        mod = module_of(f[:-2])
        out = subprocess.run(["nm", os.path.join(objdir, f)], capture_output=True, text=True,
                             check=True).stdout
        undefs.setdefault(mod, set())
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefs[mod].add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBRVW":
                defs.setdefault(parts[2], mod)
    graph, why = {}, {}
    for mod, syms in undefs.items():
        graph[mod] = set()
        for s in syms:
            d = defs.get(s)
            if d and d != mod:
                graph[mod].add(d)
                why.setdefault((mod, d), []).append(s)
    return graph, why


def include_graph(srcdir):
    paths = {}
    for root, _, names in os.walk(srcdir):
        for f in names:
            if f.endswith((".c", ".h")):
                paths[f] = os.path.join(root, f)
    graph, why = {}, {}
    for f, path in sorted(paths.items()):
        mod = module_of(f[:-2])
        graph.setdefault(mod, set())
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = re.match(r'\s*#\s*include\s+"([^"/]+)\.h"', line)
                dep = module_of(m.group(1)) if m else None
                if m and dep != mod and m.group(1) + ".h" in paths:
                    graph[mod].add(dep)
                    why.setdefault((mod, dep), []).append(f)
    return graph, why


def sccs(graph):
    """Tarjan: strongly connected components with more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objs", default="build/obj")
    ap.add_argument("--src", default="user")
    ap.add_argument("--only", help="comma-separated modules whose cycles fail the check")
    ap.add_argument("--unique", nargs="*", default=[],
                    help="folders whose C files and headers, with --src's, must not share a name")
    ap.add_argument("--why", nargs=2, metavar=("FROM", "TO"),
                    help="the symbols / files behind one edge")
    a = ap.parse_args()
    lg, lwhy = link_graph(a.objs)
    ig, iwhy = include_graph(a.src)
    if a.why:
        e = tuple(a.why)
        print("link:", " ".join(sorted(lwhy.get(e, []))) or "-")
        print("include:", " ".join(sorted(iwhy.get(e, []))) or "-")
        return 0
    only = set(a.only.split(",")) if a.only else None
    bad = 0
    seen = {}
    for top in [a.src] + a.unique:
        for root, _, names in os.walk(top):
            for f in names:
                if f.endswith((".c", ".h")):
                    seen.setdefault(f, []).append(os.path.join(root, f))
    for f, where in sorted(seen.items()):
        if len(where) > 1:
            bad = 1
            print(f"same file name twice: {' '.join(sorted(where))}")
    for name, g in (("link", lg), ("include", ig)):
        comps = sccs(g)
        if not comps:
            print(f"{name} graph: no cycles")
        for c in comps:
            hit = only is None or bool(only & set(c))
            bad |= hit
            print(f"{name} cycle{'' if hit else ' (not checked)'}: {' '.join(c)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
