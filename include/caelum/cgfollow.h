/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Services identified by an existing cgroup (spec key "cgroup"), followed across
 * remove/recreate (bpf/cgfollow.bpf.c, bpf/cgfollow.bpf.h <-> user/enforce/cgfollow.c).
 *
 * A systemd unit or a container scope is made by its manager, and every restart of the unit
 * removes its cgroup and makes a new one with a new id. So the port policy does not name
 * such a service by a cgroup id but by an anchor: CAELUM_CG_ANCHOR_BIT | a hash of the
 * service's name, a value no cgroup id takes (ids count up from 1). Two maps resolve it:
 *
 *   cm_cg_follow (HASH)  key: struct caelum_cg_path, the cgroup's path relative to the
 *                        cgroup2 mount as the kernel prints it ("/system.slice/web.service")
 *                        -> the anchor. Written by caelumd.
 *   cm_cg_alias  (HASH)  key: a live cgroup id -> the anchor it stands for. Written by
 *                        caelumd for cgroups that exist when it applies, and by the kernel
 *                        itself (tp_btf/cgroup_mkdir) the moment a followed path is created,
 *                        before the directory is visible, so before any process can be in
 *                        it: no window where the restarted unit is refused. cgroup_rmdir
 *                        removes the dead id's entry.
 *
 * The bind decision asks for the task's ancestor at the owner's level, as for any service,
 * and then maps it through cm_cg_alias (no entry: the id itself). Example: web has
 * "cgroup": "system.slice/web.service" and reserves 8080/tcp, anchor A.
 *   web.service has id 901          cm_cg_alias {901: A}   a task in it binds 8080 -> allowed
 *   systemctl restart web: rmdir 901, mkdir -> id 977: {977: A} at mkdir  -> allowed at once
 *   a task in system.slice/other.service (id 950, no alias) binds 8080   -> EPERM
 * A followed cgroup that does not exist yet owns its ports from the moment it is made.
 */
#ifndef CAELUM_CGFOLLOW_H
#define CAELUM_CGFOLLOW_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

#define CAELUM_MAX_FOLLOWED  1024
#define CAELUM_CG_PATH_MAX   128 /* including the NUL */
#define CAELUM_CG_ANCHOR_BIT (1ULL << 63)

struct caelum_cg_path {
	char path[CAELUM_CG_PATH_MAX]; /* NUL-terminated, zero-padded */
};

/* The identity an ancestor id stands for: its anchor when aliased, else itself. */
static __always_inline __u64 caelum_cg_identity(__u64 ancestor, const __u64 *alias)
{
	return alias ? *alias : ancestor;
}

#endif /* CAELUM_CGFOLLOW_H */
