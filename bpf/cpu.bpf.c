// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CPU accounting: on every context switch, the time the outgoing task spent on the CPU is
 * added to its service's per-CPU counter. No locks on the hot path: this CPU's slot of a
 * per-CPU map. Which service a task belongs to comes from the task storage kept by
 * bpf/tasks.bpf.c.
 */
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>
#include "tasks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

/*
 * The outgoing task's service is charged what the scheduler itself counted for it since
 * the last switch-out (se.sum_exec_runtime is brought up to date before this tracepoint).
 * Tasks outside services cost one storage lookup.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(cm_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct caelum_task *ts = bpf_task_storage_get(&cm_task_svc, prev, 0, 0);
	__u64 runtime;

	if (!ts || ts->cpu_svc == CAELUM_CGID_NONE)
		return 0;
	runtime = prev->se.sum_exec_runtime;
	if (runtime > ts->last_runtime)
		cpu_charge(ts->cpu_svc, runtime - ts->last_runtime);
	ts->last_runtime = runtime;
	return 0;
}
