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
#define AF_INET 2
#define AF_INET6 10
#define EEXIST 17

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_AGG_KEYS);
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

/*
 * Runs once per window for every active aggregation entry: reports what was folded, and
 * deletes the entry after a quiet window so that the next occurrence is reported at once.
 */
static int agg_flush(void *map, struct caelum_agg_key *key, struct caelum_agg_val *val)
{
	struct caelum_event ev;
	__u64 n;

	n = __sync_lock_test_and_set(&val->count, 0);
	if (n) {
		__builtin_memcpy(&ev, &val->last, sizeof(ev));
		ev.count = n > 0xffffffffULL ? 0xffffffffU : (__u32)n;
		ev.flags |= CAELUM_EVF_FOLLOWUP;
		event_emit(&ev, CAELUM_STAT_RB_LOST_FOLLOWUP);
		bpf_timer_start(&val->timer, CAELUM_AGG_WINDOW_NS, 0);
		return 0;
	}
	if (__sync_val_compare_and_swap(&val->count, 0, CAELUM_AGG_CLOSED) == 0)
		bpf_map_delete_elem(map, key);
	else
		bpf_timer_start(&val->timer, CAELUM_AGG_WINDOW_NS, 0);
	return 0;
}

/* Fold into a live entry; false when there is none (or it is closing). */
static __always_inline bool agg_fold(const struct caelum_agg_key *key, const struct caelum_event *ev)
{
	struct caelum_agg_val *val = bpf_map_lookup_elem(&cm_agg, key);

	if (!val)
		return false;
	if (__sync_fetch_and_add(&val->count, 1) & CAELUM_AGG_CLOSED)
		return false;
	__builtin_memcpy(&val->last, ev, sizeof(*ev));
	stat_inc(CAELUM_STAT_FOLDED);
	return true;
}

/* Open a window for key: 0, or the map update's error (-EEXIST: someone else did). */
static __always_inline long agg_open(const struct caelum_agg_key *key, const struct caelum_event *ev)
{
	struct caelum_agg_val init = {};
	struct caelum_agg_val *val;
	long err;

	__builtin_memcpy(&init.last, ev, sizeof(*ev));
	err = bpf_map_update_elem(&cm_agg, key, &init, BPF_NOEXIST);
	if (err)
		return err;
	val = bpf_map_lookup_elem(&cm_agg, key);
	if (!val)
		return 0;
	if (bpf_timer_init(&val->timer, &cm_agg, CLOCK_MONOTONIC) ||
	    bpf_timer_set_callback(&val->timer, agg_flush) ||
	    bpf_timer_start(&val->timer, CAELUM_AGG_WINDOW_NS, 0)) {
		/* Without a timer nothing would ever flush this entry: drop it. */
		bpf_map_delete_elem(&cm_agg, key);
		stat_inc(CAELUM_STAT_TIMER_FAIL);
	}
	return 0;
}

/*
 * Report ev: the first occurrence goes out at once, identical ones within the window are
 * folded into the entry and reported by agg_flush().
 */
static __always_inline void event_report(const struct caelum_agg_key *key, struct caelum_event *ev)
{
	long err;

	if (agg_fold(key, ev))
		return;
	err = agg_open(key, ev);
	if (err == -EEXIST) {
		/* Lost the race to open the window: fold into the winner's entry, unless that
		 * entry is closing, in which case this is a first occurrence again. */
		if (agg_fold(key, ev))
			return;
	} else if (err) {
		ev->flags |= CAELUM_EVF_UNAGGREGATED;
		stat_inc(CAELUM_STAT_AGG_FULL);
	}
	event_emit(ev, CAELUM_STAT_RB_LOST_FIRST);
}

#endif /* CAELUM_COMMON_BPF_H */
