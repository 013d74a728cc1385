// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumd's core, between the registry and the components: apply the model to the kernel
 * (all of it, or the slots a delta names), reload config and services_dir, the one change
 * path (daemon_on_registry_change, the registry's watcher), and the kernel's loss counters
 * turned into events. Called by the composition root (caelumd.c) and the registry's watch;
 * it calls down only (components, resources, databases, verify, policyguard, status).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "cgfollow_user.h"
#include "daemon.h"
#include "databases.h"
#include "fsutil.h"
#include "log.h"
#include "netns_user.h"
#include "verify.h"

/* Kernel counters of events that never reached the ring buffer. */
static const struct {
	int stat;
	const char *reason;
} kernel_losses[] = {
	{ CAELUM_STAT_RB_LOST_FIRST, "ringbuf_full" },
	{ CAELUM_STAT_RB_LOST_FOLLOWUP, "ringbuf_full_followup" },
};
#define N_LOSSES (sizeof(kernel_losses) / sizeof(kernel_losses[0]))

static int config_map_write(struct daemon *d)
{
	struct caelum_config c = { .svc_level = d->svcs.level };
	__u32 zero = 0;

	for (int i = 0; i < CAELUM_COMP_MAX; i++)
		c.mode[i] = (__u32)d->cfg.comp_mode[i];
	if (bpf_map_update_elem(ports_map_fd(d->ports, "cm_config"), &zero, &c, BPF_ANY)) {
		p_err("failed to update cm_config: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void emit_policy_applied(struct daemon *d, const char *why)
{
	struct json_object *e = event_new(d->ev, "policy_applied", "changed");

	json_object_object_add(e, "reason", json_object_new_string(why));
	json_object_object_add(e, "registry_revision",
			       json_object_new_uint64(d->policy.registry_rev));
	json_object_object_add(e, "entries", json_object_new_uint64(d->policy.entries));
	json_object_object_add(e, "reserved", json_object_new_uint64(d->policy.reserved));
	json_object_object_add(e, "managed", json_object_new_uint64(d->policy.managed));
	json_object_object_add(
		e, "mode", json_object_new_string(mode_name(d->cfg.comp_mode[CAELUM_COMP_PORTS])));
	json_object_object_add(e, "apply_ns", json_object_new_uint64(d->policy.apply_ns));
	events_emit(d->ev, e);
}

static void policy_note(struct daemon *d, uint64_t rev, uint64_t t0)
{
	size_t reserved, managed;

	ports_table_counts(d->ports, &reserved, &managed);
	d->policy = (struct policy_info){
		.registry_rev = rev,
		.entries = ports_table_entries(d->ports),
		.reserved = reserved,
		.managed = managed,
		.applied_ns = time_now_ns(),
	};
	d->policy.apply_ns = d->policy.applied_ns - t0;
}

/* Everything from the model: startup, reload, a change of services, databases or GPUs.
 * delta: what changed (NULL: anything may have). */
static int apply_all(struct daemon *d, const char *why, const struct reg_delta *delta)
{
	const struct reg_state *st = registry_state(d->reg);
	uint64_t t0 = time_now_ns();
	struct comp_env env;
	int err;

	err = svcs_reconcile(&d->svcs, st);
	if (!err && d->cgfollow)
		err = cgfollow_sync(d->cgfollow, &d->svcs);
	if (err)
		p_warn("some service cgroups could not be prepared; their ports deny everyone");
	err = config_map_write(d);
	if (!err)
		err = netns_apply(ports_map_fd(d->ports, "cm_netns"), d->cfg.netns_cookie,
				  d->cfg.n_netns);
	/* The databases' runtime first: the databases component syncs its maps from it. A
	 * reload re-resolves every database's host; other changes only new addresses. */
	if (!err)
		err = databases_follow(d, !strcmp(why, "reload"));
	if (err)
		return err;
	daemon_comp_env(d, &env);
	err = components_sync(&d->comps, &env, st, delta);
	if (err)
		return err;
	policy_note(d, st->rev, t0);
	policyguard_record(&d->guard, d->ports);
	err = resources_apply(d);
	if (err)
		p_err("failed to apply resource rules: %s", strerror(-err));
	if (!err)
		err = verify_canaries(d);
	emit_policy_applied(d, why);
	return err;
}

/* Push registry + config to the kernel (cgroups, cm_services, port table, modes). */
int daemon_apply(struct daemon *d, const char *why)
{
	return apply_all(d, why, NULL);
}

/* Only reservations changed: the components sync the slots they name, nothing else. */
static int apply_slots(struct daemon *d, const struct reg_state *st, const struct reg_delta *dl)
{
	uint64_t t0 = time_now_ns();
	struct comp_env env;
	int err;

	daemon_comp_env(d, &env);
	err = components_sync(&d->comps, &env, st, dl);
	if (err)
		return err;
	policy_note(d, st->rev, t0);
	policyguard_record(&d->guard, d->ports);
	emit_policy_applied(d, "registry change");
	return 0;
}

/* What a reload cannot change: where things live. */
static void check_immutable(const struct config *old, const struct config *nc, struct verr *e)
{
	static const struct {
		const char *key;
		size_t off;
	} fields[] = {
		{ "bpffs", offsetof(struct config, bpffs) },
		{ "state_dir", offsetof(struct config, state_dir) },
		{ "runtime_dir", offsetof(struct config, runtime_dir) },
		{ "cgroup_root", offsetof(struct config, cgroup_root) },
		{ "http.listen", offsetof(struct config, http.spec) },
		{ "http.cert", offsetof(struct config, http.cert) },
		{ "http.key", offsetof(struct config, http.key) },
		{ "mcp.listen", offsetof(struct config, mcp.spec) },
		{ "mcp.cert", offsetof(struct config, mcp.cert) },
		{ "mcp.key", offsetof(struct config, mcp.key) },
	};

	if (memcmp(old->http.origins, nc->http.origins, sizeof(old->http.origins)))
		verr_add(e, nc->path, "http.origins", "changed: this needs a restart of caelumd");
	if (memcmp(old->mcp.origins, nc->mcp.origins, sizeof(old->mcp.origins)) ||
	    old->mcp_auth_none != nc->mcp_auth_none)
		verr_add(e, nc->path, "mcp",
			 "origins or auth changed: this needs a restart of caelumd");
	if (old->n_peers != nc->n_peers || memcmp(old->peers, nc->peers, sizeof(old->peers)))
		verr_add(e, nc->path, "mcp.peers", "changed: this needs a restart of caelumd");

	if (old->ringbuf_bytes != nc->ringbuf_bytes)
		verr_add(e, nc->path, "ringbuf_bytes",
			 "changed from %u to %u: this needs 'caelumctl teardown' and a restart",
			 old->ringbuf_bytes, nc->ringbuf_bytes);
	if (memcmp(&old->registry, &nc->registry, sizeof(old->registry)))
		verr_add(e, nc->path, "registry", "changed: this needs a restart of caelumd");

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *a = (const char *)old + fields[i].off;
		const char *b = (const char *)nc + fields[i].off;

		if (strcmp(a, b))
			verr_add(e, nc->path, fields[i].key,
				 "changed from \"%s\" to \"%s\": this needs a restart of caelumd",
				 a, b);
	}
}

/* A reload (or a deferred commit of services_dir) refused: the event, with every reason. */
void daemon_reload_rejected(struct daemon *d, const struct verr *e)
{
	struct json_object *ev = event_new(d->ev, "reload_rejected", "refused");

	json_object_object_add(ev, "errors", verr_to_json(e));
	events_emit(d->ev, ev);
}

/* Re-read config and services_dir, validate all, apply atomically or change nothing. */
int daemon_reload(struct daemon *d, struct verr *e)
{
	struct config *nc = calloc(1, sizeof(*nc)), *old = calloc(1, sizeof(*old));
	struct service_spec *specs = NULL;
	struct db_spec *dbs = NULL;
	size_t n = 0, n_dbs = 0;
	int err;

	if (!nc || !old) {
		free(nc);
		free(old);
		return -ENOMEM;
	}
	err = config_load(d->cfg.path, nc, e);
	if (!err)
		err = config_resolve(nc, e);
	if (!err) {
		check_immutable(&d->cfg, nc, e);
		err = e->n ? -EINVAL : 0;
	}
	if (!err)
		err = spec_load_dir(nc->services_dir, &specs, &n, e);
	if (!err)
		err = dbspec_load_dir(nc->databases_dir, &dbs, &n_dbs, e);
	if (!err) {
		/* Registry and config change together: apply once, after both. */
		*old = d->cfg;
		d->cfg = *nc;
		d->defer_apply = true;
		err = registry_sync_all(d->reg, specs, n, dbs, n_dbs, e);
		d->defer_apply = false;
		if (err)
			d->cfg = *old;
	}
	specs_free(specs, n);
	dbspecs_free(dbs, n_dbs);
	free(nc);
	free(old);
	if (err) {
		daemon_reload_rejected(d, e);
		p_warn("reload rejected; the previous policy stays in force");
		return err;
	}
	err = daemon_apply(d, "reload");
	apply_log_record(&d->applied, registry_state(d->reg)->rev, err);
	if (err)
		verr_add(e, d->cfg.path, NULL, "kernel policy update failed: %s", strerror(-err));
	return err;
}

/*
 * The one change path: the registry applied a batch of watch events (whoever committed
 * them: a handler, a reload, later another host) and tells what changed. Reservations
 * alone touch only their slots; services, databases and GPUs take the full apply.
 * The outcome is recorded for the revision, where the committing handler finds it.
 */
void daemon_on_registry_change(void *ctx, const struct reg_state *st, const struct reg_delta *dl)
{
	struct daemon *d = ctx;
	int err;

	if (d->defer_apply)
		return;
	if (dl->services || dl->dbs || dl->gpus)
		err = apply_all(d, "registry change", dl);
	else
		err = apply_slots(d, st, dl);
	apply_log_record(&d->applied, dl->rev, err);
}

#define LOSSES_FILE "kernel_losses.json"

/*
 * The kernel's loss counters outlive caelumd (pinned map), so what has already been
 * reported as events_lost is remembered in <state_dir>/kernel_losses.json: a restart
 * reports only what is new, including what was lost while caelumd was down.
 */
void daemon_losses_load(struct daemon *d)
{
	char path[PATH_MAX];
	struct json_object *o;

	snprintf(path, sizeof(path), "%s/" LOSSES_FILE, d->cfg.state_dir);
	o = json_object_from_file(path);
	if (!o)
		return;
	for (size_t i = 0; i < N_LOSSES; i++) {
		struct json_object *v;

		if (json_object_object_get_ex(o, kernel_losses[i].reason, &v))
			d->kstats_reported[i] = (uint64_t)json_object_get_int64(v);
	}
	json_object_put(o);
}

static void losses_store(struct daemon *d)
{
	struct json_object *o = json_object_new_object();
	const char *text;
	int err;

	for (size_t i = 0; i < N_LOSSES; i++)
		json_object_object_add(o, kernel_losses[i].reason,
				       json_object_new_uint64(d->kstats_reported[i]));
	text = json_object_to_json_string(o);
	err = file_write_atomic(d->cfg.state_dir, LOSSES_FILE, text, strlen(text), 0600);
	if (err)
		p_warn("failed to write %s/%s: %s", d->cfg.state_dir, LOSSES_FILE, strerror(-err));
	json_object_put(o);
}

/* Kernel-side losses become events, so that they are seen, not only counted. */
void daemon_report_losses(struct daemon *d)
{
	bool changed = false;

	for (size_t i = 0; i < N_LOSSES; i++) {
		uint64_t now = daemon_kstat(d, kernel_losses[i].stat);
		struct json_object *e;

		/* A smaller value means the maps were recreated (teardown): start over. */
		if (now < d->kstats_reported[i])
			d->kstats_reported[i] = 0;
		if (now == d->kstats_reported[i])
			continue;
		e = event_new(d->ev, "events_lost", "counted");
		json_object_object_add(e, "stage", json_object_new_string("kernel"));
		json_object_object_add(e, "reason",
				       json_object_new_string(kernel_losses[i].reason));
		json_object_object_add(e, "count",
				       json_object_new_uint64(now - d->kstats_reported[i]));
		d->kstats_reported[i] = now;
		events_emit(d->ev, e);
		changed = true;
	}
	if (changed)
		losses_store(d);
}
