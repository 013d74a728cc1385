/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Databases in caelumd: each registered database resolved to its addresses, pushed to
 * the connect programs with every service's declarations, and watched for reachability.
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
	struct db_addr addrs[DB_MAX_ADDRS];
	size_t n_addrs;
	char resolve_error[256];
	int reachable; /* -1 unknown, 0, 1 */
	char detail[256]; /* of the last probe */
	uint64_t last_probe_ns;
	struct probe *inflight;
};

int databases_setup(struct daemon *d);
/* Resolve (all when force, else only new or changed addresses) and sync the kernel maps. */
int databases_apply(struct daemon *d, bool force_resolve);
void databases_tick(struct daemon *d, uint64_t now);
struct json_object *databases_json(struct daemon *d);
struct json_object *database_json(struct daemon *d, const char *name);
const struct db_rt *databases_find(struct daemon *d, const char *name);
/* Name of a database id (for events), or NULL. */
const char *databases_name_of(struct daemon *d, uint32_t id);
void databases_status(struct daemon *d, struct json_object *components);
void databases_close(struct daemon *d);

#endif /* CAELUM_DATABASES_H */
