/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one set of request handlers. Every transport (control socket, HTTP API, /metrics, MCP
 * over HTTP, WebSocket and the stdio bridge) parses its framing, calls handlers_call() with
 * the same struct handler_ctx, and renders the result or the error; no transport holds
 * logic of its own.
 *
 * A handler sees only its context: the registry, events, service cgroups, the config and
 * the apply log, plus the callbacks in struct handler_ops for what only the daemon can do
 * (reload, the status document, a verification run, the resources and databases views).
 * It never sees struct daemon, and nothing here calls back into caelumd.c: the composition
 * root fills the ops. Unit tests build a context of their own (tests/unit/test_handlers.c).
 */
#ifndef CAELUM_HANDLERS_H
#define CAELUM_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <sys/types.h>
#include <sysexits.h>

#include "events.h"

struct apply_log;
struct config;
struct db_rt;
struct registry;
struct reg_service;
struct svcs;
struct verr;

/* Outcome codes, shared with caelumctl: 0, 1 for a failure, and sysexits(3) for the rest
 * (/usr/include/sysexits.h): a malformed argument or field is EX_USAGE. */
#define EXIT_OK		 0
#define EXIT_FAIL	 1
#define EXIT_USAGE	 EX_USAGE	/* 64 */
#define EXIT_UNAVAILABLE EX_UNAVAILABLE /* 69 */
#define EXIT_NOPERM	 EX_NOPERM	/* 77 */
#define EXIT_CONFIG	 EX_CONFIG	/* 78 */

struct herr {
	int exit; /* EXIT_* */
	char message[512];
	struct json_object *errors; /* array of strings, or NULL */
	bool unknown_method;	    /* JSON-RPC -32601 */
	bool not_found;		    /* the named object does not exist (HTTP 404) */
	/* Set on success too: the registry revision the call committed (and saw applied, or
	 * failed to), 0 when it committed nothing. Results do not carry it, so that what
	 * users see stays as it was; a transport may report it. */
	uint64_t revision;
};

/* What a streaming method (events.follow) asks the transport to deliver after the reply. */
struct hstream {
	bool follow;
	char type[64];
	char service[64];
	char host[256];
	struct event_filter filter; /* points into type/service above */
};

struct caller {
	uid_t uid;
	pid_t pid;
	const char *transport; /* "socket", ... */
};

/* A caller waiting for a reload (a pending `reload` call): owned by the caller, linked by
 * the daemon until done runs. done: err 0 or -errno with every reason in e (borrowed for the
 * call: several callers may share it); port_entries: policy entries after it. */
struct hreload {
	void (*done)(struct hreload *w, int err, struct verr *e, size_t port_entries);
	struct hreload *next; /* the daemon's */
};

/*
 * What handlers ask of the daemon, each called with handler_ctx.owner. A NULL op makes the
 * methods that need it answer EXIT_UNAVAILABLE ("... is not available here").
 */
struct handler_ops {
	/* Re-read config, services_dir and databases_dir; apply all or change nothing. 0, or
	 * -errno with every reason in e, answered now (*port_entries: policy entries after
	 * it); or 1 (pending: the registry commits, or another reload runs first): w->done runs
	 * later on the loop's thread, exactly once unless reload_cancel(owner, w) first. */
	int (*reload)(void *owner, struct hreload *w, struct verr *e, size_t *port_entries);
	void (*reload_cancel)(void *owner, struct hreload *w);
	/* The status document (caelumctl status, /api/v1/status, get_status). 0 or -errno. */
	int (*status)(void *owner, struct json_object **out);
	/* Run the self-verification now; its report (new reference). */
	struct json_object *(*verify)(void *owner);
	/* The resources view; one service's part of it (new references). */
	struct json_object *(*resources)(void *owner);
	struct json_object *(*service_resources)(void *owner, const struct reg_service *s);
	/* How a task budget is enforced here; *kills: a whole process dies. */
	const char *(*tasks_note)(void *owner, bool *kills);
	/* Databases: every one, one (NULL: none of that name), its runtime (NULL: none). */
	struct json_object *(*databases)(void *owner);
	struct json_object *(*database)(void *owner, const char *name);
	const struct db_rt *(*database_rt)(void *owner, const char *name);
	/* Look a database's name up again, off the loop. 0, -ENOENT or -errno;
	 * *resolutions: its lookup count before. */
	int (*database_resolve)(void *owner, const char *name, uint64_t *resolutions);
	/* The API token changed (token.rotate wrote it to ctx->token): tell the listeners. */
	void (*token_changed)(void *owner, const char *token);
	/* The machine registry: every host; the hosts that run a service (new references,
	 * NULL without one: the backend is not etcd). hosts.c */
	struct json_object *(*hosts)(void *owner);
	struct json_object *(*service_where)(void *owner, const char *service);
};

/* A handler's whole view of caelumd: borrowed, valid while handlers are called. */
struct handler_ctx {
	const struct config *cfg;	 /* reload replaces its contents, never the pointer */
	struct registry *reg;		 /* the model; mutations commit through it */
	struct events *ev;		 /* events_emit(), events_query() */
	struct svcs *svcs;		 /* services' cgroups and runtime (services.h) */
	const struct apply_log *applied; /* the kernel apply's outcome per revision */
	const char *probe_cgroup;	 /* the internal cgroup probes run in ("" when none) */
	char *token;			 /* the API token, TOKEN_LEN + 1 bytes ("" when none) */
	const struct handler_ops *ops;
	void *owner;
};

/*
 * Call method with params (an object or NULL; borrowed). who says which transport asks.
 * 0: *result set (new reference). Otherwise -1 and err filled (err->errors owned by the
 * caller). Either way err->revision is the revision a mutation committed. stream: where
 * events.follow asks for the live events, NULL when the transport cannot stream.
 * A mutation waits here for its commit (polling the registry's watch, bounded): for callers
 * that cannot keep a request open; a transport uses handlers_call_async.
 */
int handlers_call(const struct handler_ctx *hx, const char *method, struct json_object *params,
		  const struct caller *who, struct json_object **result, struct herr *err,
		  struct hstream *stream);

/*
 * A call that waits for its commit (a mutation: the registry backend answers later). The
 * reply comes on the loop's thread, exactly once unless the call is cancelled first: rc 0
 * and result (new reference, the callee's), or -1 and err (err->errors the callee's; err
 * valid during the call). err->revision: what the call committed, as handlers_call says.
 */
#define HANDLERS_PENDING 1
struct hcall;
typedef void (*handlers_reply_fn)(void *arg, int rc, struct json_object *result, struct herr *err);
struct hreply {
	handlers_reply_fn fn;
	void *arg;
};

/*
 * handlers_call, for a transport that can answer later: 0 or -1 as handlers_call (answered
 * now: read-only methods, refusals, no-ops), or HANDLERS_PENDING: *pending names the call,
 * reply->fn runs later with the same (rc, result, err) handlers_call would have given.
 * params is held by the call as long as it needs it.
 */
int handlers_call_async(const struct handler_ctx *hx, const char *method,
			struct json_object *params, const struct caller *who,
			struct json_object **result, struct herr *err, struct hstream *stream,
			const struct hreply *reply, struct hcall **pending);
/* The caller went away: reply->fn of this pending call never runs and the call is freed.
 * Its commit may still land (a retry of it is a no-op). NULL is fine. */
void handlers_cancel(struct hcall *pending);

#endif /* CAELUM_HANDLERS_H */
