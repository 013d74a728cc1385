/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and reader for bpf/cpu.bpf.c: on-CPU time per service. */
#ifndef CAELUM_CPU_USER_H
#define CAELUM_CPU_USER_H

#include <stdint.h>

#include "bpfpin.h"

struct cpu;

int cpu_load(const struct bpf_env *env, struct cpu **out);
int cpu_attach(struct cpu *c, const struct bpf_env *env);
/*
 * Charges the time of tasks still on a CPU to their services (one walk of all tasks by the
 * iter/task program; ~1 tick of lag remains; at most one walk per 10 ms, calls in between
 * return 0 at once). 0, -EOPNOTSUPP without an iterator, -errno.
 */
int cpu_catch_up(struct cpu *c);
/* Nanoseconds the service's tasks spent on CPU since counting began (all CPUs). */
uint64_t cpu_time_ns(const struct cpu *c, uint64_t svc_cgid);
void cpu_close(struct cpu *c);

#endif /* CAELUM_CPU_USER_H */
