// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The component table and the loops over it. To add an enforcement path: implement
 * struct component_ops in user/enforce/<name>.c and add one line to table[] below.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"
#include "bpfpin.h"
#include "components.h"
#include "config.h"
#include "log.h"
#include "registry.h"

extern const struct component_ops ports_component;
extern const struct component_ops devices_component;
extern const struct component_ops tasks_component;
extern const struct component_ops cpu_component;
extern const struct component_ops databases_component;
extern const struct component_ops bandwidth_component;

/* In load order (a component's `needs` comes earlier); status lists them in this order. */
static const struct component_ops *const table[] = {
	&ports_component, &devices_component,	&tasks_component,
	&cpu_component,	  &databases_component, &bandwidth_component,
};

#define N_TABLE (sizeof(table) / sizeof(table[0]))

static struct comp_slot *slot_of(struct components *c, const char *name)
{
	for (size_t i = 0; i < N_TABLE; i++)
		if (!strcmp(table[i]->name, name))
			return &c->slot[table[i]->id];
	return NULL;
}

/* The component stops here: closed, and why it is unavailable is kept for status. */
static int give_up(struct comp_slot *s, const char *step, int err)
{
	if (s->self && s->ops->close)
		s->ops->close(s->self);
	s->self = NULL;
	if (!s->error[0])
		snprintf(s->error, sizeof(s->error), "unavailable: %s failed: %s", step,
			 strerror(-err));
	if (s->ops->required)
		p_err("failed to start component '%s': %s", s->ops->name, s->error);
	else
		p_warn("component '%s' %s; continuing without it", s->ops->name, s->error);
	return s->ops->required ? err : 0;
}

int components_load(struct components *c, const struct comp_env *env)
{
	for (size_t i = 0; i < N_TABLE; i++) {
		struct comp_slot *s = &c->slot[table[i]->id];
		struct comp_slot *dep = table[i]->needs ? slot_of(c, table[i]->needs) : NULL;
		int err;

		s->ops = table[i];
		s->error[0] = '\0';
		if (table[i]->needs && (!dep || !dep->self)) {
			snprintf(s->error, sizeof(s->error), "unavailable: needs the %s component",
				 table[i]->needs);
			err = give_up(s, "load", -ENOENT);
		} else {
			err = table[i]->load(env, &s->self);
			if (err)
				err = give_up(s, "load", err);
		}
		if (err)
			return err;
	}
	return 0;
}

int components_attach_all(struct components *c, const struct comp_env *env)
{
	for (size_t i = 0; i < N_TABLE; i++) {
		struct comp_slot *s = &c->slot[table[i]->id];
		int err;

		struct comp_slot *dep = table[i]->needs ? slot_of(c, table[i]->needs) : NULL;

		if (!s->self || !s->ops->attach)
			continue;
		if (table[i]->needs && (!dep || !dep->self)) {
			snprintf(s->error, sizeof(s->error), "unavailable: needs the %s component",
				 table[i]->needs);
			err = -ENOENT;
		} else {
			err = s->ops->attach(s->self, env);
		}
		if (err && (err = give_up(s, "attach", err)))
			return err;
	}
	return 0;
}

int components_sync(struct components *c, const struct comp_env *env, const struct reg_state *st,
		    const struct reg_delta *delta)
{
	int first = 0;

	for (size_t i = 0; i < N_TABLE; i++) {
		struct comp_slot *s = &c->slot[table[i]->id];
		int err;

		if (!s->self || !s->ops->sync)
			continue;
		err = s->ops->sync(s->self, env, st, delta);
		if (err) {
			p_err("failed to sync component '%s' to revision %llu: %s", s->ops->name,
			      (unsigned long long)st->rev, strerror(-err));
			if (!first)
				first = err;
		}
	}
	return first;
}

void components_tick(struct components *c, const struct comp_env *env, uint64_t now_ns)
{
	for (size_t i = 0; i < N_TABLE; i++) {
		struct comp_slot *s = &c->slot[table[i]->id];

		if (s->self && s->ops->tick)
			s->ops->tick(s->self, env, now_ns);
	}
}

int components_attach(struct components *c, const struct comp_env *env, int id)
{
	struct comp_slot *s = &c->slot[id];

	if (id < 0 || id >= CAELUM_COMP_MAX || !s->self)
		return -ENOENT;
	return s->ops->attach ? s->ops->attach(s->self, env) : 0;
}

/* One program: what the kernel says about it, and whether it is attached now. */
static struct json_object *prog_json(const struct comp_env *env, const struct comp_prog *p)
{
	struct json_object *o = bpfinfo_prog(p->prog_fd);
	const char *type = libbpf_bpf_attach_type_str(p->attach_type);
	bool attached = p->cgroup ? bpfinfo_attached(env->bpf->cg_fd, p->attach_type,
						     bpfinfo_prog_id(p->prog_fd))
				  : bpfinfo_link_alive(p->link_fd);

	if (!o)
		o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(p->name));
	json_object_object_add(o, "attach_type", json_object_new_string(type ? type : "unknown"));
	/* Asked of the kernel, not remembered: is this very program attached there? */
	json_object_object_add(o, "attached", json_object_new_boolean(attached));
	json_object_object_add(o, "link", bpfinfo_link(p->link_fd));
	json_object_object_add(o, "link_at_start",
			       json_object_new_string(p->link ? p->link : "none"));
	return o;
}

static struct json_object *status_one(struct comp_slot *s, const struct comp_env *env)
{
	struct json_object *o = json_object_new_object(), *progs = json_object_new_array();
	struct comp_prog p[COMP_MAX_PROGS];
	int mode = env->cfg->comp_mode[s->ops->id];
	size_t n = s->self && s->ops->progs ? s->ops->progs(s->self, p, COMP_MAX_PROGS) : 0;
	bool all = n > 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *j = prog_json(env, &p[i]), *a;

		if (!json_object_object_get_ex(j, "attached", &a) || !json_object_get_boolean(a))
			all = false;
		json_object_array_add(progs, j);
	}
	json_object_object_add(o, "name", json_object_new_string(s->ops->name));
	json_object_object_add(o, "mode", json_object_new_string(mode_name(mode)));
	json_object_object_add(o, "attached", json_object_new_boolean(all));
	json_object_object_add(o, "enforcing",
			       json_object_new_boolean(all && mode == CAELUM_MODE_ENFORCE));
	json_object_object_add(o, "programs", progs);
	if (s->self && s->ops->status)
		s->ops->status(s->self, o);
	if (s->error[0])
		json_object_object_add(o, "error", json_object_new_string(s->error));
	return o;
}

void components_status(struct components *c, const struct comp_env *env, struct json_object *arr)
{
	for (size_t i = 0; i < N_TABLE; i++)
		json_object_array_add(arr, status_one(&c->slot[table[i]->id], env));
}

void components_service_json(struct components *c, const struct comp_env *env,
			     const struct reg_service *s, struct json_object *obj)
{
	for (size_t i = 0; i < N_TABLE; i++) {
		struct comp_slot *sl = &c->slot[table[i]->id];

		if (sl->ops->service_json)
			sl->ops->service_json(sl->self, env, s, obj);
	}
}

void *components_self(const struct components *c, int id)
{
	return id >= 0 && id < CAELUM_COMP_MAX ? c->slot[id].self : NULL;
}

const char *components_error(const struct components *c, int id)
{
	return id >= 0 && id < CAELUM_COMP_MAX ? c->slot[id].error : "";
}

void components_visit(struct components *c, comp_visit_fn fn, void *ctx)
{
	for (size_t i = 0; i < N_TABLE; i++) {
		struct comp_slot *s = &c->slot[table[i]->id];
		struct comp_prog p[COMP_MAX_PROGS];
		struct bpf_object *obj;
		size_t n;

		if (!s->self)
			continue;
		n = s->ops->progs ? s->ops->progs(s->self, p, COMP_MAX_PROGS) : 0;
		for (size_t k = 0; k < n; k++)
			fn(ctx, s->ops->id, &p[k], NULL);
		for (size_t k = 0; s->ops->object && (obj = s->ops->object(s->self, k)); k++)
			fn(ctx, s->ops->id, NULL, obj);
	}
}

void components_close(struct components *c)
{
	for (size_t i = N_TABLE; i-- > 0;) {
		struct comp_slot *s = &c->slot[table[i]->id];

		if (s->self && s->ops->close)
			s->ops->close(s->self);
		s->self = NULL;
	}
}
