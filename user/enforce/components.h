/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The table of enforcement paths (component.h) and what caelumd does with all of them at
 * once: start, sync, tick, status, the integrity check's lists, close. Knows no component
 * by name: the table in components.c is the one place that lists them.
 */
#ifndef CAELUM_COMPONENTS_H
#define CAELUM_COMPONENTS_H

#include "caelum/common.h"
#include "component.h"

struct comp_slot {
	const struct component_ops *ops; /* NULL: no component has this id */
	void *self;			 /* NULL: not loaded (error says why) */
	char error[256];
};

struct components {
	struct comp_slot slot[CAELUM_COMP_MAX]; /* by CAELUM_COMP_* id */
};

/*
 * Startup, in the order libbpf wants (load -> fill maps -> attach): components_load opens
 * and loads every component in table order, the caller syncs them (components_sync with
 * delta NULL, after its own preparation: cgroups, config map), then components_attach_all.
 * A component that fails either step is closed and marked unavailable with a warning.
 * 0, or the -errno of a required component (caelumd then exits).
 */
int components_load(struct components *c, const struct comp_env *env);
int components_attach_all(struct components *c, const struct comp_env *env);
/* Sync every loaded component to st (delta NULL: full). 0 or the first -errno (all run). */
int components_sync(struct components *c, const struct comp_env *env, const struct reg_state *st,
		    const struct reg_delta *delta);
void components_tick(struct components *c, const struct comp_env *env, uint64_t now_ns);
/* Re-attach one component (the integrity check's repair). 0 or -errno (-ENOENT: not loaded). */
int components_attach(struct components *c, const struct comp_env *env, int id);
/* Status entries {name, mode, attached, enforcing, programs[], error?} appended to arr. */
void components_status(struct components *c, const struct comp_env *env, struct json_object *arr);
/* Every component's part of service s's resources view, added to obj. */
void components_service_json(struct components *c, const struct comp_env *env,
			     const struct reg_service *s, struct json_object *obj);
/* The state of component id, NULL when not loaded; its error ("" when none). */
void *components_self(const struct components *c, int id);
const char *components_error(const struct components *c, int id);
/*
 * Calls fn for every program of every loaded component (owner = its id), then for every
 * BPF object (prog NULL, obj set): the integrity check walks links and pinned maps.
 */
typedef void (*comp_visit_fn)(void *ctx, int id, const struct comp_prog *prog,
			      struct bpf_object *obj);
void components_visit(struct components *c, comp_visit_fn fn, void *ctx);
void components_close(struct components *c);

#endif /* CAELUM_COMPONENTS_H */
