/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CPU accounting ABI (bpf/cpu.bpf.c <-> user/enforce/cpu.c).
 *
 *   cm_cpu_time  (PERCPU_HASH, kernel-written)  service cgroup id (__u64) -> on-CPU time in
 *                nanoseconds (__u64 per CPU; the service's total is the sum over CPUs)
 *
 * Charged from the scheduler's own se.sum_exec_runtime (no clock read of ours): at every
 * switch-out (tp_btf/sched_switch) and by the iterator cm_cpu_catch_up (iter/task), which
 * caelumd runs before it reads the counters so that a task still on a CPU is counted up to
 * its last tick. Which service a task's time goes to, and how much of it was already
 * charged, is the task's local storage shared with the task budgets (struct caelum_task in
 * caelum/tasks.h: cpu_svc, last_runtime); both paths advance last_runtime by
 * compare-and-swap and charge only what they advanced, so each nanosecond is charged once.
 */
#ifndef CAELUM_CPU_H
#define CAELUM_CPU_H

#include "caelum/tasks.h"

/* A service's cm_cpu_time value on one CPU: nanoseconds. */
typedef __u64 caelum_cpu_ns;

#endif /* CAELUM_CPU_H */
