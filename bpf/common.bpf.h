/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps and helpers shared by every Caelum BPF object. Each object declares these maps with
 * pinning by name, so the first object loaded creates them under <bpffs>/maps and every
 * other object (and every later caelumd) reuses the very same maps.
 */
#ifndef CAELUM_COMMON_BPF_H
#define CAELUM_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "caelum/common.h"

#define CLOCK_MONOTONIC 1
#define AF_INET		2
#define AF_INET6	10
#define EEXIST		17

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CAELUM_RINGBUF_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CAELUM_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct caelum_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_SERVICES);
	__type(key, __u64);
	__type(value, struct caelum_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_services SEC(".maps");

/*
 * Not preallocated: a preallocated element is recycled at once after its timer's callback
 * deletes it, while the timer is still being freed asynchronously, and bpf_timer_init() on
 * the recycled element then fails with -EBUSY (seen on 6.18 under bursts of denials).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_AGG_KEYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct caelum_agg_key);
	__type(value, struct caelum_agg_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_agg SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&cm_stats, &idx);

	if (v)
		*v += 1;
}

/* Mode of a component; a missing or zeroed config fails closed (enforce). */
static __always_inline __u32 component_mode(__u32 comp)
{
	__u32 zero = 0;
	struct caelum_config *cfg = bpf_map_lookup_elem(&cm_config, &zero);
	__u32 mode;

	if (!cfg || comp >= CAELUM_COMP_MAX)
		return CAELUM_MODE_ENFORCE;
	mode = cfg->mode[comp];
	return mode == CAELUM_MODE_UNSET ? CAELUM_MODE_ENFORCE : mode;
}

/* The service cgroup the current task belongs to, or CAELUM_CGID_NONE. */
static __always_inline __u64 svc_of_current(void)
{
	__u32 zero = 0;
	struct caelum_config *cfg = bpf_map_lookup_elem(&cm_config, &zero);
	__u64 cgid;

	if (!cfg || !cfg->svc_level)
		return CAELUM_CGID_NONE;
	cgid = bpf_get_current_ancestor_cgroup_id(cfg->svc_level);
	if (cgid && bpf_map_lookup_elem(&cm_services, &cgid))
		return cgid;
	return CAELUM_CGID_NONE;
}

/* Fill the fields every event carries about the current task. */
static __always_inline void event_fill_task(struct caelum_event *ev)
{
	ev->time_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->svc_cgid = svc_of_current();
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->count = 1;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

static __always_inline void event_emit(const struct caelum_event *ev, __u32 lost_stat)
{
	if (bpf_ringbuf_output(&cm_events, (void *)ev, sizeof(*ev), 0))
		stat_inc(lost_stat);
}

/* Emit the follow-up for n folded occurrences, last being the latest of them. */
static __always_inline void event_followup(struct caelum_event *last, __u64 n)
{
	last->count = n > 0xffffffffULL ? 0xffffffffU : (__u32)n;
	last->flags |= CAELUM_EVF_FOLLOWUP;
	event_emit(last, CAELUM_STAT_RB_LOST_FOLLOWUP);
}

/*
 * An occurrence for an existing window: fold it while the window is open; otherwise close
 * the window (its pending count goes out as a follow-up) and open a new one with ev.
 * Returns true when ev was folded.
 */
static __always_inline bool agg_fold_or_roll(struct caelum_agg_val *val, struct caelum_event *ev,
					     struct caelum_event *prev, __u64 *pending)
{
	bool folded;

	bpf_spin_lock(&val->lock);
	folded = ev->time_ns - val->start_ns < CAELUM_AGG_WINDOW_NS;
	if (folded) {
		val->count++;
		__builtin_memcpy(&val->last, ev, sizeof(*ev));
	} else {
		*pending = val->count;
		__builtin_memcpy(prev, &val->last, sizeof(*prev));
		val->start_ns = ev->time_ns;
		val->count = 0;
		__builtin_memcpy(&val->last, ev, sizeof(*ev));
	}
	bpf_spin_unlock(&val->lock);
	return folded;
}

/*
 * Report ev: the first occurrence goes out at once, identical ones within the window are
 * folded (see include/caelum/common.h).
 */
static __always_inline void event_report(const struct caelum_agg_key *key, struct caelum_event *ev)
{
	struct caelum_event prev;
	struct caelum_agg_val *val, init = {};
	__u64 pending = 0;
	long err;

	val = bpf_map_lookup_elem(&cm_agg, key);
	if (!val) {
		init.start_ns = ev->time_ns;
		__builtin_memcpy(&init.last, ev, sizeof(*ev));
		err = bpf_map_update_elem(&cm_agg, key, &init, BPF_NOEXIST);
		if (!err)
			goto first;
		if (err != -EEXIST) {
			ev->flags |= CAELUM_EVF_UNAGGREGATED;
			stat_inc(CAELUM_STAT_AGG_FULL);
			goto first;
		}
		/* Lost the race to open the window: use the winner's. */
		val = bpf_map_lookup_elem(&cm_agg, key);
		if (!val)
			goto first;
	}
	if (agg_fold_or_roll(val, ev, &prev, &pending)) {
		stat_inc(CAELUM_STAT_FOLDED);
		return;
	}
	if (pending)
		event_followup(&prev, pending);
first:
	event_emit(ev, CAELUM_STAT_RB_LOST_FIRST);
}

#endif /* CAELUM_COMMON_BPF_H */
