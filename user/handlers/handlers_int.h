/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the handler files (handlers*.c): the call context and parameter helpers. */
#ifndef CAELUM_HANDLERS_INT_H
#define CAELUM_HANDLERS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "applylog.h"
#include "config.h"
#include "events.h"
#include "handlers.h"
#include "jsonv.h"
#include "registry.h"
#include "services.h"

#define P "params"

/* One call; on the heap, since a mutation's continuation outlives handlers_call. */
struct hcall {
	const struct handler_ctx *x;
	struct json_object *params; /* a reference, held as long as the call */
	const struct caller *who;   /* NULL once the call is pending */
	struct json_object *result;
	struct herr *err; /* &own_err */
	struct hstream *stream;
	uint64_t committed; /* the revision the call committed, 0 when none */
	/* a commit in flight: what the continuation needs */
	struct reg_async as;
	struct reg_commit *commit;
	int (*then)(struct hcall *c); /* the commit succeeded: events and the result */
	/* Optional, before then or the failure: HC_PENDING when the call submitted another
	 * commit instead (port alloc after a lost race), -1 when it failed the call (err
	 * filled), 0 to go on as without it. It counts its own retries against HC_RETRIES. */
	int (*retry)(struct hcall *c, int err, uint64_t rev);
	int retries;
	char name[256];
	char host[256]; /* a host-only reservation's host, "" for every host */
	uint16_t port;
	uint8_t proto;
	struct hreload reload; /* a reload's caller, linked by the daemon while reloading */
	bool reloading;
	struct hreply reply; /* pending for a transport */
	bool sync, done;     /* pending for handlers_call, which waits */
	int rc;
	struct herr own_err;
};
typedef int (*handler_fn)(struct hcall *c);
#define HC_RETRIES 64

struct handler_entry {
	const char *name;
	handler_fn fn;
};
/* Method tables, NULL-terminated: handlers.c's own and these. */
extern const struct handler_entry handlers_view[];

bool hc_port_managed(const struct config *cfg, uint16_t port, uint8_t proto);

/* Fail the call: -1 with err filled. */
int hc_fail(struct hcall *c, int exit_code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The named object does not exist: EXIT_FAIL, not_found set. */
int hc_not_found(struct hcall *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Refusal with every reason: message = first, errors = all (e is freed). */
int hc_fail_verr(struct hcall *c, int exit_code, struct verr *e);
/* Exit code for a failed registry operation: EXIT_UNAVAILABLE when the backend could not be
 * reached (nothing was applied), EXIT_FAIL for -ENOENT, else EXIT_CONFIG (refused). */
int hc_registry_exit(int err);
int hc_params_check(struct hcall *c, const char *const *allowed);
struct json_object *hc_param(struct hcall *c, const char *key);
int hc_param_str(struct hcall *c, const char *key, bool required, const char **out);
int hc_param_service(struct hcall *c, const char *key, const char **out);
/* Optional "host": *out NULL when absent, else an RFC 1123 host name (EXIT_USAGE, 64,
 * naming the value, otherwise). 0 or -1 (c's error set). */
int hc_param_host(struct hcall *c, const char **out);
int hc_param_proto(struct hcall *c, uint8_t *proto);
int hc_param_port(struct hcall *c, uint16_t *port);
void hc_fmt_port(char *buf, size_t len, uint16_t port, uint8_t proto);
/* Live holders of (port, proto) outside svc's cgroup (any holder if svc is NULL) that
 * would make its bind fail (sock_blocks_bind(): with SO_REUSEADDR, or plain), into e.
 * 0 or -EBUSY. */
int hc_foreign_holders(const struct handler_ctx *x, const char *svc, uint16_t port, uint8_t proto,
		       bool plain, struct verr *e, const char *label);
/*
 * A registry mutation: the handler calls registry_X_async(..., hc_async(c), &c->commit, &e),
 * fails the call itself on a refusal (< 0), and passes the rest here with then, which emits
 * the events and builds the result once the commit is in the model. Returns then(c) at once
 * when nothing needed committing, else HC_PENDING: the continuation checks the apply log
 * for the revision (the kernel side of it) and answers the call.
 */
#define HC_PENDING 1
const struct reg_async *hc_async(struct hcall *c);
int hc_commit(struct hcall *c, int rc, int (*then)(struct hcall *c));
/* A daemon op the context lacks: EXIT_UNAVAILABLE naming what. */
int hc_unavailable(struct hcall *c, const char *what);

int h_run_check(struct hcall *c);
int h_run_started(struct hcall *c);
int h_db_list(struct hcall *c);
int h_db_show(struct hcall *c);
int h_db_apply(struct hcall *c);
int h_db_delete(struct hcall *c);
int h_db_resolve(struct hcall *c);
/* handlers_hosts.c: the machine registry and discovery (etcd backend) */
int h_host_list(struct hcall *c);
int h_host_show(struct hcall *c);
int h_service_where(struct hcall *c);

#endif /* CAELUM_HANDLERS_INT_H */
