// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Reload (SIGHUP, the `reload` method) and the commit of services_dir, without holding the
 * loop. A reload re-reads the configuration, services_dir and databases_dir, validates all
 * of it at once and submits the registry's difference (registry_sync_all_async); the loop
 * goes on serving while the backend answers. The new configuration waits beside the
 * daemon's (d->reload.cfg) and is put in force only with the registry revision it came
 * with: in the watch batch that brings that revision (or, when the batch came before the
 * backend's answer, in the commit's continuation), followed by one full apply. Until then
 * everyone (handlers, status, the tick) sees the configuration in force; a refused reload
 * never installs it, so it changes nothing.
 *
 * One reload runs at a time. Reloads asked while one runs are queued into one follow-up
 * that starts when it ends and reads the files then (systemd's rule for a reload job that
 * meets a running one: src/core/job.c job_type_allows_late_merge() is false for
 * JOB_RELOAD, so the running job is merged and run again); every caller that asked gets
 * the outcome of the reload that served it. RELOADING=1 goes out when a reload starts
 * while none runs, READY=1 when the last queued one ended.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "handlers.h"
#include "log.h"
#include "notify.h"

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

static void reload_committed(void *arg, int err, uint64_t rev, struct verr *e);

/*
 * Read and validate everything and submit the registry's part. 0 or -errno: ended now (the
 * reasons in e); RELOAD_PENDING: the commit is in flight (reload_committed ends it).
 */
static int reload_begin(struct daemon *d, struct verr *e)
{
	struct reg_async as = { reload_committed, d };
	struct config *nc = calloc(1, sizeof(*nc));
	struct service_spec *specs = NULL;
	struct db_spec *dbs = NULL;
	size_t n = 0, n_dbs = 0;
	int err;

	if (!nc)
		return -ENOMEM;
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
	/* admitted against the new config's capacity: the one it will run with */
	if (!err)
		err = registry_sync_all_async(d->reg, specs, n, dbs, n_dbs, &nc->cap, &as,
					      &d->reload.commit, e);
	specs_free(specs, n);
	dbspecs_free(dbs, n_dbs);
	if (err == REG_PENDING) {
		d->reload.cfg = nc;
		return RELOAD_PENDING;
	}
	if (!err) /* the registry has it already: the config alone changes */
		err = daemon_apply_config(d, nc);
	free(nc);
	return err;
}

static int reload_start(struct daemon *d, struct verr *e)
{
	d->reload.running = true;
	d->reload.installed = false;
	d->reload.started_ns = time_now_ns();
	/* a pending retry of the startup commit: this reload commits the files instead */
	if (d->resync_commit) {
		registry_commit_cancel(d->resync_commit);
		d->resync_commit = NULL;
	}
	return reload_begin(d, e);
}

/* A reload ended: log, event, and everyone who waited for it told. */
static void reload_answer(struct daemon *d, int err, struct verr *e)
{
	struct hreload *w = d->reload.waiters;
	char *msg;

	d->reload.waiters = NULL;
	d->reload.running = false;
	if (d->reload.installed) /* the files are the registry's now */
		d->resync_pending = false;
	if (err && d->reload.installed) {
		verr_add(e, d->cfg.path, NULL, "kernel policy update failed: %s", strerror(-err));
		p_err("reload: the kernel policy update failed: %s", strerror(-err));
	} else if (err) {
		daemon_reload_rejected(d, e);
		msg = verr_join(e);
		p_err("reload rejected; the previous policy stays in force:\n%s",
		      msg ? msg : strerror(-err));
		free(msg);
	} else {
		p_info("reload: registry revision %llu in force (%zu services)",
		       (unsigned long long)registry_state(d->reg)->rev,
		       registry_state(d->reg)->n_svcs);
	}
	while (w) {
		struct hreload *next = w->next;

		w->next = NULL;
		w->done(w, err, e, d->policy.entries);
		w = next;
	}
}

/* The reload that ended and every follow-up that ends at once: answered; then READY=1. */
static void reload_finish(struct daemon *d, int err, struct verr *e)
{
	struct verr own = {};

	for (;;) {
		reload_answer(d, err, e);
		if (!d->reload.again)
			break;
		d->reload.again = false;
		d->reload.waiters = d->reload.next_waiters;
		d->reload.next_waiters = NULL;
		verr_free(&own);
		e = &own;
		p_info("reload: the queued reload starts");
		err = reload_start(d, e);
		if (err == RELOAD_PENDING) {
			verr_free(&own);
			return;
		}
	}
	notify_ready(d->policy.registry_rev, registry_state(d->reg)->n_svcs);
	if (err)
		notify_status("reload rejected (%s); revision %llu stays in force",
			      e->n ? e->msgs[0] : strerror(-err),
			      (unsigned long long)d->policy.registry_rev);
	verr_free(&own);
}

/* The registry's answer to the reload's commit, once the model has its revision. */
static void reload_committed(void *arg, int err, uint64_t rev, struct verr *e)
{
	struct daemon *d = arg;
	struct config *nc = d->reload.cfg;

	(void)rev;
	d->reload.commit = NULL;
	d->reload.cfg = NULL;
	if (!err)
		err = d->reload.installed ? d->reload.apply_err : daemon_apply_config(d, nc);
	free(nc);
	reload_finish(d, err, e);
}

int daemon_reload(struct daemon *d, struct hreload *w, struct verr *e)
{
	int err;

	if (d->reload.running) {
		if (!d->reload.again)
			p_info("reload queued: it starts once the one in progress (%.1f s) ended",
			       (double)(time_now_ns() - d->reload.started_ns) / 1e9);
		d->reload.again = true;
		if (w) {
			w->next = d->reload.next_waiters;
			d->reload.next_waiters = w;
		}
		return RELOAD_PENDING;
	}
	notify_reloading();
	err = reload_start(d, e);
	if (err != RELOAD_PENDING) {
		reload_finish(d, err, e);
		return err;
	}
	if (w) {
		w->next = NULL;
		d->reload.waiters = w;
	}
	return RELOAD_PENDING;
}

static bool waiter_unlink(struct hreload **list, struct hreload *w)
{
	for (struct hreload **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			w->next = NULL;
			return true;
		}
	return false;
}

void daemon_reload_cancel(struct daemon *d, struct hreload *w)
{
	if (!waiter_unlink(&d->reload.waiters, w))
		waiter_unlink(&d->reload.next_waiters, w);
}

void daemon_reload_abort(struct daemon *d)
{
	registry_commit_cancel(d->reload.commit);
	registry_commit_cancel(d->resync_commit);
	free(d->reload.cfg);
	d->reload = (struct reload_state){};
	d->resync_commit = NULL;
}

/* ---- the commit of services_dir and databases_dir ---- */

static int dirs_load(struct daemon *d, struct service_spec **specs, size_t *n, struct db_spec **dbs,
		     size_t *n_dbs, struct verr *e)
{
	int err = spec_load_dir(d->cfg.services_dir, specs, n, e);

	if (!err)
		err = dbspec_load_dir(d->cfg.databases_dir, dbs, n_dbs, e);
	return err;
}

int daemon_commit_dirs(struct daemon *d, struct verr *e)
{
	struct service_spec *specs = NULL;
	struct db_spec *dbs = NULL;
	size_t n = 0, n_dbs = 0;
	int err = dirs_load(d, &specs, &n, &dbs, &n_dbs, e);

	if (!err)
		err = registry_sync_all(d->reg, specs, n, dbs, n_dbs, e);
	specs_free(specs, n);
	dbspecs_free(dbs, n_dbs);
	return err;
}

static void resync_done(void *arg, int err, uint64_t rev, struct verr *e)
{
	struct daemon *d = arg;

	d->resync_commit = NULL;
	if (registry_err_unavailable(err))
		return; /* still away: the next tick tries again */
	d->resync_pending = false;
	if (err) {
		daemon_reload_rejected(d, e);
		p_warn("services_dir and databases_dir refused by the registry; the previous "
		       "policy stays in force");
	} else {
		p_info("services_dir and databases_dir committed to the registry (revision %llu)",
		       (unsigned long long)(rev ? rev : registry_state(d->reg)->rev));
	}
}

void daemon_resync(struct daemon *d)
{
	struct reg_async as = { resync_done, d };
	struct service_spec *specs = NULL;
	struct db_spec *dbs = NULL;
	size_t n = 0, n_dbs = 0;
	struct verr e = {};
	int err;

	/* one at a time; a reload commits the files itself */
	if (!d->resync_pending || d->resync_commit || d->reload.running)
		return;
	err = dirs_load(d, &specs, &n, &dbs, &n_dbs, &e);
	if (!err)
		err = registry_sync_all_async(d->reg, specs, n, dbs, n_dbs, NULL, &as,
					      &d->resync_commit, &e);
	specs_free(specs, n);
	dbspecs_free(dbs, n_dbs);
	if (err != REG_PENDING)
		resync_done(d, err, 0, &e);
	verr_free(&e);
}
