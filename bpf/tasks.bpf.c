// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Task budgets: live tasks per service subtree, counted at fork, exit and cgroup
 * migration (tp_btf), rebuilt by an iterator over every task; a fork past the budget is
 * reported and, in enforce mode, killed. See include/caelum/tasks.h.
 */
#include "common.bpf.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "tasks.bpf.h"

#define SIGKILL	   9
#define PF_EXITING 0x00000004

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* kfunc (6.13+). Without it the object does not load and caelumd runs without the tasks
 * component, saying so. */
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_SERVICES);
	__type(key, __u64);
	__type(value, struct caelum_task_live);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_task_live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_SERVICES);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_task_budget SEC(".maps");

/* The registered service whose subtree holds task t, or CAELUM_CGID_NONE. */
static __always_inline __u64 svc_of_task(struct task_struct *t)
{
	__u32 zero = 0;
	struct caelum_config *cfg = bpf_map_lookup_elem(&cm_config, &zero);
	struct cgroup *cg, *anc = NULL;
	__u32 svc_level;
	__u64 cgid;
	int level;

	if (!cfg || !cfg->svc_level)
		return CAELUM_CGID_NONE;
	/* Out of the CO-RE expression below: cm_config is ours, not the kernel's. */
	svc_level = cfg->svc_level;
	cg = BPF_CORE_READ(t, cgroups, dfl_cgrp);
	level = BPF_CORE_READ(cg, level);
	if (!cg || level < (int)svc_level)
		return CAELUM_CGID_NONE;
	if (bpf_core_read(&anc, sizeof(anc), &cg->ancestors[svc_level]) || !anc)
		return CAELUM_CGID_NONE;
	cgid = BPF_CORE_READ(anc, kn, id);
	return bpf_map_lookup_elem(&cm_services, &cgid) ? cgid : CAELUM_CGID_NONE;
}

static __always_inline __s64 live_add(__u64 svc, __s64 delta)
{
	struct caelum_task_live *v = bpf_map_lookup_elem(&cm_task_live, &svc), init = {};

	if (!v) {
		bpf_map_update_elem(&cm_task_live, &svc, &init, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&cm_task_live, &svc);
		if (!v)
			return 0;
	}
	return __sync_fetch_and_add(&v->live, delta) + delta;
}

/* Count t in svc instead of wherever it was counted; true when this call moved it. */
static __always_inline bool task_recount(struct task_struct *t, __u64 svc, bool create)
{
	struct caelum_task *ts;
	__u64 old;

	ts = bpf_task_storage_get(&cm_task_svc, t, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!ts) {
		if (create)
			stat_inc(CAELUM_STAT_TASK_STORAGE);
		return false;
	}
	old = ts->svc_cgid;
	if (old == svc || __sync_val_compare_and_swap(&ts->svc_cgid, old, svc) != old)
		return false;
	if (old != CAELUM_CGID_NONE)
		live_add(old, -1);
	if (svc != CAELUM_CGID_NONE) {
		live_add(svc, 1);
		/* CPU time is charged to svc from now on (bpf/cpu.bpf.c). */
		ts->last_runtime = BPF_CORE_READ(t, se.sum_exec_runtime);
		ts->cpu_svc = svc;
	}
	return true;
}

static __always_inline void budget_report(__u64 svc, __s64 live, __u64 budget, bool killed,
					  __u32 action)
{
	struct caelum_event ev = {};
	struct caelum_agg_key key = {};

	event_fill_task(&ev);
	ev.svc_cgid = svc;
	ev.type = CAELUM_EV_TASK_BUDGET;
	ev.action = action;
	ev.task.live = live > 0 ? (__u64)live : 0;
	ev.task.budget = budget;
	ev.task.killed = killed;
	key.cgroup_id = svc;
	key.type = CAELUM_EV_TASK_BUDGET;
	event_report(&key, &ev);
}

static __always_inline void budget_check(struct task_struct *child, __u64 svc)
{
	struct caelum_task_live *v = bpf_map_lookup_elem(&cm_task_live, &svc);
	__u64 *budget = bpf_map_lookup_elem(&cm_task_budget, &svc);
	__u32 mode;
	bool kill;

	if (!v || !budget || !*budget || v->live <= (__s64)*budget)
		return;
	mode = component_mode(CAELUM_COMP_TASKS);
	if (mode == CAELUM_MODE_OFF)
		return;
	kill = mode == CAELUM_MODE_ENFORCE;
	if (kill)
		bpf_send_signal_task(child, SIGKILL, PIDTYPE_PID, 0);
	stat_inc(kill ? CAELUM_STAT_DENIED : CAELUM_STAT_AUDITED);
	budget_report(svc, v->live, *budget, kill, kill ? CAELUM_ACT_DENIED : CAELUM_ACT_AUDITED);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(cm_task_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 svc = svc_of_task(child);

	if (svc != CAELUM_CGID_NONE && task_recount(child, svc, true))
		budget_check(child, svc);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(cm_task_exit, struct task_struct *p)
{
	task_recount(p, CAELUM_CGID_NONE, false);
	return 0;
}

/* Fires once per migration, for the moved task (the leader of a moved process). */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(cm_task_move, struct cgroup *dst, const char *path, struct task_struct *task)
{
	/* v1 hierarchies migrate too: only the default (cgroup2) one matters here. */
	if (BPF_CORE_READ(dst, root) != BPF_CORE_READ(task, cgroups, dfl_cgrp, root))
		return 0;
	task_recount(task, svc_of_task(task), true);
	return 0;
}

/* Walk every task and count what the hooks did not see (tasks older than the programs,
 * threads moved with their process). Idempotent: caelumd runs it at start and then
 * periodically. */
SEC("iter/task")
int cm_task_scan(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	__u64 svc;

	if (!t || (t->flags & PF_EXITING))
		return 0;
	svc = svc_of_task(t);
	task_recount(t, svc, svc != CAELUM_CGID_NONE);
	return 0;
}
