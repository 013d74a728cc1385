// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cpu.h"
#include "cpu.skel.h"
#include "log.h"

struct cpu {
	struct cpu_bpf *skel;
	int link_fd;
	enum link_outcome outcome;
	int ncpu;
};

int cpu_load(const struct bpf_env *env, struct cpu **out)
{
	struct cpu *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->link_fd = -1;
	c->ncpu = libbpf_num_possible_cpus();
	err = BPF_SKEL_OPEN_LOAD(env, cpu, &c->skel);
	if (err)
		goto err;
	*out = c;
	return 0;
err:
	cpu_close(c);
	return err;
}

int cpu_attach(struct cpu *c, const struct bpf_env *env)
{
	struct bpf_program *p = c->skel->progs.cm_sched_switch;
	int fd;

	fd = link_install_tracing(env, bpf_program__name(p), bpf_program__fd(p), &c->outcome);
	if (fd < 0)
		return fd;
	if (c->link_fd >= 0)
		close(c->link_fd);
	c->link_fd = fd;
	return 0;
}

uint64_t cpu_time_ns(const struct cpu *c, uint64_t svc_cgid)
{
	uint64_t *vals, sum = 0;

	if (c->ncpu <= 0)
		return 0;
	vals = calloc((size_t)c->ncpu, sizeof(*vals));
	if (vals && !bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.cm_cpu_time), &svc_cgid, vals))
		for (int i = 0; i < c->ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

int cpu_prog_fd(const struct cpu *c, const char **name)
{
	*name = bpf_program__name(c->skel->progs.cm_sched_switch);
	return bpf_program__fd(c->skel->progs.cm_sched_switch);
}

int cpu_link_fd(const struct cpu *c)
{
	return c->link_fd;
}

const char *cpu_link_outcome(const struct cpu *c)
{
	return link_outcome_name(c->outcome);
}

void cpu_close(struct cpu *c)
{
	if (!c)
		return;
	if (c->link_fd >= 0)
		close(c->link_fd);
	cpu_bpf__destroy(c->skel);
	free(c);
}

struct bpf_object *cpu_obj(const struct cpu *c)
{
	return c->skel->obj;
}
