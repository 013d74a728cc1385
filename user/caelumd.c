// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumd: loads the enforcement programs, keeps their maps equal to the registry, and
 * turns what the kernel reports into events. Startup is a mandatory check: any failure
 * to validate, load or attach ends the process with the reason. It never enforces
 * nothing silently. Killing it leaves enforcement in place (pinned links and maps).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agg.h"
#include "api.h"
#include "connlimit.h"
#include "bpfinfo.h"
#include "credentials.h"
#include "databases.h"
#include "health.h"
#include "hosts.h"
#include "verify.h"
#include "probe.h"
#include "daemon.h"
#include "fsutil.h"
#include "handlers.h"
#include "cgfollow.h"
#include "log.h"
#include "notify.h"
#include "netns.h"
#include "pinlock.h"
#include "rpc.h"
#include "version.h"

#define TICK_MS 250 /* aggregation windows are flushed this often */
#define LOSS_CHECK_NS 1000000000ULL
#define CRED_CHECK_NS (5ULL * 1000000000ULL)

/* Kernel counters of events that never reached the ring buffer. */
static const struct {
	int stat;
	const char *reason;
} kernel_losses[] = {
	{ CAELUM_STAT_RB_LOST_FIRST, "ringbuf_full" },
	{ CAELUM_STAT_RB_LOST_FOLLOWUP, "ringbuf_full_followup" },
};
#define N_LOSSES (sizeof(kernel_losses) / sizeof(kernel_losses[0]))

uint64_t daemon_kstat(const struct daemon *d, int idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals, sum = 0;
	__u32 key = (__u32)idx;

	if (ncpu <= 0)
		return 0;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (vals && !bpf_map_lookup_elem(ports_map_fd(d->ports, "cm_stats"), &key, vals))
		for (int i = 0; i < ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

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
	json_object_object_add(e, "mode",
			       json_object_new_string(mode_name(d->cfg.comp_mode[CAELUM_COMP_PORTS])));
	json_object_object_add(e, "apply_ns", json_object_new_uint64(d->policy.apply_ns));
	events_emit(d->ev, e);
}

/* The self-verification canary port, unless a real service holds it. */
static struct reg_claim *add_canary_claim(struct daemon *d, struct reg_claim *cl, size_t *n)
{
	struct reg_claim canary, *tmp;

	if (!verify_port_claim(d, &canary))
		return cl;
	for (size_t i = 0; i < *n; i++)
		if (cl[i].port == canary.port && cl[i].proto == canary.proto)
			return cl;
	tmp = realloc(cl, (*n + 1) * sizeof(*cl));
	if (!tmp)
		return cl;
	tmp[(*n)++] = canary;
	return tmp;
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

/* Everything from the model: startup, reload, a change of services, databases or GPUs. */
int daemon_apply(struct daemon *d, const char *why)
{
	const struct reg_state *st = registry_state(d->reg);
	uint64_t t0 = time_now_ns();
	struct port_policy pol;
	struct reg_claim *cl;
	size_t n;
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
	if (err)
		return err;
	err = registry_claims(st, &cl, &n);
	if (err)
		return err;
	cl = add_canary_claim(d, cl, &n);
	err = port_policy_build(&pol, cl, n, d->cfg.managed, d->cfg.n_managed, svcs_ident,
				&d->svcs);
	if (!err) /* keep autobinds off reservations in the ephemeral range (not fatal) */
		reserved_ports_apply(d->cfg.state_dir, cl, n, &d->resv);
	free(cl);
	if (!err)
		err = ports_install(d->ports, &pol);
	port_policy_free(&pol);
	if (err) {
		p_err("failed to apply the port policy: %s", strerror(-err));
		return err;
	}
	policy_note(d, st->rev, t0);
	policyguard_record(d);
	err = resources_apply(d);
	if (err)
		p_err("failed to apply resource rules: %s", strerror(-err));
	/* A reload re-resolves every database's host; other changes only new addresses. */
	if (!err && d->connect)
		err = databases_apply(d, !strcmp(why, "reload"));
	if (!err)
		err = verify_canaries(d);
	emit_policy_applied(d, why);
	return err;
}

/* Does any changed slot lie in ip_local_port_range (as last read)? */
static bool slots_in_ephemeral_range(const struct daemon *d, const struct reg_delta *dl)
{
	for (size_t i = 0; i < dl->n_slots; i++) {
		uint16_t port = REG_SLOT_PORT(dl->slots[i]);

		if (port >= d->resv.range_lo && port <= d->resv.range_hi)
			return true;
	}
	return false;
}

/* ip_local_reserved_ports again from every claim: O(claims), only for changes in the
 * ephemeral range (reserved_ports.c). */
static void reserved_ports_sync(struct daemon *d, const struct reg_state *st)
{
	struct reg_claim *cl;
	size_t n;

	if (registry_claims(st, &cl, &n))
		return;
	cl = add_canary_claim(d, cl, &n);
	reserved_ports_apply(d->cfg.state_dir, cl, n, &d->resv);
	free(cl);
}

/* Only reservations changed: the slots they name, nothing else. O(slots). */
static int apply_slots(struct daemon *d, const struct reg_state *st, const struct reg_delta *dl)
{
	struct caelum_port_rule *rules = calloc(dl->n_slots + 1, sizeof(*rules));
	struct reg_claim canary = {};
	bool has_canary = verify_port_claim(d, &canary);
	uint64_t t0 = time_now_ns();
	int err;

	if (!rules)
		return -ENOMEM;
	for (size_t i = 0; i < dl->n_slots; i++) {
		uint32_t slot = dl->slots[i];
		const char *owner = registry_slot_owner(st, slot);

		if (!owner && has_canary && slot == REG_SLOT(canary.port, canary.proto))
			owner = canary.service;
		port_rule_compute(REG_SLOT_PORT(slot), REG_SLOT_PROTO(slot), owner, d->cfg.managed,
				  d->cfg.n_managed, svcs_ident, &d->svcs, &rules[i]);
	}
	err = ports_update(d->ports, dl->slots, rules, dl->n_slots);
	free(rules);
	if (err) {
		p_err("failed to update the port policy: %s", strerror(-err));
		return err;
	}
	policy_note(d, st->rev, t0);
	policyguard_record(d);
	if (slots_in_ephemeral_range(d, dl))
		reserved_ports_sync(d, st);
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
		verr_add(e, nc->path, "mcp", "origins or auth changed: this needs a restart of caelumd");
	if (old->n_peers != nc->n_peers || memcmp(old->peers, nc->peers, sizeof(old->peers)))
		verr_add(e, nc->path, "mcp.peers", "changed: this needs a restart of caelumd");

	if (memcmp(&old->registry, &nc->registry, sizeof(old->registry)))
		verr_add(e, nc->path, "registry", "changed: this needs a restart of caelumd");
	if (old->ringbuf_bytes != nc->ringbuf_bytes)
		verr_add(e, nc->path, "ringbuf_bytes",
			 "changed from %u to %u: this needs 'caelumctl teardown' and a restart",
			 old->ringbuf_bytes, nc->ringbuf_bytes);

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *a = (const char *)old + fields[i].off;
		const char *b = (const char *)nc + fields[i].off;

		if (strcmp(a, b))
			verr_add(e, nc->path, fields[i].key,
				 "changed from \"%s\" to \"%s\": this needs a restart of caelumd", a, b);
	}
}

static void emit_reload_rejected(struct daemon *d, const struct verr *e)
{
	struct json_object *ev = event_new(d->ev, "reload_rejected", "refused");

	json_object_object_add(ev, "errors", verr_to_json(e));
	events_emit(d->ev, ev);
}

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
		emit_reload_rejected(d, e);
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
static void on_registry_change(void *ctx, const struct reg_state *st, const struct reg_delta *dl)
{
	struct daemon *d = ctx;
	int err;

	if (d->defer_apply)
		return;
	if (dl->services || dl->dbs || dl->gpus)
		err = daemon_apply(d, "registry change");
	else
		err = apply_slots(d, st, dl);
	apply_log_record(&d->applied, dl->rev, err);
}

static void on_registry_watch(void *ctx, uint32_t events)
{
	struct daemon *d = ctx;

	(void)events;
	registry_poll(d->reg);
}

static int on_record(void *ctx, void *data, size_t len)
{
	events_from_kernel(ctx, data, len);
	return 0;
}

static void on_ringbuf(void *ctx, uint32_t events)
{
	struct daemon *d = ctx;

	(void)events;
	ring_buffer__consume(d->rb);
}

static void on_service_change(void *ctx, struct svc_rt *s, bool running)
{
	struct daemon *d = ctx;
	struct json_object *e;

	if (running) {
		/* caelumctl run reports starts itself, with the pid. The first health check
		 * comes an interval from now, not before the service had a chance to listen. */
		s->health_last_ns = time_now_ns();
		if (s->followed) { /* started by its manager: only its cgroup tells */
			e = event_new(d->ev, "service_started", "changed");
			json_object_object_add(e, "service", json_object_new_string(s->name));
			json_object_object_add(e, "cgroup", json_object_new_string(s->cgroup));
			json_object_object_add(e, "cgroup_id", json_object_new_uint64(s->cgid));
			events_emit(d->ev, e);
		}
		return;
	}
	health_stop(s);
	e = event_new(d->ev, "service_stopped", "changed");
	json_object_object_add(e, "service", json_object_new_string(s->name));
	json_object_object_add(e, "cgroup_id", json_object_new_uint64(s->cgid));
	if (s->main_pid)
		json_object_object_add(e, "pid", json_object_new_int(s->main_pid));
	events_emit(d->ev, e);
	s->main_pid = 0;
}

static void on_inotify(void *ctx, uint32_t events)
{
	struct daemon *d = ctx;

	(void)events;
	svcs_handle_inotify(&d->svcs, on_service_change, d);
}

static void on_signal(void *ctx, uint32_t events)
{
	struct daemon *d = ctx;
	struct signalfd_siginfo si;

	(void)events;
	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			struct verr e = {};
			char *msg;

			p_info("SIGHUP: reloading %s", d->cfg.path);
			notify_reloading();
			if (daemon_reload(d, &e)) {
				msg = verr_join(&e);
				p_err("reload rejected:\n%s", msg ? msg : "unknown error");
				free(msg);
			}
			notify_ready(d->policy.registry_rev, registry_state(d->reg)->n_svcs);
			if (e.n)
				notify_status("reload rejected (%s); revision %llu stays in force",
					      e.msgs[0], (unsigned long long)d->policy.registry_rev);
			verr_free(&e);
		} else {
			p_info("signal %d: stopping (enforcement stays in place)", si.ssi_signo);
			notify_stopping();
			loop_stop(d->loop);
		}
	}
}

#define LOSSES_FILE "kernel_losses.json"

/*
 * The kernel's loss counters outlive caelumd (pinned map), so what has already been
 * reported as events_lost is remembered in <state_dir>/kernel_losses.json: a restart
 * reports only what is new, including what was lost while caelumd was down.
 */
static void losses_load(struct daemon *d)
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
static void report_losses(struct daemon *d)
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
		json_object_object_add(e, "reason", json_object_new_string(kernel_losses[i].reason));
		json_object_object_add(e, "count",
				       json_object_new_uint64(now - d->kstats_reported[i]));
		d->kstats_reported[i] = now;
		events_emit(d->ev, e);
		changed = true;
	}
	if (changed)
		losses_store(d);
}

static void flush_windows(struct daemon *d)
{
	struct caelum_agg_flush_args res;
	int err = agg_flush(d->agg, &res);

	if (err) {
		if (!d->flush_errors++)
			p_warn("failed to flush aggregation windows: %s", strerror(-err));
		return;
	}
	if (res.flushed)
		ring_buffer__consume(d->rb); /* the follow-ups were just written */
}

/* Backend recoveries (counters of registry_status_json) become one event each. */
static void registry_report(struct daemon *d, struct json_object *st)
{
	static const char *const counters[] = { "relists", "compactions", "watch_restarts",
						"leader_changes", "token_renewals",
						"lease_losses", "failovers", NULL };

	for (size_t i = 0; counters[i]; i++) {
		struct json_object *now = NULL, *was = NULL, *ev;

		json_object_object_get_ex(st, counters[i], &now);
		json_object_object_get_ex(d->registry_seen, counters[i], &was);
		if (!now || json_object_get_uint64(now) <= (was ? json_object_get_uint64(was) : 0))
			continue;
		ev = event_new(d->ev, "registry_recovered", counters[i]);
		json_object_object_add(ev, "backend", json_object_new_string(registry_backend_name(d->reg)));
		json_object_object_add(ev, "count", json_object_new_uint64(json_object_get_uint64(now)));
		events_emit(d->ev, ev);
	}
	json_object_put(d->registry_seen);
	d->registry_seen = st;
}

/* Once a second: the backend's periodic work, recoveries reported, a pending commit of
 * services_dir retried. */
static void registry_tick_daemon(struct daemon *d, uint64_t now)
{
	struct service_spec *specs = NULL;
	struct db_spec *dbs = NULL;
	size_t n = 0, n_dbs = 0;
	struct verr e = {};
	int err;

	if (now - d->last_registry_check_ns < 1000000000ULL)
		return;
	d->last_registry_check_ns = now;
	registry_tick(d->reg);
	registry_report(d, registry_status_json(d->reg));
	hosts_tick(d, now);
	if (!d->resync_pending)
		return;
	err = spec_load_dir(d->cfg.services_dir, &specs, &n, &e);
	if (!err)
		err = dbspec_load_dir(d->cfg.databases_dir, &dbs, &n_dbs, &e);
	if (!err)
		err = registry_sync_all(d->reg, specs, n, dbs, n_dbs, &e);
	specs_free(specs, n);
	dbspecs_free(dbs, n_dbs);
	if (!registry_err_unavailable(err)) {
		d->resync_pending = false;
		if (err)
			emit_reload_rejected(d, &e);
		else
			p_info("services_dir and databases_dir committed to the registry");
	}
	verr_free(&e);
}

static void on_tick(void *ctx)
{
	struct daemon *d = ctx;
	uint64_t now = time_now_ns();

	if (now - d->last_flush_ns >= (uint64_t)TICK_MS * 1000000ULL) {
		d->last_flush_ns = now;
		flush_windows(d);
	}
	if (now - d->last_loss_check_ns >= LOSS_CHECK_NS) {
		d->last_loss_check_ns = now;
		report_losses(d);
	}
	svcs_poll_followed(&d->svcs, on_service_change, d);
	resources_tick(d, now);
	databases_tick(d, now);
	health_tick(d, now);
	verify_tick(d, now);
	if (now - d->last_cred_check_ns >= CRED_CHECK_NS) {
		d->last_cred_check_ns = now;
		credentials_watch(d);
	}
	api_tick(d, now);
	registry_tick_daemon(d, now);
	probe_reap();
	notify_tick(now, d->policy.registry_rev, registry_state(d->reg)->n_svcs);
}

static int signals_open(struct daemon *d)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	return d->sig_fd < 0 ? -errno : 0;
}

static int print_verr(struct verr *e, const char *what)
{
	char *msg = verr_join(e);

	p_err("%s:\n%s", what, msg ? msg : "unknown error");
	free(msg);
	verr_free(e);
	return EXIT_CONFIG;
}

/* Capacity may have shrunk under registered services: they stay, caelumctl run refuses. */
static void warn_overallocation(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);

	for (size_t i = 0; i < st->n_svcs; i++) {
		struct verr e = {};

		if (registry_admit_service(d->reg, st->svcs[i].spec.name, &e) && e.n)
			p_warn("over capacity: %s (caelumctl run will refuse it)", e.msgs[0]);
		verr_free(&e);
	}
}

static int setup_registry(struct daemon *d)
{
	struct registry_backend *b;
	struct service_spec *specs = NULL;
	struct db_spec *dbs = NULL;
	struct verr e = {};
	size_t n = 0, n_dbs = 0;
	int err;

	if (d->cfg.registry.etcd)
		err = registry_etcd_open(&d->cfg.registry, d->cfg.state_dir, &b);
	else
		err = registry_file_open(d->cfg.state_dir, &b);
	if (err)
		return registry_err_unavailable(err) ? EXIT_UNAVAILABLE : EXIT_FAIL;
	err = registry_open(b, &d->reg, &e);
	if (err) {
		b->ops->free(b);
		return print_verr(&e, "registry is invalid");
	}
	registry_set_capacity(d->reg, &d->cfg.cap);
	err = spec_load_dir(d->cfg.services_dir, &specs, &n, &e);
	if (!err)
		err = dbspec_load_dir(d->cfg.databases_dir, &dbs, &n_dbs, &e);
	if (!err)
		err = registry_sync_all(d->reg, specs, n, dbs, n_dbs, &e);
	specs_free(specs, n);
	dbspecs_free(dbs, n_dbs);
	if (registry_err_unavailable(err)) {
		/* The shared registry is away: enforce what we have, commit the files later. */
		p_warn("services_dir and databases_dir not committed yet: the %s registry is unavailable; retrying",
		       registry_backend_name(d->reg));
		verr_free(&e);
		d->resync_pending = true;
		err = 0;
	}
	if (err)
		return print_verr(&e, "services or databases are invalid");
	warn_overallocation(d);
	return 0;
}

static int setup_dirs(struct daemon *d)
{
	int err = mkdir_p(d->cfg.state_dir, 0700);

	if (err) {
		p_err("failed to create state_dir '%s': %s", d->cfg.state_dir, strerror(-err));
		return EXIT_FAIL;
	}
	err = mkdir_p(d->cfg.runtime_dir, 0755);
	if (err) {
		p_err("failed to create runtime_dir '%s': %s", d->cfg.runtime_dir, strerror(-err));
		return EXIT_FAIL;
	}
	return 0;
}

/* Every program must be attached at cgroup_root, asked of the kernel. */
static int verify_attached(struct daemon *d)
{
	for (int i = 0; i < PORTS_NPROGS; i++) {
		const char *name;
		int type, fd = ports_prog_fd(d->ports, i, &name, &type);

		if (!bpfinfo_attached(d->env.cg_fd, type, bpfinfo_prog_id(fd))) {
			p_err("program '%s' is not attached at %s after attach", name,
			      d->cfg.cgroup_root);
			return EXIT_FAIL;
		}
		p_info("%s attached at %s (link %s)", name, d->cfg.cgroup_root,
		       ports_link_outcome(d->ports, i));
	}
	return 0;
}

/* Run time and count of every BPF program, while the fd is held (kernel >= 5.8). */
static void stats_setup(struct daemon *d)
{
	if (!d->cfg.bpf_stats)
		return;
	d->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (d->stats_fd < 0)
		p_warn("bpf_stats: BPF_ENABLE_STATS failed (%s): program run time is not measured",
		       strerror(errno));
}

static int setup_bpf(struct daemon *d)
{
	int err;

	if (bpf_env_open(&d->env, d->cfg.bpffs, d->cfg.cgroup_root, d->cfg.ringbuf_bytes))
		return EXIT_FAIL;
	/* Before any map, link or policy is touched: one caelumd per pin set. */
	if (pinlock_take(&d->pinlock, d->env.root, d->cfg.cgroup_root))
		return EXIT_FAIL;
	if (ports_load(&d->env, &d->ports))
		return EXIT_FAIL;
	if (agg_load(&d->env, &d->agg))
		return EXIT_FAIL;
	if (cgfollow_setup(&d->env, &d->cgfollow))
		return EXIT_FAIL;
	if (svcs_init(&d->svcs, d->cfg.cgroup_root, d->cfg.cg2_mount, d->cfg.root_level))
		return EXIT_FAIL;
	svcs_set_map(&d->svcs, ports_map_fd(d->ports, "cm_services"));
	/* Fill the maps before attaching: the programs never see an empty policy. */
	if (daemon_apply(d, "startup"))
		return EXIT_FAIL;
	err = ports_attach(d->ports, &d->env);
	if (err)
		return EXIT_FAIL;
	err = verify_attached(d);
	if (err)
		return err;
	if (resources_setup(d))
		p_warn("resource components could not be fully applied");
	if (databases_setup(d) || verify_setup(d) || daemon_apply(d, "startup"))
		return EXIT_FAIL;
	apply_log_record(&d->applied, registry_state(d->reg)->rev, 0);
	registry_watch(d->reg, on_registry_change, d);
	stats_setup(d);
	return 0;
}

static int setup_loop(struct daemon *d)
{
	char sock[PATH_MAX];

	if (loop_new(&d->loop) || signals_open(d)) {
		p_err("failed to set up the event loop: %s", strerror(errno));
		return EXIT_FAIL;
	}
	d->rb = ring_buffer__new(ports_map_fd(d->ports, "cm_events"), on_record, d->ev, NULL);
	if (!d->rb) {
		p_err("failed to open ring buffer 'cm_events': %s", strerror(errno));
		return EXIT_FAIL;
	}
	config_socket_path(&d->cfg, sock, sizeof(sock));
	if (loop_add(d->loop, ring_buffer__epoll_fd(d->rb), EPOLLIN, on_ringbuf, d) ||
	    loop_add(d->loop, d->sig_fd, EPOLLIN, on_signal, d) ||
	    loop_add(d->loop, d->svcs.inotify_fd, EPOLLIN, on_inotify, d) ||
	    loop_add(d->loop, registry_watch_fd(d->reg), EPOLLIN, on_registry_watch, d) ||
	    rpc_server_open(&d->rpc, d, sock))
		return EXIT_FAIL;
	return 0;
}

static const char *event_service_name(void *ctx, uint64_t cgid)
{
	return svcs_name_of(&((struct daemon *)ctx)->svcs, cgid);
}

static const char *event_db_name(void *ctx, uint32_t id)
{
	return databases_name_of(ctx, id);
}

/* A configured GPU device path for major:minor. */
static const char *event_device_path(void *ctx, uint32_t major, uint32_t minor)
{
	const struct capacity *cap = &((struct daemon *)ctx)->cfg.cap;

	for (size_t g = 0; g < cap->n_gpus; g++)
		for (size_t i = 0; i < cap->gpus[g].n_dev; i++)
			if (cap->gpus[g].dev[i].major == major && cap->gpus[g].dev[i].minor == minor)
				return cap->gpus[g].dev[i].path;
	return NULL;
}

static int setup_events(struct daemon *d)
{
	struct events_opts eo = {
		.host = d->cfg.host,
		.state_dir = d->cfg.state_dir,
		.journal_max_bytes = d->cfg.journal_max_bytes,
		.journal_keep = d->cfg.journal_keep,
		.name_of = event_service_name,
		.dev_name = event_device_path,
		.db_name = event_db_name,
		.name_ctx = d,
	};

	losses_load(d);
	return events_open(&d->ev, &eo) ? EXIT_FAIL : 0;
}

static void warn_modes(const struct config *cfg)
{
	bool any = false;

	for (int i = 0; i < component_count(); i++) {
		any |= cfg->comp_mode[i] != CAELUM_MODE_OFF;
		if (cfg->comp_mode[i] != CAELUM_MODE_ENFORCE)
			p_warn("component '%s' is in %s mode: violations are %s", component_name(i),
			       mode_name(cfg->comp_mode[i]),
			       cfg->comp_mode[i] == CAELUM_MODE_AUDIT ? "reported, not denied"
								       : "neither denied nor reported");
	}
	if (!any)
		p_warn("every component is off: caelumd enforces nothing");
}

static void daemon_close(struct daemon *d)
{
	if (d->ev) {
		struct json_object *e = event_new(d->ev, "daemon_stopped", "changed");

		events_emit(d->ev, e);
	}
	api_stop(d);
	rpc_server_close(d->rpc);
	ring_buffer__free(d->rb);
	if (d->sig_fd > 0)
		close(d->sig_fd);
	if (d->stats_fd >= 0)
		close(d->stats_fd);
	loop_free(d->loop);
	svcs_fini(&d->svcs);
	for (size_t i = 0; i < d->svcs.n; i++)
		health_stop(&d->svcs.v[i]);
	verify_close(d);
	databases_close(d);
	credentials_close(d);
	resources_close(d);
	agg_close(d->agg);
	cgfollow_close(d->cgfollow);
	ports_close(d->ports);
	bpf_env_close(&d->env);
	pinlock_release(&d->pinlock);
	events_close(d->ev);
	hosts_close(d);
	registry_close(d->reg);
	json_object_put(d->registry_seen);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: caelumd [-c FILE] [-v]\n"
		   "  -c, --config FILE  configuration (default: $CAELUM_CONFIG or %s)\n"
		   "  -v, --verbose      debug messages, libbpf's included\n"
		   "  -V, --version      print the version\n",
		CONFIG_DEFAULT_PATH);
}

static int parse_args(int argc, char **argv, const char **cfg_path, bool *verbose)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },	    { "help", no_argument, NULL, 'h' },
		{},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:vVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			*cfg_path = optarg;
			break;
		case 'v':
			*verbose = true;
			break;
		case 'V':
			printf("caelumd %s\n", CAELUM_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		p_err("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct daemon d = {
		.sig_fd = -1, .stats_fd = -1, .pinlock = { .bpffs_fd = -1, .cgroup_fd = -1 }
	};
	const char *cfg_path = NULL;
	bool verbose = false;
	struct verr e = {};
	int rc;

	log_init("caelumd", false, false);
	rc = parse_args(argc, argv, &cfg_path, &verbose);
	if (rc)
		return rc;
	log_init("caelumd", verbose, false);
	log_libbpf_init();
	if (geteuid() != 0) {
		p_err("caelumd must run as root (it loads BPF programs and manages cgroups)");
		return EXIT_NOPERM;
	}
	/* Sockets and state files are created private (the socket's mode is set at bind). */
	umask(077);
	/* A unit's default soft limit (1024) is not enough for the listeners plus a reserve. */
	fd_limit_raise();
	cfg_path = config_path(cfg_path);
	if (config_load(cfg_path, &d.cfg, &e) || config_resolve(&d.cfg, &e))
		return print_verr(&e, "invalid configuration");
	d.started_ns = time_now_ns();
	warn_modes(&d.cfg);
	rc = setup_dirs(&d);
	if (!rc)
		rc = setup_registry(&d);
	if (!rc)
		rc = setup_events(&d);
	if (!rc)
		rc = setup_bpf(&d);
	if (!rc)
		rc = setup_loop(&d);
	if (!rc)
		rc = api_start(&d);
	if (!rc && hosts_setup(&d))
		rc = EXIT_FAIL;
	if (!rc) {
		struct json_object *ev = event_new(d.ev, "daemon_started", "changed");

		json_object_object_add(ev, "pid", json_object_new_int(getpid()));
		events_emit(d.ev, ev);
		p_info("caelumd %s ready: host %s, %zu services, %zu port entries, socket %s/caelumd.sock",
		       CAELUM_VERSION, d.cfg.host, registry_state(d.reg)->n_svcs, d.policy.entries,
		       d.cfg.runtime_dir);
		/* Loading a large registry parses it whole (json-c trees, copies): give the
		 * freed heap back before settling down. */
		malloc_trim(0);
		notify_ready(d.policy.registry_rev, registry_state(d.reg)->n_svcs);
		rc = loop_run(d.loop, TICK_MS, on_tick, &d) ? EXIT_FAIL : 0;
	}
	daemon_close(&d);
	return rc;
}
