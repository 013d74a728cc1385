/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Where the rules apply: the host's network namespace and the opted-in ones
 * (include/caelum/netns.h). Shared by ports.bpf.c and connect.bpf.c: one pinned map. */
#ifndef CAELUM_NETNS_BPF_H
#define CAELUM_NETNS_BPF_H

#include "common.bpf.h"
#include "caelum/netns.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_NETNS);
	__type(key, __u64);
	__type(value, struct caelum_netns);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_netns SEC(".maps");

/* Is the socket behind ctx in a namespace whose binds and connects are the host's? */
static __always_inline bool netns_enforced(struct bpf_sock_addr *ctx)
{
	__u64 marker = CAELUM_NETNS_KEY_CONFIGURED;
	__u64 cookie = bpf_get_netns_cookie(ctx);

	return caelum_netns_enforced(bpf_map_lookup_elem(&cm_netns, &marker),
				     bpf_map_lookup_elem(&cm_netns, &cookie));
}

#endif /* CAELUM_NETNS_BPF_H */
