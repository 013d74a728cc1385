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
int cpu_prog_fd(const struct cpu *c, const char **name);
int cpu_link_fd(const struct cpu *c);
const char *cpu_link_outcome(const struct cpu *c);
void cpu_close(struct cpu *c);

struct bpf_object;
/* The loaded object (its pinned maps are checked by the integrity check). */
struct bpf_object *cpu_obj(const struct cpu *c);

#endif /* CAELUM_CPU_USER_H */
