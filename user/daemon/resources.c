// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Resources in caelumd: cgroup v2 limits where the controllers are delegated, and the
 * resources view (capacity, reservations, and each component's measured use through its
 * service_json op). The resource components themselves are devices.c (GPU exclusivity),
 * tasks.c (task budgets) and cpu.c (CPU accounting), in the component table (components.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "log.h"
#include "tasks_user.h"

enum ctl_dim { CTL_CPU, CTL_MEMORY, CTL_PIDS };
static const char *const ctl_names[] = { "cpu", "memory", "pids" };

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* Controllers delegated to <cgroup_root>/caelum get enabled for the service cgroups. */
static void controllers_probe(struct daemon *d)
{
	char path[PATH_MAX + 32], avail[256];

	snprintf(path, sizeof(path), "%s/cgroup.controllers", d->svcs.base);
	read_line(path, avail, sizeof(avail));
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", d->svcs.base);
	for (int i = 0; i < 3; i++) {
		char cmd[16];
		FILE *f;

		d->controller[i] = false;
		if (!word_in(avail, ctl_names[i]))
			continue;
		snprintf(cmd, sizeof(cmd), "+%s", ctl_names[i]);
		f = fopen(path, "we");
		if (f) {
			d->controller[i] = fputs(cmd, f) >= 0 && fflush(f) == 0;
			fclose(f);
		}
	}
}

int resources_setup(struct daemon *d)
{
	controllers_probe(d);
	return resources_apply(d);
}

static int write_limit(const char *cg, const char *file, const char *val)
{
	char path[PATH_MAX + 32];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (fputs(val, f) < 0 || fflush(f))
		err = -errno;
	fclose(f);
	return err;
}

/* cpu.max, memory.max, pids.max from the reservation, where the controller is there. */
static void limits_write(struct daemon *d, struct svc_rt *rt, const struct spec_resources *r)
{
	char v[64];

	memset(rt->limit_written, 0, sizeof(rt->limit_written));
	if (d->controller[CTL_CPU]) {
		if (r->cpus_milli)
			snprintf(v, sizeof(v), "%lld 100000", (long long)r->cpus_milli * 100);
		else
			snprintf(v, sizeof(v), "max 100000");
		rt->limit_written[CTL_CPU] =
			!write_limit(rt->cgroup, "cpu.max", v) && r->cpus_milli;
	}
	if (d->controller[CTL_MEMORY]) {
		if (r->memory_mb)
			snprintf(v, sizeof(v), "%lld", (long long)r->memory_mb << 20);
		else
			snprintf(v, sizeof(v), "max");
		rt->limit_written[CTL_MEMORY] =
			!write_limit(rt->cgroup, "memory.max", v) && r->memory_mb;
	}
	if (d->controller[CTL_PIDS]) {
		if (r->tasks)
			snprintf(v, sizeof(v), "%lld", (long long)r->tasks);
		else
			snprintf(v, sizeof(v), "max");
		rt->limit_written[CTL_PIDS] = !write_limit(rt->cgroup, "pids.max", v) && r->tasks;
	}
}

int resources_apply(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);

	for (size_t i = 0; i < st->n_svcs; i++) {
		struct svc_rt *rt = svcs_find(&d->svcs, st->svcs[i].spec.name);

		if (rt && rt->cgid != CAELUM_CGID_NONE)
			limits_write(d, rt, &st->svcs[i].spec.res);
	}
	return 0;
}

/* ---- views ---- */

static struct json_object *cpus_json(int64_t milli)
{
	return json_object_new_double((double)milli / 1000.0);
}

static const char *enforcement(struct daemon *d, const char *dim)
{
	bool kernel_tasks =
		daemon_tasks(d) && d->cfg.comp_mode[CAELUM_COMP_TASKS] == CAELUM_MODE_ENFORCE;
	bool kernel_dev =
		daemon_devices(d) && d->cfg.comp_mode[CAELUM_COMP_DEVICES] == CAELUM_MODE_ENFORCE;

	if (!strcmp(dim, "cpus"))
		return d->controller[CTL_CPU] ? "controller (cpu.max)"
					      : "not enforced: controller unavailable";
	if (!strcmp(dim, "memory_mb"))
		return d->controller[CTL_MEMORY] ? "controller (memory.max)"
						 : "not enforced: controller unavailable";
	if (!strcmp(dim, "tasks"))
		return kernel_tasks		 ? (d->controller[CTL_PIDS]
							    ? "kernel (BPF budget) and controller (pids.max)"
							    : "kernel (BPF budget)")
		       : d->controller[CTL_PIDS] ? "controller (pids.max)"
						 : "not enforced";
	return kernel_dev ? "kernel (BPF cgroup/dev)" : "admitted only";
}

const char *resources_tasks_note(struct daemon *d, bool *kills)
{
	bool kernel_tasks =
		daemon_tasks(d) && d->cfg.comp_mode[CAELUM_COMP_TASKS] == CAELUM_MODE_ENFORCE;

	*kills = false;
	if (d->controller[CTL_PIDS])
		return "pids.max: a fork or thread past the budget fails with EAGAIN and the "
		       "process lives";
	if (!kernel_tasks)
		return "not enforced on this host: no delegated pids controller and no BPF budget";
	*kills = true;
	return "BPF budget only (no delegated cgroup v2 pids controller): a task past the budget "
	       "is sent SIGKILL, which kills its whole process";
}

/* A bandwidth dimension in Mbit/s: capacity (null when unknown), allocated, free. */
static struct json_object *bw_dim_json(struct daemon *d, int64_t cap_kbit, bool detected,
				       int64_t allocated_kbit)
{
	struct json_object *o = json_object_new_object();
	bool known = cap_kbit >= 0;
	bool kernel = daemon_bandwidth(d) &&
		      d->cfg.comp_mode[CAELUM_COMP_BANDWIDTH] == CAELUM_MODE_ENFORCE;

	json_object_object_add(o, "capacity", known ? mbit_json(cap_kbit) : NULL);
	json_object_object_add(o, "allocated", mbit_json(allocated_kbit));
	json_object_object_add(o, "free", known ? mbit_json(cap_kbit - allocated_kbit) : NULL);
	json_object_object_add(o, "detected", json_object_new_boolean(detected));
	json_object_object_add(
		o, "enforcement",
		json_object_new_string(kernel ? "kernel (BPF cgroup_skb)" : "admitted only"));
	return o;
}

static void totals(const struct reg_state *st, int64_t *cpus, int64_t *mem, int64_t *gpus,
		   int64_t *tasks)
{
	*cpus = *mem = *gpus = *tasks = 0;
	for (size_t i = 0; i < st->n_svcs; i++) {
		*cpus += st->svcs[i].spec.res.cpus_milli;
		*mem += st->svcs[i].spec.res.memory_mb;
		*gpus += resources_gpus(&st->svcs[i].spec.res);
		*tasks += st->svcs[i].spec.res.tasks;
	}
}

static struct json_object *dim_json(struct daemon *d, const char *dim, bool cpus, int64_t cap,
				    int64_t reserved, int64_t allocated, bool detected)
{
	struct json_object *o = json_object_new_object();
	int64_t alloc = cap - reserved;

	json_object_object_add(o, "capacity", cpus ? cpus_json(cap) : json_object_new_int64(cap));
	json_object_object_add(o, "reserved",
			       cpus ? cpus_json(reserved) : json_object_new_int64(reserved));
	json_object_object_add(o, "allocatable",
			       cpus ? cpus_json(alloc) : json_object_new_int64(alloc));
	json_object_object_add(o, "allocated",
			       cpus ? cpus_json(allocated) : json_object_new_int64(allocated));
	json_object_object_add(o, "free",
			       cpus ? cpus_json(alloc - allocated)
				    : json_object_new_int64(alloc - allocated));
	json_object_object_add(o, "detected", json_object_new_boolean(detected));
	json_object_object_add(o, "enforcement", json_object_new_string(enforcement(d, dim)));
	return o;
}

static struct json_object *gpus_list(struct daemon *d)
{
	const struct capacity *cap = &d->cfg.cap;
	struct json_object *arr = json_object_new_array();

	for (size_t g = 0; g < cap->n_gpus; g++) {
		struct json_object *o = json_object_new_object(), *devs = json_object_new_array();
		const char *owner = registry_gpu_owner(registry_state(d->reg), cap->gpus[g].id);

		for (size_t i = 0; i < cap->gpus[g].n_dev; i++) {
			char buf[GPU_PATH_MAX + 32];

			snprintf(buf, sizeof(buf), "%s (%u:%u)", cap->gpus[g].dev[i].path,
				 cap->gpus[g].dev[i].major, cap->gpus[g].dev[i].minor);
			json_object_array_add(devs, json_object_new_string(buf));
		}
		json_object_object_add(o, "id", json_object_new_string(cap->gpus[g].id));
		json_object_object_add(o, "devices", devs);
		json_object_object_add(o, "service", owner ? json_object_new_string(owner) : NULL);
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *dimensions_json(struct daemon *d)
{
	const struct capacity *cap = &d->cfg.cap;
	struct json_object *o = json_object_new_object(), *g, *t;
	int64_t cpus, mem, gpus, tasks;

	totals(registry_state(d->reg), &cpus, &mem, &gpus, &tasks);
	json_object_object_add(o, "cpus",
			       dim_json(d, "cpus", true, cap->cpus_milli, cap->reserved_cpus_milli,
					cpus, cap->cpus_detected));
	json_object_object_add(o, "memory_mb",
			       dim_json(d, "memory_mb", false, cap->memory_mb,
					cap->reserved_memory_mb, mem, cap->memory_detected));
	g = dim_json(d, "gpus", false, (int64_t)cap->n_gpus, 0, gpus, false);
	json_object_object_add(g, "gpus", gpus_list(d));
	json_object_object_add(o, "gpus", g);
	t = json_object_new_object();
	json_object_object_add(t, "budgeted", json_object_new_int64(tasks));
	json_object_object_add(t, "enforcement", json_object_new_string(enforcement(d, "tasks")));
	json_object_object_add(o, "tasks", t);
	{
		const struct reg_state *st = registry_state(d->reg);
		int64_t eg = 0, in = 0;

		for (size_t i = 0; i < st->n_svcs; i++) {
			eg += st->svcs[i].spec.res.egress_kbit;
			in += st->svcs[i].spec.res.ingress_kbit;
		}
		json_object_object_add(o, "egress_mbit",
				       bw_dim_json(d, cap->egress_kbit, cap->egress_detected, eg));
		json_object_object_add(
			o, "ingress_mbit",
			bw_dim_json(d, cap->ingress_kbit, cap->ingress_detected, in));
	}
	return o;
}

struct json_object *resources_service_json(struct daemon *d, const struct reg_service *s)
{
	const struct reg_state *st = registry_state(d->reg);
	struct json_object *o = json_object_new_object(), *gpus = json_object_new_array();
	struct comp_env env;

	for (size_t i = 0; i < st->n_gpus; i++)
		if (!strcmp(st->gpus[i].service, s->spec.name))
			json_object_array_add(gpus, json_object_new_string(st->gpus[i].gpu));
	json_object_object_add(o, "name", json_object_new_string(s->spec.name));
	json_object_object_add(o, "reservation", resources_to_json(&s->spec.res));
	json_object_object_add(o, "gpus", gpus);
	/* Measured use: each component adds what it counts (live_tasks, cpu_time_ns, ...). */
	daemon_comp_env(d, &env);
	components_service_json(&d->comps, &env, s, o);
	return o;
}

/* memory.current of a cgroup in bytes; -errno (no memory controller there: -ENOENT). */
static int64_t memory_current(const char *cg)
{
	char path[PATH_MAX], buf[32], *end;
	long long v;
	int err;

	snprintf(path, sizeof(path), "%s/memory.current", cg);
	err = read_line(path, buf, sizeof(buf));
	if (err)
		return err;
	errno = 0;
	v = strtoll(buf, &end, 10);
	return !buf[0] || *end || errno || v < 0 ? -EINVAL : v;
}

/* A service's measured CPUs (milli) as the components report it ("cpu_usage"); -1: none. */
static int64_t cpu_used_milli(struct daemon *d, const struct reg_service *s)
{
	struct json_object *o = json_object_new_object(), *v;
	struct comp_env env;
	int64_t milli = -1;

	daemon_comp_env(d, &env);
	components_service_json(&d->comps, &env, s, o);
	if (json_object_object_get_ex(o, "cpu_usage", &v) && v)
		milli = (int64_t)(json_object_get_double(v) * 1000.0 + 0.5);
	json_object_put(o);
	return milli;
}

void resources_host_use(struct daemon *d, struct host_use *u)
{
	*u = (struct host_use){ .cpus_used_milli = -1, .memory_used_bytes = -1 };
	for (size_t i = 0; i < d->svcs.n; i++) {
		const struct svc_rt *rt = &d->svcs.v[i];
		const struct reg_service *s = registry_service(d->reg, rt->name);
		int64_t cpu, mem;

		if (!s || !rt->running || !rt->cgroup)
			continue;
		u->running++;
		u->cpus_alloc_milli += s->spec.res.cpus_milli;
		u->memory_alloc_mb += s->spec.res.memory_mb;
		cpu = cpu_used_milli(d, s);
		if (cpu >= 0)
			u->cpus_used_milli =
				(u->cpus_used_milli < 0 ? 0 : u->cpus_used_milli) + cpu;
		mem = memory_current(rt->cgroup);
		if (mem >= 0)
			u->memory_used_bytes =
				(u->memory_used_bytes < 0 ? 0 : u->memory_used_bytes) + mem;
	}
	if (!u->running) /* nothing runs: nothing used */
		u->cpus_used_milli = u->memory_used_bytes = 0;
}

struct json_object *resources_json(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	struct json_object *o = json_object_new_object(), *svcs = json_object_new_array();

	json_object_object_add(o, "dimensions", dimensions_json(d));
	for (size_t i = 0; i < st->n_svcs; i++)
		json_object_array_add(svcs, resources_service_json(d, &st->svcs[i]));
	json_object_object_add(o, "services", svcs);
	return o;
}

struct json_object *resources_enforcement_json(struct daemon *d)
{
	static const char *const dims[] = { "cpus", "memory_mb", "tasks", "gpus" };
	struct json_object *o = json_object_new_object();
	bool bw = daemon_bandwidth(d) &&
		  d->cfg.comp_mode[CAELUM_COMP_BANDWIDTH] == CAELUM_MODE_ENFORCE;

	for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
		json_object_object_add(o, dims[i], json_object_new_string(enforcement(d, dims[i])));
	json_object_object_add(
		o, "bandwidth",
		json_object_new_string(bw ? "kernel (BPF cgroup_skb)" : "admitted only"));
	return o;
}
