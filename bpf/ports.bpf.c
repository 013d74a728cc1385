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

#define BIND_DENY  0
#define BIND_ALLOW 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The policy tables: one 8-byte entry per (port, proto) slot, read and written whole; the
 * two are kept equal by caelumd (user/enforce/ports.c), which writes them through mmap. */
#define PORT_TABLE_DEF                                                                             \
	__uint(type, BPF_MAP_TYPE_ARRAY);                                                          \
	__uint(max_entries, CAELUM_PORT_SLOTS);                                                    \
	__uint(map_flags, BPF_F_MMAPABLE);                                                         \
	__type(key, __u32);                                                                        \
	__type(value, struct caelum_port_entry)

struct cm_port_table_t {
	PORT_TABLE_DEF;
};

struct {
	PORT_TABLE_DEF;
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_port_a SEC(".maps"), cm_port_b SEC(".maps");

/* Slot 0 holds the current policy table: cm_port_a or cm_port_b. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct cm_port_table_t);
} cm_port_outer SEC(".maps");

/* Owner index -> owner's cgroup id (one table for both policy tables). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CAELUM_MAX_PORT_OWNERS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_port_owners SEC(".maps");

/* The rule for (port, proto) into *rule; false when the port is not Caelum's business. Each
 * word is loaded once: an entry is seen as it was before a write or after it, never torn. */
static __always_inline bool port_rule(__u16 port, __u8 proto, struct caelum_port_rule *rule)
{
	__u32 zero = 0, slot = CAELUM_PORT_SLOT(port, proto), owner;
	struct caelum_port_entry ent;
	__u64 *cgid, raw;
	void *table, *e;

	table = bpf_map_lookup_elem(&cm_port_outer, &zero);
	if (!table)
		return false;
	e = bpf_map_lookup_elem(table, &slot);
	if (!e)
		return false;
	raw = *(volatile __u64 *)e;
	__builtin_memcpy(&ent, &raw, sizeof(ent));
	if (!ent.flags)
		return false;
	owner = ent.owner;
	cgid = bpf_map_lookup_elem(&cm_port_owners, &owner);
	rule->owner_cgid = cgid ? *(volatile __u64 *)cgid : CAELUM_CGID_NONE;
	rule->owner_level = ent.level;
	rule->flags = ent.flags;
	return true;
}

/* Is the current task in the owner's cgroup or one of its descendants? */
static __always_inline bool owner_is_current(const struct caelum_port_rule *rule)
{
	__u64 ancestor = 0;

	/* A followed cgroup (spec key "cgroup") is named by its anchor (caelum/cgfollow.h) */
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
	struct caelum_port_rule r = {}, *rule = &r;
	__u8 proto = ctx->protocol;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u32 mode;

	if (port == 0 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return BIND_ALLOW;
	if (!port_rule(port, proto, rule) || !caelum_port_restricted(rule) ||
	    owner_is_current(rule))
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
