/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Task budgets and CPU accounting ABI (bpf/tasks.bpf.c, bpf/cpu.bpf.c <-> user/tasks.c,
 * user/cpu.c).
 *
 * Every task (thread) in a service's cgroup subtree is counted once, in the service it was
 * counted for; that service is remembered in the task's local storage (cm_task_svc), and
 * every change of it is a compare-and-swap, so the fork, exit and migration hooks and the
 * rebuild iterator never count a task twice or forget one.
 *
 *   cm_task_live   (HASH, kernel-owned)   service cgroup id -> live tasks
 *   cm_task_budget (HASH, caelumd-owned)  service cgroup id -> budget; no entry = unlimited
 *   cm_cpu_time    (PERCPU_HASH)          service cgroup id -> on-CPU nanoseconds
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

/* Local storage of a task: the service it is counted in (CAELUM_CGID_NONE: none). */
struct caelum_task {
	__u64 svc_cgid;
};

struct caelum_task_live {
	__s64 live;
};

/* Per-CPU state of the CPU accountant: who is on this CPU since when. */
struct caelum_cpu_cur {
	__u64 start_ns;
	__u64 svc_cgid;
};

#endif /* CAELUM_TASKS_H */
