/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Device exclusivity ABI (bpf/devices.bpf.c <-> user/enforce/devices.c).
 *
 * cm_devices (HASH) lists the devices of the configured GPUs.
 * Key:   struct caelum_dev_key  { major, minor, type (CAELUM_DEV_CHAR) }
 * Value: struct caelum_dev_rule { owner cgroup (id, level), flags }
 *
 *   no entry                 not Caelum's business: open/mknod allowed
 *   CAELUM_DEV_F_ASSIGNED    only tasks in the owner's cgroup (or below) may read, write or
 *                            mknod it; everyone else gets EPERM (event device_denied)
 *   entry without ASSIGNED   a listed GPU nobody was given: everyone gets EPERM
 *
 * Example: gpu0 = /dev/nvidia0 (195:0) assigned to "train", gpu1 = 195:1 unassigned:
 *   train opens 195:0 -> allowed       infer opens 195:0 -> EPERM (owner train)
 *   anyone opens 195:1 -> EPERM        anyone opens /dev/null (1:3) -> allowed
 */
#ifndef CAELUM_DEVICES_H
#define CAELUM_DEVICES_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

#define CAELUM_MAX_DEVICES 1024

#define CAELUM_DEV_CHAR	      2 /* BPF_DEVCG_DEV_CHAR */
#define CAELUM_DEV_F_ASSIGNED 0x0001

struct caelum_dev_key {
	__u32 major;
	__u32 minor;
	__u32 type; /* CAELUM_DEV_CHAR */
	__u32 pad;
};

struct caelum_dev_rule {
	__u64 owner_cgid; /* CAELUM_CGID_NONE when not assigned */
	__u16 owner_level;
	__u16 flags;	 /* CAELUM_DEV_F_* */
	__u32 gpu_index; /* position in capacity.gpus, for naming */
};

/* Shared with the host tests: may the task whose ancestor at the owner's level is ancestor
 * use the device? */
static __always_inline int caelum_dev_owner_match(const struct caelum_dev_rule *rule,
						  __u64 ancestor)
{
	return (rule->flags & CAELUM_DEV_F_ASSIGNED) && rule->owner_cgid != CAELUM_CGID_NONE &&
	       ancestor == rule->owner_cgid;
}

#endif /* CAELUM_DEVICES_H */
