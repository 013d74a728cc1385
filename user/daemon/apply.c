// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumd's core, between the registry and the components: apply the model to the kernel
 * (all of it, or the slots a delta names), the one change path (daemon_on_registry_change,
 * the registry's watcher; the batch with a pending reload's revision puts its config in
 * force, reload.c), and the kernel's loss counters turned into events. Called by the
 * composition root (caelumd.c), reload.c and the registry's watch; it calls down only
 * (components, resources, databases, verify, policyguard, status).
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

int daemon_apply_config(struct daemon *d, const struct config *nc)
{
	int err;

	d->cfg = *nc;
	d->reload.installed = true;
	err = apply_all(d, "reload", NULL);
	apply_log_record(&d->applied, registry_state(d->reg)->rev, err);
	return err;
}

/* Does dl bring the revision a pending reload committed (its answer is in: the registry reaps
 * answers before the events)? Then its config goes in force with it (reload.c). */
static bool reload_batch(const struct daemon *d, const struct reg_delta *dl)
{
	uint64_t rev = registry_commit_rev(d->reload.commit);

	return d->reload.cfg && !d->reload.installed && rev && dl->rev >= rev;
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

	if (reload_batch(d, dl)) {
		d->reload.apply_err = daemon_apply_config(d, d->reload.cfg);
		return;
	}
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
