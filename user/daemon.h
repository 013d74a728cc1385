/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelumd's state, shared by the event loop (caelumd.c) and the handlers (handlers.c). */
#ifndef CAELUM_DAEMON_H
#define CAELUM_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "bpfpin.h"
#include "config.h"
#include "events.h"
#include "loop.h"
#include "ports.h"
#include "registry.h"
#include "services.h"

struct agg;
struct ring_buffer;
struct rpc_server;

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
	struct ports *ports;
	struct svcs svcs;
	struct events *ev;
	struct ring_buffer *rb;
	struct rpc_server *rpc;
	struct loop *loop;
	int sig_fd;
	uint64_t started_ns;
	struct policy_info policy;
	/* Registry changes reach the kernel through the registry's watcher (on_registry_change):
	 * whoever made them, the handlers included. A reload defers it to apply once. */
	const char *change_reason;
	bool defer_apply;
	int apply_err;
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
/* The status document (caelumctl status, later the API and MCP). */
int status_collect(struct daemon *d, struct json_object **out);
/* Sum of a per-CPU kernel counter (CAELUM_STAT_*). */
uint64_t daemon_kstat(const struct daemon *d, int idx);

#endif /* CAELUM_DAEMON_H */
