/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Databases in caelumd: each registered database resolved to its addresses, pushed to
 * the connect programs with every service's declarations, and watched for reachability.
 * Names are looked up again every "resolve_interval_s" and on request (dbresolve.c, off
 * the loop); a different answer swaps the database's kernel entries (new in, then old out)
 * and emits db_address_changed; a failed lookup keeps the last addresses and emits
 * db_resolve_failed (severity warning) once until it resolves again. The host's interface
 * addresses (hostaddr.c) are kept in cm_db_host; a change re-syncs the database keys.
 * Caelum's own probes run in the internal cgroup ".probe", which is declared for every
 * database so that "unmanaged": "deny" never blocks them.
 */
#ifndef CAELUM_DATABASES_H
#define CAELUM_DATABASES_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "dbspec.h"

struct daemon;
struct probe;

#define PROBE_CGROUP ".probe"

struct db_rt {
	char name[DB_NAME_MAX + 1];
	uint32_t id;
	char host[DB_HOST_MAX + 1];
	uint16_t port;
	struct db_addr addrs[DB_MAX_ADDRS]; /* last known: a failed lookup never empties them */
	size_t n_addrs;
	struct db_addr prev_addrs[DB_MAX_ADDRS]; /* before the last change */
	size_t n_prev_addrs;
	uint64_t addrs_changed_ns; /* CLOCK_REALTIME of the last change, 0 = never */
	uint64_t last_resolve_ns;  /* CLOCK_MONOTONIC of the last lookup started */
	uint64_t resolutions;	   /* lookups finished (db.resolve callers wait for it to move) */
	bool resolve_again;	   /* a request came while a lookup was in flight */
	char shadowed_by[DB_NAME_MAX + 1]; /* a database with the same LOCAL key owns it */
	char resolve_error[256]; /* of the last lookup; the addresses are then the last known */
	int reachable;		 /* -1 unknown, 0, 1 */
	char detail[256];	 /* of the last probe */
	uint64_t last_probe_ns;
	struct probe *inflight;
};

/* The .probe cgroup, name resolution and host addresses; registers the runtime as the
 * databases component's source (its sync op writes the maps from it). 0 or -errno. */
int databases_setup(struct daemon *d);
/*
 * The runtime table follows the registry (before the components sync): entries of new
 * databases or new addresses are resolved now; with force_resolve (a reload) every name is
 * looked up again off the loop. Writes no map. 0 or -ENOMEM.
 */
int databases_follow(struct daemon *d, bool force_resolve);
void databases_tick(struct daemon *d, uint64_t now);
/* Look the database's name up again now (off the loop); the result arrives in a later tick
 * and bumps "resolutions". 0, -ENOENT, or -errno. *resolutions = the count before. */
int databases_resolve(struct daemon *d, const char *name, uint64_t *resolutions);
struct json_object *databases_json(struct daemon *d);
struct json_object *database_json(struct daemon *d, const char *name);
const struct db_rt *databases_find(struct daemon *d, const char *name);
/* Name of a database id (for events), or NULL. */
const char *databases_name_of(struct daemon *d, uint32_t id);
void databases_close(struct daemon *d);

#endif /* CAELUM_DATABASES_H */
