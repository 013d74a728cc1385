/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * An enforcement path ("component"): its BPF programs and maps, and the user code that keeps
 * them equal to the registry. caelumd holds one table of them (components.c) and treats every
 * entry alike: load and attach at startup, sync on every registry change, tick on the loop's
 * timer, and iterate them for verify, status, metrics, the integrity check and close. Adding
 * a path = bpf/<name>.bpf.c + user/enforce/<name>.c (its ops) + include/caelum/<name>.h (ABI) + one
 * line in components.c.
 *
 * A component sees only what it needs (struct comp_env), never the daemon. Every op but name,
 * id and load is optional (NULL: nothing to do). Ops return 0 or -errno.
 *
 * Lifecycle (the order of bpftool/libbpf: open -> load -> fill maps -> attach -> pin):
 *   load()    open and load the BPF object, reuse pinned maps; *self = its state. A failure
 *             leaves the component unavailable with the reason in status; caelumd goes on.
 *   sync()    make its maps equal to the model, before attach (the programs never see an
 *             empty policy) and after every registry change.
 *   attach()  create or replace its pinned links in place; also the integrity check's repair.
 *   close()   free user state; pinned maps and links stay (enforcement outlives caelumd).
 */
#ifndef CAELUM_COMPONENT_H
#define CAELUM_COMPONENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct bpf_env;
struct bpf_object;
struct capacity;
struct config;
struct events;
struct registry;
struct reg_delta;
struct reg_service;
struct reg_claim;
struct reg_state;
struct svcs;

/* What a component may use: borrowed, valid from load to close. */
struct comp_env {
	const struct config *cfg;  /* modes: cfg->comp_mode[ops->id]; capacity: cfg->cap */
	const struct bpf_env *bpf; /* bpffs dirs, the cgroup root's fd, the ring buffer */
	struct events *ev;	   /* events_emit() (events.h) */
	struct svcs *svcs;	   /* services' cgroups and ids (services.h) */
	struct registry *reg;	   /* the model; registry_state(reg) is what was last synced */
	/* A reservation the daemon holds outside the registry (its self-test port, verify.c),
	 * or NULL: enforced like a registry claim. */
	const struct reg_claim *canary;
};

/* One BPF program of a component, for status, `prog show` and the integrity check. */
struct comp_prog {
	const char *name; /* program name = its link pin name under <bpffs>/links */
	int prog_fd;
	int link_fd;	  /* the link caelumd holds, or -1 */
	int attach_type;  /* enum bpf_attach_type (BPF_CGROUP_*, BPF_TRACE_RAW_TP, ...) */
	bool cgroup;	  /* attached at the cgroup root (else a tracing link) */
	const char *link; /* how the link was installed at start: "created", "replaced", ... */
};

#define COMP_MAX_PROGS 16

struct component_ops {
	const char *name; /* config key components.<name>; the label in status and metrics */
	int id;		  /* CAELUM_COMP_*: index into cfg->comp_mode and the kernel's cm_config */
	bool required;	  /* caelumd cannot run without it (ports); others degrade with a warning */
	/* Name of a component that must be loaded first (tasks before cpu), or NULL. */
	const char *needs;
	int (*load)(const struct comp_env *env, void **self);
	int (*attach)(void *self, const struct comp_env *env);
	/*
	 * Bring the maps to the model at st->rev. delta NULL: anything may have changed
	 * (startup, reload, a re-list); else only what delta names changed. A failure is
	 * recorded against that revision (applylog.c) and the next full sync retries.
	 */
	int (*sync)(void *self, const struct comp_env *env, const struct reg_state *st,
		    const struct reg_delta *delta);
	/* Periodic work on the loop's timer (sampling, scans); now_ns is CLOCK_MONOTONIC. */
	void (*tick)(void *self, const struct comp_env *env, uint64_t now_ns);
	/* Its programs (at most max) into out; returns how many. */
	size_t (*progs)(void *self, struct comp_prog *out, size_t max);
	/* Its BPF objects one by one (i = 0, 1, ...; NULL past the last): pinned maps checked. */
	struct bpf_object *(*object)(void *self, size_t i);
	/* Extra fields of its status entry (counters, sizes) into obj. */
	void (*status)(void *self, struct json_object *obj);
	/* Its part of one service's resources view (reservation and measured use) into obj. */
	void (*service_json)(void *self, const struct comp_env *env, const struct reg_service *s,
			     struct json_object *obj);
	void (*close)(void *self);
};

#endif /* CAELUM_COMPONENT_H */
