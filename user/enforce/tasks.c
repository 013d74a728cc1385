// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caelum/tasks.h"
#include "comp_bpf.h"
#include "log.h"
#include "registry.h"
#include "services.h"
#include "tasks_user.h"
#include "tasks.skel.h"

struct tasks {
	struct comp_bpf bpf; /* first: the shared ops take the state (comp_bpf.h) */
	struct tasks_bpf *skel;
	uint64_t scanned_ns; /* the tick's last rescan */
};

#define SCAN_INTERVAL_NS (10ULL * 1000000000ULL)

int tasks_load(const struct bpf_env *env, struct tasks **out)
{
	struct tasks *t;
	int err = COMP_BPF_NEW(env, tasks, out);

	if (err) {
		p_err("'tasks' needs tp_btf and the kfunc bpf_send_signal_task (Linux >= 6.13)");
		return err;
	}
	t = *out;
	comp_bpf_add(&t->bpf, t->skel->progs.cm_task_fork, BPF_TRACE_RAW_TP, true);
	comp_bpf_add(&t->bpf, t->skel->progs.cm_task_exit, BPF_TRACE_RAW_TP, true);
	comp_bpf_add(&t->bpf, t->skel->progs.cm_task_move, BPF_TRACE_RAW_TP, true);
	return 0;
}

int tasks_attach(struct tasks *t, const struct bpf_env *env)
{
	return comp_bpf_attach(&t->bpf, env, 0);
}

int tasks_scan(struct tasks *t)
{
	struct bpf_link *link;
	char buf[256];
	int fd, err = 0;

	link = bpf_program__attach_iter(t->skel->progs.cm_task_scan, NULL);
	if (!link)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	/* Reading drives the iterator over every task; it prints nothing. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
out:
	bpf_link__destroy(link);
	return err;
}

/* Budgets of services that are gone: remove. */
static void budgets_prune(int fd, const struct reg_state *st, svc_ident_fn ident, void *ctx)
{
	__u64 key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		bool keep = false;

		key = next;
		prev = &key;
		for (size_t i = 0; i < st->n_svcs && !keep; i++) {
			uint64_t cgid;
			uint16_t level;

			ident(ctx, st->svcs[i].spec.name, &cgid, &level);
			keep = cgid == key && st->svcs[i].spec.res.tasks;
		}
		if (!keep) {
			bpf_map_delete_elem(fd, &key);
			prev = NULL;
		}
	}
}

int tasks_sync_budgets(struct tasks *t, const struct reg_state *st, svc_ident_fn ident, void *ctx)
{
	int fd = bpf_map__fd(t->skel->maps.cm_task_budget);

	for (size_t i = 0; i < st->n_svcs; i++) {
		__u64 budget = (__u64)st->svcs[i].spec.res.tasks;
		uint64_t cgid;
		uint16_t level;

		ident(ctx, st->svcs[i].spec.name, &cgid, &level);
		if (!budget || cgid == CAELUM_CGID_NONE)
			continue;
		if (bpf_map_update_elem(fd, &cgid, &budget, BPF_ANY)) {
			p_err("failed to set task budget of '%s': %s", st->svcs[i].spec.name,
			      strerror(errno));
			return -errno;
		}
	}
	budgets_prune(fd, st, ident, ctx);
	return 0;
}

int64_t tasks_live(const struct tasks *t, uint64_t svc_cgid)
{
	struct caelum_task_live v;

	if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.cm_task_live), &svc_cgid, &v))
		return 0;
	return v.live > 0 ? v.live : 0;
}

int tasks_budget_fd(const struct tasks *t)
{
	return bpf_map__fd(t->skel->maps.cm_task_budget);
}

void tasks_close(struct tasks *t)
{
	if (!t)
		return;
	comp_bpf_close(&t->bpf);
	tasks_bpf__destroy(t->skel);
	free(t);
}

/* ---- the component (component.h) ---- */

static int comp_load(const struct comp_env *env, void **self)
{
	return tasks_load(env->bpf, (struct tasks **)self);
}

/* Attach, then count the tasks already running (forks before the attach were not seen). */
static int comp_attach(void *self, const struct comp_env *env)
{
	int err = tasks_attach(self, env->bpf);

	return err ? err : tasks_scan(self);
}

static int comp_sync(void *self, const struct comp_env *env, const struct reg_state *st,
		     const struct reg_delta *delta)
{
	if (delta && !delta->services)
		return 0; /* budgets come from service specs only */
	return tasks_sync_budgets(self, st, svcs_ident, env->svcs);
}

/* Every 10 s: recount from the running tasks (a missed exit never drifts for long). */
static void comp_tick(void *self, const struct comp_env *env, uint64_t now)
{
	struct tasks *t = self;

	(void)env;
	if (!t->scanned_ns)
		t->scanned_ns = now;
	if (now - t->scanned_ns < SCAN_INTERVAL_NS)
		return;
	t->scanned_ns = now;
	tasks_scan(t);
}

static void comp_service_json(void *self, const struct comp_env *env, const struct reg_service *s,
			      struct json_object *o)
{
	struct svc_rt *rt = svcs_find(env->svcs, s->spec.name);
	bool counted = self && rt && rt->cgid != CAELUM_CGID_NONE;

	json_object_object_add(o, "live_tasks",
			       counted ? json_object_new_int64(tasks_live(self, rt->cgid)) : NULL);
}

static void comp_close(void *self)
{
	tasks_close(self);
}

const struct component_ops tasks_component = {
	.name = "tasks",
	.id = CAELUM_COMP_TASKS,
	.load = comp_load,
	.attach = comp_attach,
	.sync = comp_sync,
	.tick = comp_tick,
	.progs = comp_bpf_progs,
	.object = comp_bpf_object,
	.service_json = comp_service_json,
	.close = comp_close,
};
