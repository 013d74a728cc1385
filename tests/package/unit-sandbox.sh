#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# unit-sandbox.sh UNIT CMD [ARG...]: run CMD as root with what of UNIT's [Service] restrictions
# can be applied without systemd as PID 1: its CapabilityBoundingSet= (root's permitted and
# effective sets become the bounding set at exec), NoNewPrivileges=, UMask=, and the seccomp
# filter of SystemCallFilter=, RestrictAddressFamilies=, RestrictNamespaces= and
# MemoryDenyWriteExecute= (seccomp-exec.py). Not applied: the mount namespace (ProtectSystem=,
# ReadWritePaths=, PrivateTmp=, ...) and the unit's own cgroup. make test-package runs the
# integration tests' caelumd under it with CAELUM_DAEMON_WRAPPER.
set -eu
unit=$1
shift
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[ -n "$caps" ] || { echo "unit-sandbox: no CapabilityBoundingSet= in $unit" >&2; exit 78; }
set_=-all
for c in $caps; do
	set_="$set_,+$(echo "${c#CAP_}" | tr 'A-Z' 'a-z')"
done
nnp=
grep -qx 'NoNewPrivileges=yes' "$unit" && nnp=--no-new-privs
umask "$(sed -n 's/^UMask=//p' "$unit")"
here=$(dirname "$(readlink -f "$0")")
# Capabilities first: the seccomp filter then forbids capset(2) that setpriv needs.
exec setpriv --bounding-set "$set_" --inh-caps -all $nnp -- \
	/usr/bin/python3 "$here/seccomp-exec.py" "$unit" "$@"
