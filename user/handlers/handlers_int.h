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

struct call {
	const struct handler_ctx *x;
	struct json_object *params;
	const struct caller *who;
	struct json_object *result;
	struct herr *err;
	struct hstream *stream;
	uint64_t commit_before; /* registry_last_commit() at hc_change_begin */
	uint64_t committed;	/* the revision the call committed, 0 when none */
};

typedef int (*handler_fn)(struct call *c);

struct handler_entry {
	const char *name;
	handler_fn fn;
};
/* Method tables, NULL-terminated: handlers.c's own and these. */
extern const struct handler_entry handlers_view[];

bool hc_port_managed(const struct config *cfg, uint16_t port, uint8_t proto);

/* Fail the call: -1 with err filled. */
int hc_fail(struct call *c, int exit_code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The named object does not exist: EXIT_FAIL, not_found set. */
int hc_not_found(struct call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Refusal with every reason: message = first, errors = all (e is freed). */
int hc_fail_verr(struct call *c, int exit_code, struct verr *e);
/* Exit code for a failed registry operation: EXIT_UNAVAILABLE when the backend could not be
 * reached (nothing was applied), EXIT_FAIL for -ENOENT, else EXIT_CONFIG (refused). */
int hc_registry_exit(int err);
int hc_params_check(struct call *c, const char *const *allowed);
struct json_object *hc_param(struct call *c, const char *key);
int hc_param_str(struct call *c, const char *key, bool required, const char **out);
int hc_param_service(struct call *c, const char *key, const char **out);
/* Optional "host": *out NULL when absent, else an RFC 1123 host name (EXIT_USAGE, 2,
 * naming the value, otherwise). 0 or -1 (c's error set). */
int hc_param_host(struct call *c, const char **out);
int hc_param_proto(struct call *c, uint8_t *proto);
int hc_param_port(struct call *c, uint16_t *port);
void hc_fmt_port(char *buf, size_t len, uint16_t port, uint8_t proto);
/* Live holders of (port, proto) outside svc's cgroup (any holder if svc is NULL) that
 * would make its bind fail (sock_blocks_bind(): with SO_REUSEADDR, or plain), into e.
 * 0 or -EBUSY. */
int hc_foreign_holders(const struct handler_ctx *x, const char *svc, uint16_t port, uint8_t proto,
		       bool plain, struct verr *e, const char *label);
/* Bracket a registry mutation: hc_change_end reports how the revision the call committed
 * (if any) was applied to the kernel; handlers_call reports it in herr.revision. */
void hc_change_begin(struct call *c);
int hc_change_end(struct call *c);

/* A daemon op the context lacks: EXIT_UNAVAILABLE naming what. */
int hc_unavailable(struct call *c, const char *what);

int h_run_check(struct call *c);
int h_run_started(struct call *c);
int h_db_list(struct call *c);
int h_db_show(struct call *c);
int h_db_apply(struct call *c);
int h_db_delete(struct call *c);
int h_db_resolve(struct call *c);
/* handlers_hosts.c: the machine registry and discovery (etcd backend) */
int h_host_list(struct call *c);
int h_host_show(struct call *c);
int h_service_where(struct call *c);

#endif /* CAELUM_HANDLERS_INT_H */
