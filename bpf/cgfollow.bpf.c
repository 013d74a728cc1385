// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Followed cgroups (include/caelum/cgfollow.h): when a cgroup whose path caelumd follows is
 * created, its new id is aliased to the service's anchor in the same breath; when it is
 * removed, the dead id's alias goes. Only the cgroup2 hierarchy (hierarchy_id 0) counts.
 */
#include "common.bpf.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "cgfollow.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline bool on_cgroup2(struct cgroup *cgrp)
{
	return BPF_CORE_READ(cgrp, root, hierarchy_id) == 0;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(cm_cg_mkdir, struct cgroup *cgrp, const char *path)
{
	struct caelum_cg_path key = {};
	__u64 id, *anchor;

	if (!on_cgroup2(cgrp))
		return 0;
	if (bpf_probe_read_kernel_str(key.path, sizeof(key.path), path) <= 0)
		return 0;
	anchor = bpf_map_lookup_elem(&cm_cg_follow, &key);
	if (!anchor)
		return 0;
	id = BPF_CORE_READ(cgrp, kn, id);
	bpf_map_update_elem(&cm_cg_alias, &id, anchor, BPF_ANY);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(cm_cg_rmdir, struct cgroup *cgrp, const char *path)
{
	__u64 id;

	if (!on_cgroup2(cgrp))
		return 0;
	id = BPF_CORE_READ(cgrp, kn, id);
	bpf_map_delete_elem(&cm_cg_alias, &id);
	return 0;
}
