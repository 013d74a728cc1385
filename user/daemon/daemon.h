/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelumd's state, shared by its core (apply.c), its composition root (caelumd.c) and the
 * daemon-side parts (status, resources, databases, verify, health, credentials,
 * policyguard). Handlers and transports never see it (handlers.h, transport.h). */
#ifndef CAELUM_DAEMON_H
#define CAELUM_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "applylog.h"
#include "bpfpin.h"
#include "components.h"
#include "config.h"
#include "events.h"
#include "loop.h"
#include "pinlock.h"
#include "policyguard.h"
#include "ports_user.h"
#include "reserved_ports.h"
#include "registry.h"
#include "services.h"
#include "token.h"

struct agg;
struct cgfollow;
struct cred_watch;
struct connect;
struct cpu;
struct db_rt;
struct devices;
struct ringbuf_consumer;
struct tasks;
struct transports;

/*
 * The reload in progress (reload.c): its new config waits here until the registry revision
 * it committed is in the model, then both are put in force together. Reloads asked
 * meanwhile are queued into one follow-up (again); their callers wait in next_waiters.
 */
#define RELOAD_PENDING 1
struct hreload;
struct reload_state {
	bool running;		   /* from its start to its callers' answers */
	bool again;		   /* asked again meanwhile: one more reload after this one */
	bool installed;		   /* its config is in force (d->cfg) */
	int apply_err;		   /* the apply that installed it */
	struct config *cfg;	   /* the new config while its commit is pending, else NULL */
	struct reg_commit *commit; /* that commit, NULL when none is pending */
	struct hreload *waiters, *next_waiters;
	uint64_t started_ns;
};

struct policy_info {
	uint64_t registry_rev; /* revision last pushed to the kernel */
	size_t entries, reserved, managed;
	uint64_t applied_ns;
	uint64_t apply_ns; /* how long the last apply took */
};

struct daemon {
	struct config cfg;
	struct registry *reg;
	struct bpf_env env;
	struct pinlock pinlock; /* bpffs and cgroup_root, held for the daemon's life (pinlock.c) */
	/* The enforcement paths (components.c); ports is required, so never NULL after
	 * startup, and also holds the maps every program shares (events, config, services). */
	struct components comps;
	struct ports *ports;
	struct cgfollow *cgfollow; /* services identified by an existing cgroup (cgfollow.c) */
	struct db_rt *dbs;	   /* runtime of every registered database (databases.c) */
	size_t n_dbs;
	struct db_watch *db_watch;     /* name re-resolution, host addresses (databases.c) */
	struct cred_watch *cred_watch; /* credential files as last seen (credentials.c) */
	/* self-verification (verify.c) */
	char verify_probe_cgroup[4096], verify_tasks_cgroup[4096];
	uint64_t verify_probe_cgid, verify_tasks_cgid;
	struct json_object *last_verify;
	uint64_t last_verify_ns, last_integrity_ns;
	uint64_t probe_cgid; /* internal cgroup the probes run in */
	char probe_cgroup[4096];
	bool controller[3]; /* cgroup v2 cpu, memory, pids usable below <cgroup_root>/caelum */
	uint64_t last_cred_check_ns;
	struct reg_claim canary; /* the self-test port's claim once verify_setup ran, else {0} */
	struct svcs svcs;
	struct events *ev;
	struct ringbuf_consumer *ring; /* cm_events, mapped while records flow */
	/* mapping it failed: not polled until ring_retry_at_ns (0: polled) */
	uint64_t ring_retry_at_ns, ring_backoff_ns;
	/* Control socket, HTTP API, MCP, peers (transports.c); they see the handlers'
	 * context (handlers.h), never this. */
	struct transports *transports;
	char token[TOKEN_LEN + 1]; /* the API token (token.c) */
	int stats_fd;		   /* BPF_ENABLE_STATS while open ("bpf_stats": true), else -1 */
	struct loop *loop;
	int sig_fd;
	uint64_t started_ns;
	struct policy_info policy;
	struct policy_guard guard; /* what the last apply left in the kernel (policyguard.c) */
	/* Registry changes reach the kernel through the registry's watch (on_registry_change):
	 * whoever made them, the handlers included; the outcome per revision is in applied.
	 * A reload's own revision is applied once, with its config (reload.c). */
	struct apply_log applied;
	struct reload_state reload;
	/* daemon_apply, set by main: the integrity repair (policyguard.c) applies through it
	 * instead of calling up into caelumd.c. */
	int (*apply)(struct daemon *d, const char *why);
	/* services_dir/databases_dir could not be committed (the shared registry was away):
	 * retried from the tick until it is, one commit in flight at a time (resync_commit). */
	bool resync_pending;
	struct reg_commit *resync_commit;
	uint64_t last_registry_check_ns;
	struct json_object *registry_seen; /* backend counters already turned into events */
	struct hosts *hosts;		   /* machine registry (etcd backend only; hosts.c) */
	uint64_t kstats_reported[4];	   /* kernel loss counters already turned into events */
	struct agg *agg;
	uint64_t last_flush_ns;
	uint64_t flush_errors; /* cm_agg_flush runs that failed */
	size_t entries_high;   /* registry entries at most since the heap was last trimmed */
	uint64_t last_loss_check_ns;
};

/* What the components see of the daemon (component.h). */
static inline void daemon_comp_env(struct daemon *d, struct comp_env *env)
{
	*env = (struct comp_env){ &d->cfg,  &d->env, d->ev,
				  &d->svcs, d->reg,  d->canary.service ? &d->canary : NULL };
}

/* Optional components' state: NULL when unavailable (components_error says why). */
static inline struct devices *daemon_devices(const struct daemon *d)
{
	return components_self(&d->comps, CAELUM_COMP_DEVICES);
}

static inline struct tasks *daemon_tasks(const struct daemon *d)
{
	return components_self(&d->comps, CAELUM_COMP_TASKS);
}

static inline struct cpu *daemon_cpu(const struct daemon *d)
{
	return components_self(&d->comps, CAELUM_COMP_CPU);
}

static inline void *daemon_bandwidth(const struct daemon *d)
{
	return components_self(&d->comps, CAELUM_COMP_BANDWIDTH);
}

static inline struct connect *daemon_connect(const struct daemon *d)
{
	return components_self(&d->comps, CAELUM_COMP_DATABASES);
}

/* Push registry + config to the kernel (cgroups, cm_services, port table, modes). */
int daemon_apply(struct daemon *d, const char *why);
/* A reload's config nc put in force (copied into d->cfg, d->reload.installed set) and
 * everything applied from the model, recorded for the model's revision: config and registry
 * change together. 0 or -errno (the apply's). */
int daemon_apply_config(struct daemon *d, const struct config *nc);
/*
 * Reload (reload.c): re-read config, services_dir and databases_dir, validate all, apply
 * all or change nothing. w: who waits for the outcome (NULL: nobody, a SIGHUP). 0 or -errno:
 * ended now (every reason in e; w is not called); RELOAD_PENDING: w->done runs later on the
 * loop, exactly once unless daemon_reload_cancel(d, w) first. A reload asked while one runs
 * is queued (the next one reads the files once the running one ended).
 */
int daemon_reload(struct daemon *d, struct hreload *w, struct verr *e);
/* w's caller went away: it is not called (the reload itself goes on). */
void daemon_reload_cancel(struct daemon *d, struct hreload *w);
/* caelumd stops: the pending reload's continuation will not run, its callers not answered. */
void daemon_reload_abort(struct daemon *d);
/* The reload_rejected event with every reason in e. */
void daemon_reload_rejected(struct daemon *d, const struct verr *e);
/* services_dir and databases_dir committed as they are now, waiting for the outcome
 * (startup, before the loop serves anyone). 0 or -errno with every reason in e. */
int daemon_commit_dirs(struct daemon *d, struct verr *e);
/* From the tick while resync_pending: that commit, submitted without waiting (at most one
 * in flight, none while a reload runs); an unavailable registry leaves it pending. */
void daemon_resync(struct daemon *d);
/* The registry's watcher (ctx: the daemon): apply what the delta changed, record the
 * outcome for its revision in d->applied. */
void daemon_on_registry_change(void *ctx, const struct reg_state *st, const struct reg_delta *dl);
/* Kernel loss counters already reported (<state_dir>/kernel_losses.json), and their
 * increases since turned into events_lost events. */
void daemon_losses_load(struct daemon *d);
void daemon_report_losses(struct daemon *d);
/* Resource components (resources.c). */
int resources_setup(struct daemon *d);
int resources_apply(struct daemon *d);
struct json_object *resources_json(struct daemon *d);
struct json_object *resources_service_json(struct daemon *d, const struct reg_service *s);

/* This host's use by the services it runs (cgroup populated). */
struct host_use {
	size_t running;		   /* services running here */
	int64_t cpus_used_milli;   /* measured: the sum of their cpu_usage over cpu_window_s
				    * (milli-CPUs); -1 when services run but none is measured
				    * (no cpu component), 0 when none runs */
	int64_t memory_used_bytes; /* measured: the sum of their cgroups' memory.current;
				    * -1 when none has the memory controller, 0 when none runs */
	int64_t cpus_alloc_milli;  /* what their reservations ask: milli-CPUs */
	int64_t memory_alloc_mb;   /* and MiB */
};
/* Fill u (O(services); reads one cgroup file per running service). */
void resources_host_use(struct daemon *d, struct host_use *u);
/* Per dimension: how it is enforced on this host. */
struct json_object *resources_enforcement_json(struct daemon *d);
/* How a task budget is enforced here, for run's output; *kills: a whole process dies. */
const char *resources_tasks_note(struct daemon *d, bool *kills);

/* The status document (caelumctl status, later the API and MCP). */
int status_collect(struct daemon *d, struct json_object **out);
/* Sum of a per-CPU kernel counter (CAELUM_STAT_*). */
uint64_t daemon_kstat(const struct daemon *d, int idx);

#endif /* CAELUM_DAEMON_H */
