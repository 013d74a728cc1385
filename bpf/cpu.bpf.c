// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CPU accounting: on every context switch, the time the outgoing task spent on this CPU is
 * added to its service's per-CPU counter. No locks on the hot path: per-CPU state only.
 * Which service a task belongs to comes from the task storage kept by bpf/tasks.bpf.c.
 */
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>
#include "tasks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct caelum_cpu_cur);
} cm_cpu_cur SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CAELUM_MAX_SERVICES);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_cpu_time SEC(".maps");

static __always_inline void cpu_charge(__u64 svc, __u64 ns)
{
	__u64 *acc = bpf_map_lookup_elem(&cm_cpu_time, &svc), zero = 0;

	if (!acc) {
		bpf_map_update_elem(&cm_cpu_time, &svc, &zero, BPF_NOEXIST);
		acc = bpf_map_lookup_elem(&cm_cpu_time, &svc);
		if (!acc)
			return;
	}
	*acc += ns; /* this CPU's slot: nobody else writes it */
}

SEC("tp_btf/sched_switch")
int BPF_PROG(cm_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0;
	struct caelum_cpu_cur *cur = bpf_map_lookup_elem(&cm_cpu_cur, &zero);
	struct caelum_task *ts;
	__u64 now = bpf_ktime_get_ns();

	if (!cur)
		return 0;
	if (cur->svc_cgid != CAELUM_CGID_NONE && cur->start_ns && now > cur->start_ns)
		cpu_charge(cur->svc_cgid, now - cur->start_ns);
	ts = bpf_task_storage_get(&cm_task_svc, next, 0, 0);
	cur->svc_cgid = ts ? ts->svc_cgid : CAELUM_CGID_NONE;
	cur->start_ns = now;
	return 0;
}
