#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Run the root integration tests: python3 tests/integration/run.py --build build [-k PATTERN]"""
import argparse
import os
import sys
import unittest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", dest="pattern", action="append", default=[])
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("integration tests need root (real cgroups, BPF programs)", file=sys.stderr)
        return 1
    os.environ["CAELUM_BUILD"] = os.path.abspath(args.build)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [f"*{p}*" for p in args.pattern]
    suite = loader.discover(here, pattern="test_*.py")
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    # A skipped test is not a pass: there are none by design, and any would fail the run.
    if result.skipped:
        print(f"{len(result.skipped)} tests were skipped: failing the run", file=sys.stderr)
        return 1
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
