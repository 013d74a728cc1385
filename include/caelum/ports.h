/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Port enforcement ABI (bpf/ports.bpf.c <-> user/ports.c).
 *
 * The whole port policy is one hash table keyed by (port, proto), reached through the
 * one-slot array-of-maps cm_port_outer. caelumd builds a complete new table for every change
 * and swaps it in with a single update of slot 0, so the kernel always sees either the old
 * policy or the new one, never a mix.
 *
 * Key:   struct caelum_port_key   { port (host order), proto (IPPROTO_TCP/IPPROTO_UDP) }
 * Value: struct caelum_port_rule  { flags, owner }
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
#define CAELUM_MAX_PORT_RULES 131072

#define CAELUM_PORT_F_RESERVED 0x0001
#define CAELUM_PORT_F_MANAGED 0x0002

struct caelum_port_key {
	__u16 port; /* host byte order, 1..65535 */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad; /* must be zero */
};

struct caelum_port_rule {
	__u64 owner_cgid; /* owner's cgroup id when RESERVED, else CAELUM_CGID_NONE */
	__u16 owner_level; /* cgroup level of owner_cgid */
	__u16 flags; /* CAELUM_PORT_F_* */
	__u32 pad;
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
