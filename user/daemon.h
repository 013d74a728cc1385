/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelumd's state, shared by the event loop (caelumd.c) and the handlers (handlers.c). */
#ifndef CAELUM_DAEMON_H
#define CAELUM_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "applylog.h"
#include "bpfpin.h"
#include "config.h"
#include "events.h"
#include "loop.h"
#include "pinlock.h"
#include "policyguard.h"
#include "ports.h"
#include "reserved_ports.h"
#include "registry.h"
#include "services.h"

struct agg;
struct cgfollow;
struct cred_watch;
struct connect;
struct cpu;
struct db_rt;
struct devices;
struct ring_buffer;
struct tasks;
struct rpc_server;
struct http;
struct api;
struct mcp;
struct mcp_http;
struct peers;

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
	struct ports *ports;
	struct cgfollow *cgfollow; /* services identified by an existing cgroup (cgfollow.c) */
	/* Optional components: NULL when unavailable on this kernel (comp_error says why). */
	struct devices *devices;
	struct tasks *tasks;
	struct cpu *cpu;
	struct connect *connect;
	struct db_rt *dbs; /* runtime of every registered database (databases.c) */
	size_t n_dbs;
	struct db_watch *db_watch; /* name re-resolution, host addresses (databases.c) */
	struct cred_watch *cred_watch; /* credential files as last seen (credentials.c) */
	/* self-verification (verify.c) */
	char verify_probe_cgroup[4096], verify_tasks_cgroup[4096];
	uint64_t verify_probe_cgid, verify_tasks_cgid;
	struct json_object *last_verify;
	uint64_t last_verify_ns, last_integrity_ns;
	uint64_t probe_cgid; /* internal cgroup the probes run in */
	char probe_cgroup[4096];
	char comp_error[CAELUM_COMP_MAX][256];
	bool controller[3]; /* cgroup v2 cpu, memory, pids usable below <cgroup_root>/caelum */
	uint64_t last_sample_ns, last_scan_ns, last_cred_check_ns;
	struct svcs svcs;
	struct events *ev;
	struct ring_buffer *rb;
	struct rpc_server *rpc;
	struct http *http; /* dashboard/API and MCP listeners (http.c) */
	struct api *api; /* HTTP API state: SSE streams (api.c) */
	struct mcp *mcp; /* the MCP dispatcher and its sessions (mcp.c) */
	struct mcp_http *mcp_http; /* MCP over Streamable HTTP and WebSocket (mcp_http.c) */
	struct peers *peers; /* MCP peers this host pushes its events to (peers.c) */
	char token[65]; /* the API token (token.c) */
	int stats_fd; /* BPF_ENABLE_STATS while open ("bpf_stats": true), else -1 */
	struct loop *loop;
	int sig_fd;
	uint64_t started_ns;
	struct policy_info policy;
	struct reserved_ports_info resv; /* ip_local_reserved_ports after the last apply */
	struct policy_guard guard; /* what the last apply left in the kernel (policyguard.c) */
	/* Registry changes reach the kernel through the registry's watch (on_registry_change):
	 * whoever made them, the handlers included; the outcome per revision is in applied.
	 * A reload defers it to apply once, after the config changed too. */
	struct apply_log applied;
	bool defer_apply;
	/* services_dir/databases_dir could not be committed (the shared registry was away):
	 * retried from the tick until it is. */
	bool resync_pending;
	uint64_t last_registry_check_ns;
	struct json_object *registry_seen; /* backend counters already turned into events */
	struct hosts *hosts; /* machine registry (etcd backend only; hosts.c) */
	uint64_t kstats_reported[4]; /* kernel loss counters already turned into events */
	struct agg *agg;
	uint64_t last_flush_ns;
	uint64_t flush_errors; /* cm_agg_flush runs that failed */
	uint64_t last_loss_check_ns;
};

/* Push registry + config to the kernel (cgroups, cm_services, port table, modes). */
int daemon_apply(struct daemon *d, const char *why);
/* Re-read config and services_dir, validate all, apply atomically or change nothing. */
int daemon_reload(struct daemon *d, struct verr *e);
/* Resource components (resources.c). */
int resources_setup(struct daemon *d);
int resources_apply(struct daemon *d);
void resources_tick(struct daemon *d, uint64_t now);
struct json_object *resources_json(struct daemon *d);
struct json_object *resources_service_json(struct daemon *d, const struct reg_service *s);
void resources_status(struct daemon *d, struct json_object *components);
/* Per dimension: how it is enforced on this host. */
struct json_object *resources_enforcement_json(struct daemon *d);
/* How a task budget is enforced here, for run's output; *kills: a whole process dies. */
const char *resources_tasks_note(struct daemon *d, bool *kills);
void resources_close(struct daemon *d);

/* The status document (caelumctl status, later the API and MCP). */
int status_collect(struct daemon *d, struct json_object **out);
/* Sum of a per-CPU kernel counter (CAELUM_STAT_*). */
uint64_t daemon_kstat(const struct daemon *d, int idx);

#endif /* CAELUM_DAEMON_H */
