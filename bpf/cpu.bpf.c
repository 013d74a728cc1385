// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * CPU accounting: on every context switch, the time the outgoing task spent on the CPU is
 * added to its service's per-CPU counter; a task iterator run by caelumd before it reads the
 * counters charges the time of tasks still on a CPU (a lone spinner on an idle CPU is never
 * switched out, and its time would otherwise arrive in one lump, seconds late). Each
 * nanosecond is charged once: both paths advance the task's last_runtime by compare-and-swap
 * and charge only what they advanced. Which service a task belongs to comes from the task
 * storage kept by bpf/tasks.bpf.c.
 */
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>
#include "caelum/cpu.h"
#include "tasks.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CAELUM_MAX_SERVICES);
	__type(key, __u64);
	__type(value, caelum_cpu_ns);
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
	/* This CPU's slot; atomic because the iterator can be preempted by a switch here. */
	__sync_fetch_and_add(acc, ns);
}

/* Charges @ts's service with runtime - last_runtime, if this caller advances last_runtime. */
static __always_inline void charge_to(struct caelum_task *ts, __u64 runtime)
{
	__u64 last = ts->last_runtime;

	if (runtime <= last)
		return;
	if (__sync_val_compare_and_swap(&ts->last_runtime, last, runtime) != last)
		return; /* the other path charged it meanwhile; the rest comes next time */
	cpu_charge(ts->cpu_svc, runtime - last);
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

	if (!ts || ts->cpu_svc == CAELUM_CGID_NONE)
		return 0;
	charge_to(ts, prev->se.sum_exec_runtime);
	return 0;
}

/*
 * Catch-up, run from user space (one read of the iterator) before the counters are read:
 * tasks on a CPU now have se.sum_exec_runtime current to their last scheduler tick
 * (kernel/sched/fair.c update_curr()), so the counters lag a running task by one tick.
 */
SEC("iter/task")
int cm_cpu_catch_up(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct caelum_task *ts;

	if (!task)
		return 0;
	ts = bpf_task_storage_get(&cm_task_svc, task, 0, 0);
	if (!ts || ts->cpu_svc == CAELUM_CGID_NONE)
		return 0;
	charge_to(ts, task->se.sum_exec_runtime);
	return 0;
}
