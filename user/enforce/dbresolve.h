/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Database names resolved off the event loop: getaddrinfo_a(3) with SIGEV_NONE, polled from
 * the tick. A lookup belongs to a database name, not to a table entry, so the runtime table
 * may be rebuilt (reload, apply, delete) while lookups are in flight; a result for a name
 * that is gone is dropped. getaddrinfo gives no TTL, so the interval is the only clock.
 */
#ifndef CAELUM_DBRESOLVE_H
#define CAELUM_DBRESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbspec.h"

struct dbresolve;

/* A finished lookup: err 0 with n >= 1 addresses, or -errno with why set. */
struct dbresolve_result {
	char name[DB_NAME_MAX + 1];
	char host[DB_HOST_MAX + 1]; /* as looked up */
	uint16_t port;
	int err;
	char why[256];
	struct db_addr addrs[DB_MAX_ADDRS];
	size_t n;
	uint32_t trigger; /* as passed to dbresolve_start */
};
typedef void (*dbresolve_fn)(void *ctx, const struct dbresolve_result *r);

int dbresolve_new(struct dbresolve **out);
/* Free, cancelling lookups (waits for those glibc cannot cancel). */
void dbresolve_free(struct dbresolve *r);
/* Start resolving host:port for database name. -EALREADY when one is in flight for it. */
int dbresolve_start(struct dbresolve *r, const char *name, const char *host, uint16_t port,
		    uint32_t trigger);
bool dbresolve_pending(const struct dbresolve *r, const char *name);
/* Hand every finished lookup to fn, without blocking. */
void dbresolve_poll(struct dbresolve *r, dbresolve_fn fn, void *ctx);

#endif /* CAELUM_DBRESOLVE_H */
