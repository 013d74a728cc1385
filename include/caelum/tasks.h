/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Task budgets ABI (bpf/tasks.bpf.c <-> user/enforce/tasks.c), and the task storage the
 * CPU accounting shares with them (its own ABI: caelum/cpu.h).
 *
 * Every task (thread) in a service's cgroup subtree is counted once, in the service it was
 * counted for; that service is remembered in the task's local storage (cm_task_svc), and
 * every change of it is a compare-and-swap, so the fork, exit and migration hooks and the
 * rebuild iterator never count a task twice or forget one.
 *
 *   cm_task_live   (HASH, kernel-owned)   service cgroup id -> live tasks
 *   cm_task_budget (HASH, caelumd-owned)  service cgroup id -> budget; no entry = unlimited
 *   cm_task_svc    (TASK_STORAGE, pinned) task -> struct caelum_task (bpf/tasks.bpf.h)
 *
 * A fork that makes live > budget: event task_budget_exceeded; in enforce mode the new
 * task gets SIGKILL from the kernel before it runs. SIGKILL is process-wide: a thread over
 * budget takes its whole process down, as the kernel offers no per-thread kill.
 */
#ifndef CAELUM_TASKS_H
#define CAELUM_TASKS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

/*
 * Local storage of a task. svc_cgid: the service its live count is in (CAELUM_CGID_NONE:
 * none; cleared at exit). cpu_svc: the service its CPU time is charged to (kept until the
 * task is freed, so that its last slice, which ends after exit, is charged too).
 * last_runtime: se.sum_exec_runtime already charged.
 */
struct caelum_task {
	__u64 svc_cgid;
	__u64 cpu_svc;
	__u64 last_runtime;
};

struct caelum_task_live {
	__s64 live;
};

#endif /* CAELUM_TASKS_H */
