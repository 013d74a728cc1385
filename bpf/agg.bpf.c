// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Aggregation flush: a syscall program caelumd runs (BPF_PROG_RUN) every few hundred
 * milliseconds. It writes the follow-up of every expired window with folded occurrences and
 * removes windows idle for CAELUM_AGG_IDLE_NS. All of it under each window's lock, in the
 * kernel: an occurrence racing the flush is either folded before it (and reported by it)
 * or finds the window closed (and is reported at once). Nothing is counted twice or lost.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct flush_state {
	__u64 now;
	__u32 flushed;
	__u32 removed;
};

static long flush_one(struct bpf_map *map, const struct caelum_agg_key *key,
		      struct caelum_agg_val *val, struct flush_state *fs)
{
	struct caelum_event last;
	__u64 pending = 0;
	bool idle;

	bpf_spin_lock(&val->lock);
	if (fs->now - val->start_ns >= CAELUM_AGG_WINDOW_NS && val->count) {
		pending = val->count;
		val->count = 0;
		__builtin_memcpy(&last, &val->last, sizeof(last));
	}
	idle = !val->count && fs->now - val->start_ns >= CAELUM_AGG_IDLE_NS;
	bpf_spin_unlock(&val->lock);
	if (pending) {
		event_followup(&last, pending);
		fs->flushed++;
	}
	if (idle && !bpf_map_delete_elem(map, key))
		fs->removed++;
	return 0;
}

SEC("syscall")
int cm_agg_flush(struct caelum_agg_flush_args *args)
{
	struct flush_state fs = { .now = bpf_ktime_get_ns() };

	bpf_for_each_map_elem(&cm_agg, flush_one, &fs, 0);
	args->flushed = fs.flushed;
	args->removed = fs.removed;
	return 0;
}
