// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumd: loads the enforcement programs, keeps their maps equal to the registry, and
 * turns what the kernel reports into events. Startup is a mandatory check: any failure
 * to validate, load or attach ends the process with the reason. It never enforces
 * nothing silently. Killing it leaves enforcement in place (pinned links and maps).
 *
 * This file is the composition root: main builds the parts (config, registry, events,
 * components, the core in apply.c, the handlers' context, the transports), wires them
 * (the registry's watcher, the loop's descriptors and tick, the handlers' daemon ops) and
 * runs the loop. No module calls back into it.
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
#include "cgfollow_user.h"
#include "log.h"
#include "notify.h"
#include "netns_user.h"
#include "pinlock.h"
#include "ringbuf.h"
#include "transports.h"
#include "version.h"

#define TICK_MS	      250 /* aggregation windows are flushed this often */
#define LOSS_CHECK_NS 1000000000ULL
#define CRED_CHECK_NS (5ULL * 1000000000ULL)
/* cm_events is unmapped after this long without a record: mapped, a 4 MiB ring is 8 MiB of
 * RSS (user/lib/ringbuf.h); mapping it again costs well under a millisecond. */
#define RING_IDLE_NS  (2ULL * 1000000000ULL)
#define RING_RETRY_NS 1000000000ULL /* first wait after the ring could not be mapped */

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
	uint64_t now = time_now_ns();

	/* Mapping failed (ENOMEM): the fd stays readable, so stop polling it for a while (1 s,
	 * doubling up to 32 s) rather than spin. The records wait in the ring. */
	if (ringbuf_consumer_drain(d->ring, now) >= 0) {
		d->ring_backoff_ns = 0;
	} else if (!loop_mod(d->loop, ringbuf_consumer_fd(d->ring), 0)) {
		d->ring_backoff_ns = d->ring_backoff_ns ? d->ring_backoff_ns * 2 : RING_RETRY_NS;
		if (d->ring_backoff_ns > 32 * RING_RETRY_NS)
			d->ring_backoff_ns = 32 * RING_RETRY_NS;
		d->ring_retry_at_ns = now + d->ring_backoff_ns;
	}
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

			/* the outcome is logged and notified by the reload itself */
			p_info("SIGHUP: reloading %s", d->cfg.path);
			daemon_reload(d, NULL, &e);
			verr_free(&e);
		} else {
			p_info("signal %d: stopping (enforcement stays in place)", si.ssi_signo);
			notify_stopping();
			loop_stop(d->loop);
		}
	}
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
	/* the follow-ups were just written (not while mapping the ring is backing off) */
	if (res.flushed && !d->ring_retry_at_ns)
		on_ringbuf(d, EPOLLIN);
}

/* New entries the registry cannot read (user/registry/rejects.h): one event naming them. */
static void registry_rejects_report(struct daemon *d, struct json_object *st)
{
	struct json_object *now = NULL, *was = NULL, *rej = NULL, *ev;

	json_object_object_get_ex(st, "rejections", &now);
	json_object_object_get_ex(d->registry_seen, "rejections", &was);
	if (!now || json_object_get_uint64(now) <= (was ? json_object_get_uint64(was) : 0))
		return;
	json_object_object_get_ex(st, "rejected", &rej);
	ev = event_new(d->ev, "registry_entry_rejected", "refused");
	json_object_object_add(ev, "entries", json_object_get(rej));
	events_emit(d->ev, ev);
}

/* Backend recoveries (counters of registry_status_json) become one event each. */
static void registry_report(struct daemon *d, struct json_object *st)
{
	static const char *const counters[] = { "relists",	  "compactions",
						"watch_restarts", "leader_changes",
						"token_renewals", "lease_losses",
						"failovers",	  NULL };

	for (size_t i = 0; counters[i]; i++) {
		struct json_object *now = NULL, *was = NULL, *ev;

		json_object_object_get_ex(st, counters[i], &now);
		json_object_object_get_ex(d->registry_seen, counters[i], &was);
		if (!now || json_object_get_uint64(now) <= (was ? json_object_get_uint64(was) : 0))
			continue;
		ev = event_new(d->ev, "registry_recovered", counters[i]);
		json_object_object_add(ev, "backend",
				       json_object_new_string(registry_backend_name(d->reg)));
		json_object_object_add(ev, "count",
				       json_object_new_uint64(json_object_get_uint64(now)));
		events_emit(d->ev, ev);
	}
	registry_rejects_report(d, st);
	json_object_put(d->registry_seen);
	d->registry_seen = st;
}

/* Once a second: the backend's periodic work, recoveries reported, a pending commit of
 * services_dir retried (submitted: the loop does not wait for it). */
static void registry_tick_daemon(struct daemon *d, uint64_t now)
{
	if (now - d->last_registry_check_ns < 1000000000ULL)
		return;
	d->last_registry_check_ns = now;
	registry_tick(d->reg);
	registry_report(d, registry_status_json(d->reg));
	hosts_tick(d, now);
	daemon_resync(d);
}

/* Registry entries released since the last trim worth giving the heap back for. */
#define TRIM_AFTER_RELEASED 1024

/*
 * Give freed heap back to the kernel once many registry entries were released (a release
 * of 2,000 reservations frees their keys, values and model entries, scattered over the
 * heap: without a trim the pages stay resident until reused). malloc_trim(0) walks the free
 * lists only: a few milliseconds, at most once per tick and only after such a drop.
 */
static void heap_trim_check(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	size_t n = st->n_resv + st->n_svcs + st->n_dbs;

	if (n > d->entries_high)
		d->entries_high = n;
	if (d->entries_high - n < TRIM_AFTER_RELEASED)
		return;
	malloc_trim(0);
	d->entries_high = n;
}

static void on_tick(void *ctx)
{
	struct daemon *d = ctx;
	uint64_t now = time_now_ns();
	struct comp_env env;

	if (now - d->last_flush_ns >= (uint64_t)TICK_MS * 1000000ULL) {
		d->last_flush_ns = now;
		flush_windows(d);
	}
	if (now - d->last_loss_check_ns >= LOSS_CHECK_NS) {
		d->last_loss_check_ns = now;
		daemon_report_losses(d);
	}
	ringbuf_consumer_tick(d->ring, now);
	if (d->ring_retry_at_ns && now >= d->ring_retry_at_ns &&
	    !loop_mod(d->loop, ringbuf_consumer_fd(d->ring), EPOLLIN))
		d->ring_retry_at_ns = 0;
	svcs_poll_followed(&d->svcs, on_service_change, d);
	daemon_comp_env(d, &env);
	components_tick(&d->comps, &env, now);
	databases_tick(d, now);
	health_tick(d, now);
	verify_tick(d, now);
	if (now - d->last_cred_check_ns >= CRED_CHECK_NS) {
		d->last_cred_check_ns = now;
		credentials_watch(d);
	}
	transports_tick(d->transports, now);
	registry_tick_daemon(d, now);
	probe_reap();
	heap_trim_check(d);
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

/* Does service run on this host (its cgroup has processes)? For per-host admission. */
static bool runs_here(void *ctx, const char *service)
{
	const struct svc_rt *rt = svcs_find(&((struct daemon *)ctx)->svcs, service);

	return rt && rt->running;
}

static int setup_registry(struct daemon *d)
{
	struct registry_backend *b;
	struct verr e = {};
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
	/* The etcd backend answers within timeout_ms; the registry's own bound is a backstop. */
	if (d->cfg.registry.etcd && d->cfg.registry.timeout_ms * 2 > 10000)
		registry_set_answer_timeout(d->reg, d->cfg.registry.timeout_ms * 2);
	registry_set_host(d->reg, d->cfg.host);
	/* shared by several hosts: each admits what it runs */
	if (registry_etcd_client(registry_backend_of(d->reg)))
		registry_set_placement(d->reg,
				       &(struct reg_placement){ .runs_here = runs_here, .ctx = d });
	/* Before the loop serves anyone: READY=1 comes with the files in force (bounded by the
	 * backend's budget); an unavailable registry is retried from the tick without waiting. */
	err = daemon_commit_dirs(d, &e);
	if (registry_err_unavailable(err)) {
		/* The shared registry is away: enforce what we have, commit the files later. */
		p_warn("services_dir and databases_dir not committed yet: the %s registry is "
		       "unavailable; retrying",
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

/*
 * Before anything is made or changed (state, registry, journal, pins): one caelumd per pin
 * set (pinlock.h). cgroup_root exists already and is locked first, so that a second caelumd
 * on it creates nothing, not even its bpffs directory; then bpffs is mounted and made, and
 * locked.
 */
static int setup_lock(struct daemon *d)
{
	if (pinlock_take_cgroup(&d->pinlock, d->cfg.cgroup_root))
		return EXIT_FAIL;
	if (bpf_env_open(&d->env, d->cfg.bpffs, d->cfg.cgroup_root, d->cfg.ringbuf_bytes))
		return EXIT_FAIL;
	return pinlock_take_bpffs(&d->pinlock, d->env.root) ? EXIT_FAIL : 0;
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
	struct comp_env env;
	int err;

	daemon_comp_env(d, &env);
	if (components_load(&d->comps, &env))
		return EXIT_FAIL;
	d->ports = components_self(&d->comps, CAELUM_COMP_PORTS);
	if (agg_load(&d->env, &d->agg))
		return EXIT_FAIL;
	if (cgfollow_setup(&d->env, &d->cgfollow))
		return EXIT_FAIL;
	if (svcs_init(&d->svcs, d->cfg.cgroup_root, d->cfg.cg2_mount, d->cfg.root_level))
		return EXIT_FAIL;
	svcs_set_map(&d->svcs, ports_map_fd(d->ports, "cm_services"));
	if (resources_setup(d) || databases_setup(d) || verify_setup(d))
		return EXIT_FAIL;
	/* Fill the maps before attaching: the programs never see an empty policy. */
	if (daemon_apply(d, "startup"))
		return EXIT_FAIL;
	if (components_attach_all(&d->comps, &env))
		return EXIT_FAIL;
	err = verify_attached(d);
	if (err)
		return err;
	apply_log_record(&d->applied, registry_state(d->reg)->rev, 0);
	registry_watch(d->reg, daemon_on_registry_change, d);
	stats_setup(d);
	return 0;
}

static int setup_loop(struct daemon *d)
{
	if (loop_new(&d->loop) || signals_open(d)) {
		p_err("failed to set up the event loop: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (ringbuf_consumer_open(&d->ring, ports_map_fd(d->ports, "cm_events"), on_record, d->ev,
				  RING_IDLE_NS)) {
		p_err("failed to open ring buffer 'cm_events': %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (loop_add(d->loop, ringbuf_consumer_fd(d->ring), EPOLLIN, on_ringbuf, d) ||
	    loop_add(d->loop, d->sig_fd, EPOLLIN, on_signal, d) ||
	    loop_add(d->loop, d->svcs.inotify_fd, EPOLLIN, on_inotify, d) ||
	    loop_add(d->loop, registry_watch_fd(d->reg), EPOLLIN, on_registry_watch, d))
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
			if (cap->gpus[g].dev[i].major == major &&
			    cap->gpus[g].dev[i].minor == minor)
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

	daemon_losses_load(d);
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
			       cfg->comp_mode[i] == CAELUM_MODE_AUDIT
				       ? "reported, not denied"
				       : "neither denied nor reported");
	}
	if (!any)
		p_warn("every component is off: caelumd enforces nothing");
}

/* ---- what the handlers may ask of the daemon (handlers.h) ---- */

static int op_reload(void *owner, struct hreload *w, struct verr *e, size_t *port_entries)
{
	struct daemon *d = owner;
	int rc = daemon_reload(d, w, e);

	*port_entries = d->policy.entries;
	return rc;
}

static void op_reload_cancel(void *owner, struct hreload *w)
{
	daemon_reload_cancel(owner, w);
}

static int op_status(void *owner, struct json_object **out)
{
	return status_collect(owner, out);
}

static struct json_object *op_verify(void *owner)
{
	return verify_now(owner);
}

static struct json_object *op_resources(void *owner)
{
	return resources_json(owner);
}

static struct json_object *op_service_resources(void *owner, const struct reg_service *s)
{
	return resources_service_json(owner, s);
}

static const char *op_tasks_note(void *owner, bool *kills)
{
	return resources_tasks_note(owner, kills);
}

static struct json_object *op_databases(void *owner)
{
	return databases_json(owner);
}

static struct json_object *op_database(void *owner, const char *name)
{
	return database_json(owner, name);
}

static const struct db_rt *op_database_rt(void *owner, const char *name)
{
	return databases_find(owner, name);
}

static int op_database_resolve(void *owner, const char *name, uint64_t *resolutions)
{
	return databases_resolve(owner, name, resolutions);
}

static void op_token_changed(void *owner, const char *token)
{
	struct daemon *d = owner;

	transports_set_token(d->transports, token);
}

static struct json_object *op_hosts(void *owner)
{
	return hosts_list_json(owner);
}

static struct json_object *op_service_where(void *owner, const char *service)
{
	return hosts_where_json(owner, service);
}

static const struct handler_ops daemon_handler_ops = {
	.reload = op_reload,
	.reload_cancel = op_reload_cancel,
	.status = op_status,
	.verify = op_verify,
	.resources = op_resources,
	.service_resources = op_service_resources,
	.tasks_note = op_tasks_note,
	.databases = op_databases,
	.database = op_database,
	.database_rt = op_database_rt,
	.database_resolve = op_database_resolve,
	.token_changed = op_token_changed,
	.hosts = op_hosts,
	.service_where = op_service_where,
};

/* The handlers' context: the parts they use, and the ops above for the rest. */
static void setup_handlers(struct daemon *d, struct handler_ctx *hx)
{
	*hx = (struct handler_ctx){
		.cfg = &d->cfg,
		.reg = d->reg,
		.ev = d->ev,
		.svcs = &d->svcs,
		.applied = &d->applied,
		.probe_cgroup = d->probe_cgroup,
		.token = d->token,
		.ops = &daemon_handler_ops,
		.owner = d,
	};
}

static void daemon_close(struct daemon *d)
{
	if (d->transports)
		transports_stop(d->transports);
	daemon_reload_abort(d); /* before the registry, events and maps go */
	ringbuf_consumer_close(d->ring);
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
	agg_close(d->agg);
	cgfollow_close(d->cgfollow);
	components_close(&d->comps);
	d->ports = NULL;
	bpf_env_close(&d->env);
	pinlock_release(&d->pinlock);
	events_close(d->ev);
	hosts_close(d);
	registry_close(d->reg);
	json_object_put(d->registry_seen);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: caelumd [-c FILE] [-v]\n"
		"  -c, --config FILE  configuration (default: $CAELUM_CONFIG or %s)\n"
		"  -v, --verbose      debug messages, libbpf's included\n"
		"  -V, --version      print the version\n",
		CONFIG_DEFAULT_PATH);
}

static int parse_args(int argc, char **argv, const char **cfg_path, bool *verbose)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
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
		.sig_fd = -1,
		.stats_fd = -1,
		.pinlock = { .bpffs_fd = -1, .cgroup_fd = -1 },
		.apply = daemon_apply,
	};
	static struct transports transports;
	static struct handler_ctx hctx;
	const char *cfg_path = NULL;
	bool verbose = false;
	struct verr e = {};
	int rc;

	/* Allocations from 128 KiB up are mmap'd, always: glibc otherwise raises the threshold
	 * to the largest block freed so far (the snapshot's text at startup, megabytes), and
	 * later large arrays (tables, ranges) stay in the heap, resident after they are freed,
	 * and a calloc'd table is resident whole instead of where it is written. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
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
	rc = setup_lock(&d);
	if (!rc)
		rc = setup_dirs(&d);
	if (!rc)
		rc = setup_registry(&d);
	if (!rc && hosts_check_name(&d))
		rc = EXIT_CONFIG;
	if (!rc)
		rc = setup_events(&d);
	if (!rc)
		rc = setup_bpf(&d);
	if (!rc) {
		setup_handlers(&d, &hctx);
		rc = setup_loop(&d);
	}
	d.transports = &transports;
	if (!rc)
		rc = transports_start(&transports, &d.cfg, &hctx, d.ev, d.loop, d.token);
	if (!rc && hosts_setup(&d))
		rc = EXIT_FAIL;
	if (!rc) {
		struct json_object *ev = event_new(d.ev, "daemon_started", "changed");

		json_object_object_add(ev, "pid", json_object_new_int(getpid()));
		events_emit(d.ev, ev);
		p_info("caelumd %s ready: host %s, %zu services, %zu port entries, socket "
		       "%s/caelumd.sock",
		       CAELUM_VERSION, d.cfg.host, registry_state(d.reg)->n_svcs, d.policy.entries,
		       d.cfg.runtime_dir);
		/* Loading a large registry parses it whole (json-c trees, copies): give the
		 * freed heap back before settling down. */
		malloc_trim(0);
		notify_ready(d.policy.registry_rev, registry_state(d.reg)->n_svcs);
		rc = loop_run(d.loop, TICK_MS, on_tick, &d) ? EXIT_FAIL : 0;
		/* Only a daemon that said it started says it stopped. */
		events_emit(d.ev, event_new(d.ev, "daemon_stopped", "changed"));
	}
	daemon_close(&d);
	return rc;
}
