/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Network namespaces (bpf/netns.bpf.h <-> user/enforce/netns.c), used by the bind rules
 * (bpf/ports.bpf.c) and the database rules (bpf/connect.bpf.c).
 *
 * A port number or a 127.0.0.1 means something only inside one network namespace. Caelum's
 * rules are about the host's: the namespace caelumd runs in. A process below cgroup_root
 * that lives in another network namespace (a container with its own lo, `unshare -n`, `ip
 * netns exec`) binds and connects in that namespace, where it conflicts with nothing of
 * the host's, so the rules do not apply to it, unless the configuration opts that namespace
 * in ("network_namespaces": ["/run/netns/blue"] in caelum.json; then it is treated exactly
 * like the host's).
 *
 *   cm_netns (HASH)  key: netns cookie (bpf_get_netns_cookie(), SO_NETNS_COOKIE),
 *                    value: struct caelum_netns. Presence = the rules apply there.
 *   key CAELUM_NETNS_KEY_CONFIGURED (0, never a cookie: cookies count from 1)
 *                    present once caelumd has written the table. Without it every namespace
 *                    is enforced: a table caelumd never filled fails closed, never open.
 *
 * Examples (alpha reserves 8100/tcp, managed 8100-8199, database pg = 127.0.0.1:5432 with
 * "unmanaged": "deny"; host netns cookie 1, a container's 4097, /run/netns/blue's 4120
 * opted in):
 *   a process in cgroup other/, host netns, binds 8100        -> EPERM (owner alpha)
 *   the same process after unshare -n, binds 0.0.0.0:8100      -> allowed (not the host's port)
 *   a container process (netns 4097) binds 8150               -> allowed
 *   a container process connects to its own 127.0.0.1:5432    -> allowed (not the host's pg)
 *   a process in /run/netns/blue (opted in) binds 8100        -> EPERM, as on the host
 *   alpha itself, any namespace, binds 8100                   -> allowed (owner)
 * The owner's identity is its cgroup, whatever its namespace: a namespace changes where the
 * rules apply, never who owns what.
 */
#ifndef CAELUM_NETNS_H
#define CAELUM_NETNS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

/* The host's plus the opted-in ones (config "network_namespaces", at most 15), plus the
 * CONFIGURED marker. */
#define CAELUM_MAX_NETNS	    17
#define CAELUM_NETNS_KEY_CONFIGURED 0ULL

#define CAELUM_NETNS_F_HOST	  0x0001 /* the namespace caelumd runs in */
#define CAELUM_NETNS_F_OPTED_IN	  0x0002 /* listed in the config */
#define CAELUM_NETNS_F_CONFIGURED 0x0004 /* the marker entry */

struct caelum_netns {
	__u32 flags; /* CAELUM_NETNS_F_* */
	__u32 pad;
};

/*
 * Do the rules apply in a namespace? configured: the entry at CAELUM_NETNS_KEY_CONFIGURED
 * (NULL when caelumd has not written the table), entry: the namespace's (NULL when not
 * listed). Shared by the BPF programs and the host unit tests.
 */
static __always_inline int caelum_netns_enforced(const struct caelum_netns *configured,
						 const struct caelum_netns *entry)
{
	if (!configured)
		return 1;
	return entry != 0;
}

#endif /* CAELUM_NETNS_H */
