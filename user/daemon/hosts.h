/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The machine registry and discovery (etcd backend only), under the registry prefix:
 *
 *   hosts/<host>               {"name", "addresses", "dashboard_url", "mcp_url", "capacity",
 *                               "components", "version", "started_at", "updated_at",
 *                               "usage", "health", "last_verification"}
 *   endpoints/<service>/<host> {"service", "host", "ports", "health", "since"}
 *
 * Both are written by the host they describe under its session lease (etcd.c): a host that
 * stops keeping it alive loses them after lease_ttl_s, and the others see it `lost`. The
 * host key is rewritten at most every HOSTS_PUBLISH_S seconds; an endpoint when its
 * service starts, stops or changes health. Reads never call etcd: they come from the keys
 * the registry's watch delivered (registry_etcd_keys).
 */
#ifndef CAELUM_HOSTS_H
#define CAELUM_HOSTS_H

#include <stdint.h>

struct daemon;
struct json_object;

#define HOSTS_PUBLISH_S 10

/* Before anything is published or attached: -EEXIST (message printed) when the registry
 * holds a live record of our host name written by another caelumd (another machine, or
 * another state_dir here); 0 otherwise, and always with the file backend or a stale view. */
int hosts_check_name(struct daemon *d);
/* Start the session (lease of lease_ttl_s) and publish this host; nothing with the file
 * backend. 0 or -errno. */
int hosts_setup(struct daemon *d);
/* Publish what changed (once a second from the daemon's tick). */
void hosts_tick(struct daemon *d, uint64_t now_ns);
void hosts_close(struct daemon *d);
/* [{"name", "state": "up"|"lost", "last_seen", ...its record}] sorted by name (new
 * reference), or NULL with the file backend. */
struct json_object *hosts_list_json(struct daemon *d);
/* [{"host", "state", "ports", "health", "since"}]: where service runs (new reference). */
struct json_object *hosts_where_json(struct daemon *d, const char *service);

#endif /* CAELUM_HOSTS_H */
