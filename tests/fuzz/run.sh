#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run libFuzzer harnesses: tests/fuzz/run.sh BUILD_DIR SECONDS NAME...
# Each starts from its committed corpus (tests/fuzz/corpus/NAME, never written) and keeps
# what it finds in BUILD_DIR/corpus/NAME; a crash leaves its input in BUILD_DIR/crashes.
# Prints executions and executions per second; exits non-zero on the first failure.
set -u
build=$1 secs=$2
shift 2
here=$(dirname "$0")
mkdir -p "$build/crashes"
for f in "$@"; do
	mkdir -p "$build/corpus/$f"
	log="$build/fuzz_$f.log"
	"$build/fuzz_$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
		-print_final_stats=1 -dict="$here/$f.dict" -artifact_prefix="$build/crashes/$f-" \
		"$build/corpus/$f" "$here/corpus/$f" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	echo "fuzz_$f: ${secs} s, ${execs:-?} execs, ${rate:-?}/s, ${cov:-cov: ?}, rc $rc"
	if [ $rc -ne 0 ]; then
		grep -E '^(==[0-9]+==|SUMMARY|    #[0-9]|.*runtime error)' "$log" | head -40
		echo "fuzz_$f failed: full output in $log"
		exit 1
	fi
done
