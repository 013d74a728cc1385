// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Resource components of caelumd: GPU exclusivity (devices), task budgets (tasks), CPU
 * accounting (cpu); cgroup v2 limits where the controllers are delegated; the resources
 * view. Each component is optional: a kernel that cannot load it gets a clear warning and
 * caelumd goes on without it, saying so in status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "bandwidth.h"
#include "bpfinfo.h"
#include "cpu.h"
#include "daemon.h"
#include "devices.h"
#include "log.h"
#include "tasks.h"

#define SCAN_INTERVAL_NS (10ULL * 1000000000ULL)
#define SAMPLE_INTERVAL_NS 1000000000ULL

enum ctl_dim { CTL_CPU, CTL_MEMORY, CTL_PIDS };
static const char *const ctl_names[] = { "cpu", "memory", "pids" };

static void comp_unavailable(struct daemon *d, int comp, const char *what, int err)
{
	snprintf(d->comp_error[comp], sizeof(d->comp_error[comp]), "unavailable: %s: %s", what,
		 strerror(-err));
	p_warn("component '%s' %s; continuing without it", component_name(comp),
	       d->comp_error[comp]);
}

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

static void load_devices(struct daemon *d)
{
	int err = devices_load(&d->env, &d->devices);

	if (!err)
		err = devices_attach(d->devices, &d->env);
	if (err) {
		devices_close(d->devices);
		d->devices = NULL;
		comp_unavailable(d, CAELUM_COMP_DEVICES, "cgroup/dev program", err);
	}
}

static void load_tasks(struct daemon *d)
{
	int err = tasks_load(&d->env, &d->tasks);

	if (!err)
		err = tasks_attach(d->tasks, &d->env);
	if (!err)
		err = tasks_scan(d->tasks);
	if (err) {
		tasks_close(d->tasks);
		d->tasks = NULL;
		comp_unavailable(d, CAELUM_COMP_TASKS, "sched_process_fork/exit programs", err);
	}
}

static void load_cpu(struct daemon *d)
{
	int err;

	if (!d->tasks) {
		snprintf(d->comp_error[CAELUM_COMP_CPU], sizeof(d->comp_error[0]),
			 "unavailable: needs the tasks component");
		p_warn("component 'cpu' %s", d->comp_error[CAELUM_COMP_CPU]);
		return;
	}
	err = cpu_load(&d->env, &d->cpu);
	if (!err)
		err = cpu_attach(d->cpu, &d->env);
	if (err) {
		cpu_close(d->cpu);
		d->cpu = NULL;
		comp_unavailable(d, CAELUM_COMP_CPU, "sched_switch program", err);
	}
}

int resources_setup(struct daemon *d)
{
	controllers_probe(d);
	load_devices(d);
	load_tasks(d);
	load_cpu(d);
	d->last_scan_ns = time_now_ns();
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
		rt->limit_written[CTL_CPU] = !write_limit(rt->cgroup, "cpu.max", v) && r->cpus_milli;
	}
	if (d->controller[CTL_MEMORY]) {
		if (r->memory_mb)
			snprintf(v, sizeof(v), "%lld", (long long)r->memory_mb << 20);
		else
			snprintf(v, sizeof(v), "max");
		rt->limit_written[CTL_MEMORY] = !write_limit(rt->cgroup, "memory.max", v) && r->memory_mb;
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
	int err = 0;

	if (d->devices)
		err = devices_sync(d->devices, &d->cfg.cap, st, svcs_ident, &d->svcs);
	if (d->tasks && !err)
		err = tasks_sync_budgets(d->tasks, st, svcs_ident, &d->svcs);
	for (size_t i = 0; i < st->n_svcs; i++) {
		struct svc_rt *rt = svcs_find(&d->svcs, st->svcs[i].spec.name);

		if (rt && rt->cgid != CAELUM_CGID_NONE)
			limits_write(d, rt, &st->svcs[i].spec.res);
	}
	return err;
}

/* ---- CPU usage over the window ---- */

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

static void emit_over(struct daemon *d, struct svc_rt *rt, int64_t usage, int64_t reserved,
		      uint64_t now)
{
	struct json_object *e = event_new(d->ev, "cpu_over_allocation", "detected");
	char u[32], r[32];

	milli_fmt(usage, u, sizeof(u));
	milli_fmt(reserved, r, sizeof(r));
	json_object_object_add(e, "service", json_object_new_string(rt->name));
	json_object_object_add(e, "cgroup_id", json_object_new_uint64(rt->cgid));
	json_object_object_add(e, "cpu_usage", json_object_new_double(usage / 1000.0));
	json_object_object_add(e, "cpu_reserved", json_object_new_double(reserved / 1000.0));
	json_object_object_add(e, "window_s", json_object_new_int64(d->cfg.cap.cpu_window_s));
	json_object_object_add(e, "over_for_s",
			       json_object_new_int64((int64_t)((now - rt->over_since_ns) / 1000000000ULL)));
	events_emit(d->ev, e);
	p_info("service '%s' uses %s CPUs, reserved %s", rt->name, u, r);
}

static void cpu_check(struct daemon *d, struct svc_rt *rt, int64_t reserved, uint64_t now)
{
	int64_t usage = cpu_usage_milli(rt, d->cfg.cap.cpu_window_s);

	if (!reserved || usage < 0 || usage <= reserved) {
		rt->over_since_ns = 0;
		rt->over_reported = false;
		return;
	}
	if (!rt->over_since_ns)
		rt->over_since_ns = now;
	if (!rt->over_reported &&
	    now - rt->over_since_ns >= (uint64_t)d->cfg.cap.cpu_grace_s * 1000000000ULL &&
	    d->cfg.comp_mode[CAELUM_COMP_CPU] != CAELUM_MODE_OFF) {
		emit_over(d, rt, usage, reserved, now);
		rt->over_reported = true;
	}
}

void resources_tick(struct daemon *d, uint64_t now)
{
	const struct reg_state *st = registry_state(d->reg);

	if (d->tasks && now - d->last_scan_ns >= SCAN_INTERVAL_NS) {
		d->last_scan_ns = now;
		tasks_scan(d->tasks);
	}
	if (!d->cpu || now - d->last_sample_ns < SAMPLE_INTERVAL_NS)
		return;
	d->last_sample_ns = now;
	cpu_catch_up(d->cpu);
	for (size_t i = 0; i < st->n_svcs; i++) {
		struct svc_rt *rt = svcs_find(&d->svcs, st->svcs[i].spec.name);

		if (!rt || rt->cgid == CAELUM_CGID_NONE)
			continue;
		cpu_sample(rt, now, cpu_time_ns(d->cpu, rt->cgid));
		cpu_check(d, rt, st->svcs[i].spec.res.cpus_milli, now);
	}
}

/* ---- views ---- */

static struct json_object *cpus_json(int64_t milli)
{
	return json_object_new_double((double)milli / 1000.0);
}

static const char *enforcement(struct daemon *d, const char *dim)
{
	bool kernel_tasks = d->tasks && d->cfg.comp_mode[CAELUM_COMP_TASKS] == CAELUM_MODE_ENFORCE;
	bool kernel_dev = d->devices && d->cfg.comp_mode[CAELUM_COMP_DEVICES] == CAELUM_MODE_ENFORCE;

	if (!strcmp(dim, "cpus"))
		return d->controller[CTL_CPU] ? "controller (cpu.max)"
					      : "not enforced: controller unavailable";
	if (!strcmp(dim, "memory_mb"))
		return d->controller[CTL_MEMORY] ? "controller (memory.max)"
						 : "not enforced: controller unavailable";
	if (!strcmp(dim, "tasks"))
		return kernel_tasks ? (d->controller[CTL_PIDS] ? "kernel (BPF budget) and controller (pids.max)"
							       : "kernel (BPF budget)")
				    : d->controller[CTL_PIDS] ? "controller (pids.max)"
							      : "not enforced";
	return kernel_dev ? "kernel (BPF cgroup/dev)" : "admitted only";
}

const char *resources_tasks_note(struct daemon *d, bool *kills)
{
	bool kernel_tasks = d->tasks && d->cfg.comp_mode[CAELUM_COMP_TASKS] == CAELUM_MODE_ENFORCE;

	*kills = false;
	if (d->controller[CTL_PIDS])
		return "pids.max: a fork or thread past the budget fails with EAGAIN and the process lives";
	if (!kernel_tasks)
		return "not enforced on this host: no delegated pids controller and no BPF budget";
	*kills = true;
	return "BPF budget only (no delegated cgroup v2 pids controller): a task past the budget is sent SIGKILL, which kills its whole process";
}

/* A bandwidth dimension in Mbit/s: capacity (null when unknown), allocated, free. */
static struct json_object *bw_dim_json(struct daemon *d, int64_t cap_kbit, bool detected,
				       int64_t allocated_kbit)
{
	struct json_object *o = json_object_new_object();
	bool known = cap_kbit >= 0;
	bool kernel = d->bw && d->cfg.comp_mode[CAELUM_COMP_BANDWIDTH] == CAELUM_MODE_ENFORCE;

	json_object_object_add(o, "capacity", known ? mbit_json(cap_kbit) : NULL);
	json_object_object_add(o, "allocated", mbit_json(allocated_kbit));
	json_object_object_add(o, "free", known ? mbit_json(cap_kbit - allocated_kbit) : NULL);
	json_object_object_add(o, "detected", json_object_new_boolean(detected));
	json_object_object_add(o, "enforcement",
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
	json_object_object_add(o, "allocatable", cpus ? cpus_json(alloc) : json_object_new_int64(alloc));
	json_object_object_add(o, "allocated",
			       cpus ? cpus_json(allocated) : json_object_new_int64(allocated));
	json_object_object_add(o, "free", cpus ? cpus_json(alloc - allocated)
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
	json_object_object_add(o, "cpus", dim_json(d, "cpus", true, cap->cpus_milli,
						   cap->reserved_cpus_milli, cpus, cap->cpus_detected));
	json_object_object_add(o, "memory_mb",
			       dim_json(d, "memory_mb", false, cap->memory_mb, cap->reserved_memory_mb,
					mem, cap->memory_detected));
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
		json_object_object_add(o, "ingress_mbit",
				       bw_dim_json(d, cap->ingress_kbit, cap->ingress_detected, in));
	}
	return o;
}

struct json_object *resources_service_json(struct daemon *d, const struct reg_service *s)
{
	struct svc_rt *rt = svcs_find(&d->svcs, s->spec.name);
	const struct reg_state *st = registry_state(d->reg);
	struct json_object *o = json_object_new_object(), *gpus = json_object_new_array();
	int64_t usage = rt ? cpu_usage_milli(rt, d->cfg.cap.cpu_window_s) : -1;
	bool counted = rt && rt->cgid != CAELUM_CGID_NONE;

	if (d->cpu && counted)
		cpu_catch_up(d->cpu);
	for (size_t i = 0; i < st->n_gpus; i++)
		if (!strcmp(st->gpus[i].service, s->spec.name))
			json_object_array_add(gpus, json_object_new_string(st->gpus[i].gpu));
	json_object_object_add(o, "name", json_object_new_string(s->spec.name));
	json_object_object_add(o, "reservation", resources_to_json(&s->spec.res));
	json_object_object_add(o, "gpus", gpus);
	json_object_object_add(o, "live_tasks", d->tasks && counted
							 ? json_object_new_int64(tasks_live(d->tasks, rt->cgid))
							 : NULL);
	json_object_object_add(o, "cpu_time_ns", d->cpu && counted
							  ? json_object_new_uint64(cpu_time_ns(d->cpu, rt->cgid))
							  : NULL);
	json_object_object_add(o, "cpu_usage", usage >= 0 ? cpus_json(usage) : NULL);
	json_object_object_add(o, "cpu_window_s", json_object_new_int64(d->cfg.cap.cpu_window_s));
	json_object_object_add(o, "cpu_over_reservation",
			       json_object_new_boolean(rt && rt->over_since_ns));
	if (d->bw) /* issue 15: component table entry */
		bandwidth_component.service_json(d->bw, &d->bw_env, s, o);
	else
		json_object_object_add(o, "bandwidth", NULL);
	return o;
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

static struct json_object *prog_entry(struct daemon *d, int fd, const char *name, int attach_type,
				      int link_fd, const char *outcome, bool cgroup)
{
	struct json_object *p = bpfinfo_prog(fd);

	if (!p)
		p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	json_object_object_add(p, "attached",
			       json_object_new_boolean(cgroup ? bpfinfo_attached(d->env.cg_fd, attach_type,
										 bpfinfo_prog_id(fd))
							      : bpfinfo_link_alive(link_fd)));
	json_object_object_add(p, "link", bpfinfo_link(link_fd));
	json_object_object_add(p, "link_at_start", json_object_new_string(outcome));
	return p;
}

static void component_add(struct daemon *d, struct json_object *arr, int comp,
			  struct json_object *progs)
{
	struct json_object *o = json_object_new_object(), *a;
	int mode = d->cfg.comp_mode[comp];
	bool all = progs && json_object_array_length(progs) > 0;

	for (size_t i = 0; progs && i < json_object_array_length(progs); i++)
		if (!json_object_object_get_ex(json_object_array_get_idx(progs, i), "attached", &a) ||
		    !json_object_get_boolean(a))
			all = false;
	json_object_object_add(o, "name", json_object_new_string(component_name(comp)));
	json_object_object_add(o, "mode", json_object_new_string(mode_name(mode)));
	json_object_object_add(o, "attached", json_object_new_boolean(all));
	json_object_object_add(o, "enforcing", json_object_new_boolean(all && mode == CAELUM_MODE_ENFORCE));
	json_object_object_add(o, "programs", progs ? progs : json_object_new_array());
	if (d->comp_error[comp][0])
		json_object_object_add(o, "error", json_object_new_string(d->comp_error[comp]));
	json_object_array_add(arr, o);
}

/*
 * issue 15: the status entry of a component from its ops (programs from progs(), extra
 * fields from status()), as components.c will build it for every entry of the table.
 */
static void component_ops_add(struct daemon *d, struct json_object *arr,
			      const struct component_ops *ops, void *self)
{
	struct comp_prog progs[COMP_MAX_PROGS];
	struct json_object *p = NULL, *o;
	size_t n;

	if (self) {
		p = json_object_new_array();
		n = ops->progs(self, progs, COMP_MAX_PROGS);
		for (size_t i = 0; i < n; i++) {
			char path[PATH_MAX + 64];
			int link_fd;

			snprintf(path, sizeof(path), "%s/%s", d->env.links, progs[i].name);
			link_fd = bpf_obj_get(path);
			json_object_array_add(p, prog_entry(d, progs[i].prog_fd, progs[i].name,
							    progs[i].attach_type, link_fd,
							    progs[i].link, progs[i].attach_type != 0));
			if (link_fd >= 0)
				close(link_fd);
		}
	}
	component_add(d, arr, ops->id, p);
	o = json_object_array_get_idx(arr, json_object_array_length(arr) - 1);
	if (self && ops->status)
		ops->status(self, o);
}

void resources_status(struct daemon *d, struct json_object *components)
{
	struct json_object *p;
	const char *name;
	int type, fd;

	p = NULL;
	if (d->devices) {
		p = json_object_new_array();
		fd = devices_prog_fd(d->devices, &name, &type);
		json_object_array_add(p, prog_entry(d, fd, name, type, devices_link_fd(d->devices),
						    devices_link_outcome(d->devices), true));
	}
	component_add(d, components, CAELUM_COMP_DEVICES, p);
	p = NULL;
	if (d->tasks) {
		p = json_object_new_array();
		for (int i = 0; i < TASKS_NPROGS; i++) {
			fd = tasks_prog_fd(d->tasks, i, &name);
			json_object_array_add(p, prog_entry(d, fd, name, 0, tasks_link_fd(d->tasks, i),
							    tasks_link_outcome(d->tasks, i), false));
		}
	}
	component_add(d, components, CAELUM_COMP_TASKS, p);
	p = NULL;
	if (d->cpu) {
		p = json_object_new_array();
		fd = cpu_prog_fd(d->cpu, &name);
		json_object_array_add(p, prog_entry(d, fd, name, 0, cpu_link_fd(d->cpu),
						    cpu_link_outcome(d->cpu), false));
	}
	component_add(d, components, CAELUM_COMP_CPU, p);
	component_ops_add(d, components, &bandwidth_component, d->bw); /* issue 15 */
}

struct json_object *resources_enforcement_json(struct daemon *d)
{
	static const char *const dims[] = { "cpus", "memory_mb", "tasks", "gpus" };
	struct json_object *o = json_object_new_object();
	bool bw = d->bw && d->cfg.comp_mode[CAELUM_COMP_BANDWIDTH] == CAELUM_MODE_ENFORCE;

	for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
		json_object_object_add(o, dims[i], json_object_new_string(enforcement(d, dims[i])));
	json_object_object_add(o, "bandwidth", json_object_new_string(bw ? "kernel (BPF cgroup_skb)"
									 : "admitted only"));
	return o;
}

void resources_close(struct daemon *d)
{
	cpu_close(d->cpu);
	tasks_close(d->tasks);
	devices_close(d->devices);
}
