// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * GPU exclusivity: cgroup/dev attached at cgroup_root. A listed device may be read,
 * written or created (mknod) only by the service it is assigned to; see
 * include/caelum/devices.h for the semantics.
 */
#include "common.bpf.h"
#include "caelum/devices.h"

#define DEV_DENY  0
#define DEV_ALLOW 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_DEVICES);
	__type(key, struct caelum_dev_key);
	__type(value, struct caelum_dev_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_devices SEC(".maps");

static __always_inline bool dev_owner_is_current(const struct caelum_dev_rule *rule)
{
	__u64 ancestor = 0;

	if (rule->flags & CAELUM_DEV_F_ASSIGNED)
		ancestor = bpf_get_current_ancestor_cgroup_id(rule->owner_level);
	return caelum_dev_owner_match(rule, ancestor);
}

static __always_inline void dev_report(const struct caelum_dev_key *k,
				       const struct caelum_dev_rule *rule, __u32 access,
				       __u32 action)
{
	struct caelum_event ev = {};
	struct caelum_agg_key key = {};

	event_fill_task(&ev);
	ev.type = CAELUM_EV_DEVICE_DENIED;
	ev.action = action;
	ev.owner_cgid = rule->owner_cgid;
	ev.reason = (rule->flags & CAELUM_DEV_F_ASSIGNED) ? CAELUM_REASON_ASSIGNED
							  : CAELUM_REASON_UNASSIGNED;
	ev.dev.major = k->major;
	ev.dev.minor = k->minor;
	ev.dev.access = access;
	ev.dev.dev_type = k->type;
	key.cgroup_id = ev.cgroup_id;
	key.subject = (__u64)k->major << 32 | k->minor;
	key.type = CAELUM_EV_DEVICE_DENIED;
	event_report(&key, &ev);
}

SEC("cgroup/dev")
int cm_dev(struct bpf_cgroup_dev_ctx *ctx)
{
	struct caelum_dev_key k = {
		.major = ctx->major,
		.minor = ctx->minor,
		.type = ctx->access_type & 0xffff,
	};
	__u32 access = ctx->access_type >> 16;
	const struct caelum_dev_rule *rule;
	__u32 mode;

	rule = bpf_map_lookup_elem(&cm_devices, &k);
	if (!rule || dev_owner_is_current(rule))
		return DEV_ALLOW;
	mode = component_mode(CAELUM_COMP_DEVICES);
	if (mode == CAELUM_MODE_OFF)
		return DEV_ALLOW;
	if (mode == CAELUM_MODE_AUDIT) {
		stat_inc(CAELUM_STAT_AUDITED);
		dev_report(&k, rule, access, CAELUM_ACT_AUDITED);
		return DEV_ALLOW;
	}
	stat_inc(CAELUM_STAT_DENIED);
	dev_report(&k, rule, access, CAELUM_ACT_DENIED);
	return DEV_DENY;
}
