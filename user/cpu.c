// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
	struct bpf_link *catch_up; /* iter/task link; NULL where iterators are refused */
	uint64_t caught_up_ns;     /* CLOCK_MONOTONIC of the last walk */
};

#define CATCH_UP_MIN_NS 10000000ULL /* a listing of many services walks once, not per service */

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
	c->catch_up = bpf_program__attach_iter(c->skel->progs.cm_cpu_catch_up, NULL);
	if (!c->catch_up)
		p_warn("cpu: task iterator refused (%s): a task's time is counted when it leaves "
		       "the CPU, so a task that never does is seen late", strerror(errno));
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

int cpu_catch_up(struct cpu *c)
{
	char buf[64];
	ssize_t n;
	int fd, err = 0;

	struct timespec ts;
	uint64_t now;

	if (!c->catch_up)
		return -EOPNOTSUPP;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (c->caught_up_ns && now - c->caught_up_ns < CATCH_UP_MIN_NS)
		return 0;
	c->caught_up_ns = now;
	fd = bpf_iter_create(bpf_link__fd(c->catch_up));
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		; /* the program prints nothing: reading drives the walk */
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
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
	bpf_link__destroy(c->catch_up);
	cpu_bpf__destroy(c->skel);
	free(c);
}

struct bpf_object *cpu_obj(const struct cpu *c)
{
	return c->skel->obj;
}
