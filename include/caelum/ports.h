/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Port enforcement ABI (bpf/ports.bpf.c <-> user/enforce/ports.c).
 *
 * The whole port policy is one array indexed by (port, proto) slot, CAELUM_PORT_SLOT():
 * port * 2, + 1 for UDP. Each element is one 8-byte word, struct caelum_port_entry
 * { owner index, owner level, flags }, and the owner index names a cgroup id in
 * cm_port_owners. Words are written and read whole, so an entry is never seen torn.
 *
 * The array is reached through the one-slot array-of-maps cm_port_outer. There are two
 * arrays, cm_port_a and cm_port_b, both pinned, mmap'd by caelumd and kept equal
 * (user/enforce/port_tables.c); slot 0 holds one of them. A change of one entry is written
 * to the other array, then to the one in slot 0: one word store, atomic. A change of several
 * entries is written to the array not in slot 0, slot 0 is flipped to it (the syscall
 * returns once no program can still be reading the old one), and the old one is brought
 * level. Either way a program sees the policy before the change or after it, never a mix.
 * Owner indexes: written before the first entry naming them; an index whose cgroup id
 * changes (the owner's cgroup was made anew) moves all its entries at once; a freed index
 * is reused only after a flip (an RCU grace period) so that no program still holds it.
 *
 * The rule the decision reads, struct caelum_port_rule { owner cgroup id, level, flags }, is
 * an entry with its owner index resolved.
 *
 * Meaning of an entry:
 *   CAELUM_PORT_F_RESERVED  only tasks in the owner's cgroup (owner_cgid at owner_level) or
 *                           below it may bind; anyone else gets EPERM.
 *   CAELUM_PORT_F_MANAGED   the port lies in a managed range; without RESERVED nobody may
 *                           bind it (no squatting in 8100-8199 without a reservation).
 *   no entry                the port is not Caelum's business: bind is allowed.
 *   port 0                  never looked up: ephemeral binds are always allowed.
 * A reservation inside a managed range carries both flags; RESERVED wins (the owner may bind).
 *
 * Examples (managed 8100-8199, alpha reserves 8100/tcp, beta reserves 9000/udp):
 *   alpha binds 8100/tcp  -> allowed        beta binds 8100/tcp    -> EPERM (owner alpha)
 *   alpha binds 8100/udp  -> EPERM (managed, unreserved)
 *   anyone binds 8150/tcp -> EPERM (managed, unreserved)
 *   anyone binds 8080/tcp -> allowed (no entry)
 *   alpha binds 9000/udp  -> EPERM (owner beta)
 *
 * Two things refine "the current task" before the table decides (the table is unchanged):
 *   - where: only sockets in the host's network namespace, or an opted-in one, are subject
 *     to the rules (include/caelum/netns.h); a container's own port 8100 is not the host's.
 *   - who: an owner_cgid with CAELUM_CG_ANCHOR_BIT names a service identified by an existing
 *     cgroup (spec key "cgroup"), whose live id is mapped to it (include/caelum/cgfollow.h).
 */
#ifndef CAELUM_PORTS_H
#define CAELUM_PORTS_H

#ifndef __VMLINUX_H__ /* BPF side: vmlinux.h already has the types */
#include <linux/types.h>
#endif
#include "caelum/common.h"

/* Every (port, proto) pair fits: 65535 ports x {tcp, udp}. */
#define CAELUM_MAX_PORT_RULES	      131072
#define CAELUM_PORT_SLOTS	      131072
#define CAELUM_PORT_SLOT(port, proto) ((__u32)(port)*2 + ((proto) == 17 /* UDP */))
/* Owner indexes: every service and Caelum's own cgroups, twice (a service whose cgroup was
 * made anew holds a second index until its entries moved). Index 0 is nobody. */
#define CAELUM_MAX_PORT_OWNERS (2 * CAELUM_MAX_SERVICES)
#define CAELUM_PORT_OWNER_NONE 0

#define CAELUM_PORT_F_RESERVED 0x0001
#define CAELUM_PORT_F_MANAGED  0x0002

struct caelum_port_key {
	__u16 port; /* host byte order, 1..65535 */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;   /* must be zero */
};

struct caelum_port_rule {
	__u64 owner_cgid;  /* owner's cgroup id when RESERVED, else CAELUM_CGID_NONE */
	__u16 owner_level; /* cgroup level of owner_cgid */
	__u16 flags;	   /* CAELUM_PORT_F_* */
	__u32 pad;
};

/* One element of cm_port_a/cm_port_b: 8 bytes, read and written as one word. flags 0: no
 * rule (the port is not Caelum's business). */
struct caelum_port_entry {
	__u32 owner; /* index in cm_port_owners; CAELUM_PORT_OWNER_NONE: nobody */
	__u16 level; /* cgroup level of the owner */
	__u16 flags; /* CAELUM_PORT_F_* */
};

/*
 * The decision, shared by bpf/ports.bpf.c and the host unit tests.
 * ancestor: the current task's ancestor cgroup id at rule->owner_level (0 when the task is
 * not that deep). An owner of CAELUM_CGID_NONE matches nobody, so a reservation whose owner
 * could not be resolved denies everyone instead of allowing shallow tasks.
 */
static __always_inline int caelum_port_owner_match(const struct caelum_port_rule *rule,
						   __u64 ancestor)
{
	return (rule->flags & CAELUM_PORT_F_RESERVED) && rule->owner_cgid != CAELUM_CGID_NONE &&
	       ancestor == rule->owner_cgid;
}

/* Does this entry restrict binding at all? */
static __always_inline int caelum_port_restricted(const struct caelum_port_rule *rule)
{
	return rule->flags & (CAELUM_PORT_F_RESERVED | CAELUM_PORT_F_MANAGED);
}

#endif /* CAELUM_PORTS_H */
