// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Port enforcement: cgroup/bind4 and cgroup/bind6 attached at cgroup_root. The decision is
 * one lookup in the current policy table (see include/caelum/ports.h for the semantics);
 * only a bind the table restricts also asks whether its network namespace is the host's
 * (include/caelum/netns.h).
 */
#include "common.bpf.h"
#include "netns.bpf.h"
#include "cgfollow.bpf.h"
#include "caelum/ports.h"

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#define BIND_DENY 0
#define BIND_ALLOW 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct cm_port_rules_t {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_PORT_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	/* Sizes, not types: caelumd creates the tables itself, without BTF. */
	__uint(key_size, sizeof(struct caelum_port_key));
	__uint(value_size, sizeof(struct caelum_port_rule));
};

/* Slot 0 holds the current policy table; caelumd swaps in a new table per change. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct cm_port_rules_t);
} cm_port_outer SEC(".maps");

static __always_inline const struct caelum_port_rule *port_rule(__u16 port, __u8 proto)
{
	struct caelum_port_key key = { .port = port, .proto = proto };
	__u32 zero = 0;
	void *rules;

	rules = bpf_map_lookup_elem(&cm_port_outer, &zero);
	if (!rules)
		return NULL;
	return bpf_map_lookup_elem(rules, &key);
}

/* Is the current task in the owner's cgroup or one of its descendants? */
static __always_inline bool owner_is_current(const struct caelum_port_rule *rule)
{
	__u64 ancestor = 0;

	/* A followed cgroup (spec key "cgroup") is named by its anchor: include/caelum/cgfollow.h */
	if (rule->flags & CAELUM_PORT_F_RESERVED)
		ancestor = cg_identity(bpf_get_current_ancestor_cgroup_id(rule->owner_level));
	return caelum_port_owner_match(rule, ancestor);
}

static __always_inline void bind_report(struct bpf_sock_addr *ctx, __u8 family, __u16 port,
					__u8 proto, const struct caelum_port_rule *rule,
					__u32 action)
{
	struct caelum_event ev = {};
	struct caelum_agg_key key = {};

	event_fill_task(&ev);
	ev.type = CAELUM_EV_BIND_DENIED;
	ev.action = action;
	ev.bind.port = port;
	ev.bind.proto = proto;
	ev.bind.family = family;
	if (rule->flags & CAELUM_PORT_F_RESERVED) {
		ev.reason = CAELUM_REASON_RESERVED;
		ev.owner_cgid = rule->owner_cgid;
	} else {
		ev.reason = CAELUM_REASON_MANAGED;
		ev.owner_cgid = CAELUM_CGID_NONE;
	}
	if (family == AF_INET) {
		__u32 ip4 = ctx->user_ip4;

		__builtin_memcpy(ev.bind.addr, &ip4, sizeof(ip4));
	} else {
		__u32 ip6[4];

		ip6[0] = ctx->user_ip6[0];
		ip6[1] = ctx->user_ip6[1];
		ip6[2] = ctx->user_ip6[2];
		ip6[3] = ctx->user_ip6[3];
		__builtin_memcpy(ev.bind.addr, ip6, sizeof(ip6));
	}

	key.cgroup_id = ev.cgroup_id;
	key.subject = port | (__u64)proto << 16;
	key.type = CAELUM_EV_BIND_DENIED;
	event_report(&key, &ev);
}

static __always_inline int bind_check(struct bpf_sock_addr *ctx, __u8 family)
{
	const struct caelum_port_rule *rule;
	__u8 proto = ctx->protocol;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u32 mode;

	if (port == 0 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return BIND_ALLOW;
	rule = port_rule(port, proto);
	if (!rule || !caelum_port_restricted(rule) || owner_is_current(rule))
		return BIND_ALLOW;
	/* Another network namespace's port of that number is not the host's. */
	if (!netns_enforced(ctx))
		return BIND_ALLOW;

	mode = component_mode(CAELUM_COMP_PORTS);
	if (mode == CAELUM_MODE_OFF)
		return BIND_ALLOW;
	if (mode == CAELUM_MODE_AUDIT) {
		stat_inc(CAELUM_STAT_AUDITED);
		bind_report(ctx, family, port, proto, rule, CAELUM_ACT_AUDITED);
		return BIND_ALLOW;
	}
	stat_inc(CAELUM_STAT_DENIED);
	bind_report(ctx, family, port, proto, rule, CAELUM_ACT_DENIED);
	return BIND_DENY;
}

SEC("cgroup/bind4")
int cm_bind4(struct bpf_sock_addr *ctx)
{
	return bind_check(ctx, AF_INET);
}

SEC("cgroup/bind6")
int cm_bind6(struct bpf_sock_addr *ctx)
{
	return bind_check(ctx, AF_INET6);
}
