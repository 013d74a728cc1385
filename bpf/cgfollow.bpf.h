/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Followed cgroups' identity (include/caelum/cgfollow.h): maps shared by ports.bpf.c, which
 * reads them, and cgfollow.bpf.c, which keeps cm_cg_alias current at mkdir/rmdir. */
#ifndef CAELUM_CGFOLLOW_BPF_H
#define CAELUM_CGFOLLOW_BPF_H

#include "common.bpf.h"
#include "caelum/cgfollow.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_FOLLOWED);
	__type(key, struct caelum_cg_path);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_cg_follow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_FOLLOWED * 2);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_cg_alias SEC(".maps");

/* The identity of a cgroup id for ownership: a followed service's anchor, or the id. */
static __always_inline __u64 cg_identity(__u64 cgid)
{
	if (!cgid)
		return 0;
	return caelum_cg_identity(cgid, bpf_map_lookup_elem(&cm_cg_alias, &cgid));
}

#endif /* CAELUM_CGFOLLOW_BPF_H */
