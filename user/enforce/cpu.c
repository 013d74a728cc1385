// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caelum/cpu.h"
#include "capacity.h"
#include "comp_bpf.h"
#include "config.h"
#include "cpu_user.h"
#include "cpu.skel.h"
#include "events.h"
#include "log.h"
#include "registry.h"
#include "services.h"

struct cpu {
	struct comp_bpf bpf; /* first: the shared ops take the state (comp_bpf.h) */
	struct cpu_bpf *skel;
	int ncpu;
	struct bpf_link *catch_up; /* iter/task link; NULL where iterators are refused */
	uint64_t caught_up_ns;	   /* CLOCK_MONOTONIC of the last walk */
	uint64_t sampled_ns;	   /* the tick's last sample of every service */
};

#define SAMPLE_INTERVAL_NS 1000000000ULL

#define CATCH_UP_MIN_NS 10000000ULL /* a listing of many services walks once, not per service */

int cpu_load(const struct bpf_env *env, struct cpu **out)
{
	struct cpu *c;
	int err = COMP_BPF_NEW(env, cpu, out);

	if (err)
		return err;
	c = *out;
	c->ncpu = libbpf_num_possible_cpus();
	comp_bpf_add(&c->bpf, c->skel->progs.cm_sched_switch, BPF_TRACE_RAW_TP, true);
	c->catch_up = bpf_program__attach_iter(c->skel->progs.cm_cpu_catch_up, NULL);
	if (!c->catch_up)
		p_warn("cpu: task iterator refused (%s): a task's time is counted when it leaves "
		       "the CPU, so a task that never does is seen late",
		       strerror(errno));
	return 0;
}

int cpu_attach(struct cpu *c, const struct bpf_env *env)
{
	return comp_bpf_attach(&c->bpf, env, 0);
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
	caelum_cpu_ns *vals; /* one per possible CPU (caelum/cpu.h) */
	uint64_t sum = 0;

	if (c->ncpu <= 0)
		return 0;
	vals = calloc((size_t)c->ncpu, sizeof(*vals));
	if (vals && !bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.cm_cpu_time), &svc_cgid, vals))
		for (int i = 0; i < c->ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

void cpu_close(struct cpu *c)
{
	if (!c)
		return;
	comp_bpf_close(&c->bpf);
	bpf_link__destroy(c->catch_up);
	cpu_bpf__destroy(c->skel);
	free(c);
}

/* ---- usage over the window (the tick samples, the view and the check read it) ---- */

static void cpu_sample(struct svc_rt *rt, uint64_t now, uint64_t ns)
{
	struct cpu_window *w = rt->cpu;
	unsigned int idx;

	if (!w) {
		if (!ns) {
			rt->cpu_zero_at_ns = now; /* never ran: no history to keep */
			return;
		}
		w = rt->cpu = calloc(1, sizeof(*w));
		if (!w)
			return;
		if (rt->cpu_zero_at_ns) { /* the last sample, which found nothing yet */
			w->t[0] = rt->cpu_zero_at_ns;
			w->n = 1;
		}
	}
	if (w->n == CPU_SAMPLES) {
		w->head = (w->head + 1) % CPU_SAMPLES;
		w->n--;
	}
	idx = (w->head + w->n) % CPU_SAMPLES;
	w->t[idx] = now;
	w->ns[idx] = ns;
	w->n++;
}

/*
 * Average CPUs used (milli) over the last window_s seconds: from the newest sample at least
 * a window old (the oldest while the history is shorter) to the newest. -1 before two.
 */
static int64_t cpu_usage_milli(const struct svc_rt *rt, int64_t window_s)
{
	uint64_t window = (uint64_t)window_s * 1000000000ULL, dt, dns;
	const struct cpu_window *w = rt->cpu;
	unsigned int last, first;

	if (!w || w->n < 2)
		return -1;
	last = (w->head + w->n - 1) % CPU_SAMPLES;
	first = w->head;
	for (unsigned int i = 0; i + 1 < w->n; i++) {
		unsigned int k = (w->head + i) % CPU_SAMPLES;

		if (w->t[last] - w->t[k] >= window)
			first = k;
	}
	dt = w->t[last] - w->t[first];
	dns = w->ns[last] >= w->ns[first] ? w->ns[last] - w->ns[first] : 0;
	return dt ? (int64_t)(dns * 1000 / dt) : -1;
}

static void emit_over(const struct comp_env *env, struct svc_rt *rt, int64_t usage,
		      int64_t reserved, uint64_t now)
{
	struct json_object *e = event_new(env->ev, "cpu_over_allocation", "detected");
	char u[32], r[32];

	milli_fmt(usage, u, sizeof(u));
	milli_fmt(reserved, r, sizeof(r));
	json_object_object_add(e, "service", json_object_new_string(rt->name));
	json_object_object_add(e, "cgroup_id", json_object_new_uint64(rt->cgid));
	json_object_object_add(e, "cpu_usage", json_object_new_double(usage / 1000.0));
	json_object_object_add(e, "cpu_reserved", json_object_new_double(reserved / 1000.0));
	json_object_object_add(e, "window_s", json_object_new_int64(env->cfg->cap.cpu_window_s));
	json_object_object_add(
		e, "over_for_s",
		json_object_new_int64((int64_t)((now - rt->over_since_ns) / 1000000000ULL)));
	events_emit(env->ev, e);
	p_info("service '%s' uses %s CPUs, reserved %s", rt->name, u, r);
}

static void cpu_check(const struct comp_env *env, struct svc_rt *rt, int64_t reserved, uint64_t now)
{
	int64_t usage = cpu_usage_milli(rt, env->cfg->cap.cpu_window_s);

	if (!reserved || usage < 0 || usage <= reserved) {
		rt->over_since_ns = 0;
		rt->over_reported = false;
		return;
	}
	if (!rt->over_since_ns)
		rt->over_since_ns = now;
	if (!rt->over_reported &&
	    now - rt->over_since_ns >= (uint64_t)env->cfg->cap.cpu_grace_s * 1000000000ULL &&
	    env->cfg->comp_mode[CAELUM_COMP_CPU] != CAELUM_MODE_OFF) {
		emit_over(env, rt, usage, reserved, now);
		rt->over_reported = true;
	}
}

/* ---- the component (component.h) ---- */

static int comp_load(const struct comp_env *env, void **self)
{
	return cpu_load(env->bpf, (struct cpu **)self);
}

static int comp_attach(void *self, const struct comp_env *env)
{
	return cpu_attach(self, env->bpf);
}

/* Once a second: every service's CPU time into its window, and the over-use check. */
static void comp_tick(void *self, const struct comp_env *env, uint64_t now)
{
	const struct reg_state *st = registry_state(env->reg);
	struct cpu *c = self;

	if (now - c->sampled_ns < SAMPLE_INTERVAL_NS)
		return;
	c->sampled_ns = now;
	cpu_catch_up(c);
	for (size_t i = 0; i < st->n_svcs; i++) {
		struct svc_rt *rt = svcs_find(env->svcs, st->svcs[i].spec.name);

		if (!rt || rt->cgid == CAELUM_CGID_NONE)
			continue;
		cpu_sample(rt, now, cpu_time_ns(c, rt->cgid));
		cpu_check(env, rt, st->svcs[i].spec.res.cpus_milli, now);
	}
}

static struct json_object *cpus_json(int64_t milli)
{
	return json_object_new_double((double)milli / 1000.0);
}

/* cpu_time_ns (up to the last tick), cpu_usage over the window; null where not counted. */
static void comp_service_json(void *self, const struct comp_env *env, const struct reg_service *s,
			      struct json_object *o)
{
	struct svc_rt *rt = svcs_find(env->svcs, s->spec.name);
	int64_t usage = rt ? cpu_usage_milli(rt, env->cfg->cap.cpu_window_s) : -1;
	bool counted = self && rt && rt->cgid != CAELUM_CGID_NONE;

	if (counted)
		cpu_catch_up(self);
	json_object_object_add(o, "cpu_time_ns",
			       counted ? json_object_new_uint64(cpu_time_ns(self, rt->cgid))
				       : NULL);
	json_object_object_add(o, "cpu_usage", usage >= 0 ? cpus_json(usage) : NULL);
	json_object_object_add(o, "cpu_window_s",
			       json_object_new_int64(env->cfg->cap.cpu_window_s));
	json_object_object_add(o, "cpu_over_reservation",
			       json_object_new_boolean(rt && rt->over_since_ns));
}

static void comp_close(void *self)
{
	cpu_close(self);
}

const struct component_ops cpu_component = {
	.name = "cpu",
	.id = CAELUM_COMP_CPU,
	.needs = "tasks", /* which service a task belongs to comes from its task storage */
	.load = comp_load,
	.attach = comp_attach,
	.tick = comp_tick,
	.progs = comp_bpf_progs,
	.object = comp_bpf_object,
	.service_json = comp_service_json,
	.close = comp_close,
};
