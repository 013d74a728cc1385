/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Database objects: {"name": "analytics-db", "kind": "postgresql", "address": "db.local:5432",
 * "unmanaged": "allow"} — one file per database in databases_dir (NAME.json) or applied
 * through caelumctl db apply. The address's host is resolved to all its addresses (IPv4 and
 * IPv6) when applied, on every reload, every "resolve_interval_s" seconds (default 10;
 * getaddrinfo reports no TTL, so a shorter DNS TTL cannot be honoured) and on request
 * (caelumctl db resolve NAME). "localhost" and names under ".localhost" are 127.0.0.1 and
 * ::1 (RFC 6761 section 6.3), whatever /etc/hosts says; IP literals need no lookup.
 */
#ifndef CAELUM_DBSPEC_H
#define CAELUM_DBSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "jsonv.h"

#define DB_NAME_MAX		      63
#define DB_HOST_MAX		      253
#define DB_MAX_ADDRS		      16
#define DB_RESOLVE_INTERVAL_DEFAULT_S 10
#define DB_RESOLVE_INTERVAL_MAX_S     86400

struct db_spec {
	char name[DB_NAME_MAX + 1];
	int kind; /* enum db_kind (dbprobe.h) */
	char host[DB_HOST_MAX + 1];
	uint16_t port;
	bool unmanaged_allow; /* processes outside any service may connect */
	uint32_t
		resolve_interval_s; /* a name is resolved again this often ("resolve_interval_s") */
	char *source;		    /* file, or NULL when applied through the API */
};

/* "host:port" or "[v6addr]:port"; why gets the reason on -EINVAL. */
int db_address_parse(const char *s, char *host, size_t hlen, uint16_t *port, char *why,
		     size_t whylen);
int dbspec_from_json(struct json_object *obj, const char *file, struct db_spec *d, struct verr *e);
int dbspec_load_dir(const char *dir, struct db_spec **out, size_t *n, struct verr *e);
struct json_object *dbspec_to_json(const struct db_spec *d);
int dbspec_copy(struct db_spec *dst, const struct db_spec *src);
void dbspec_free(struct db_spec *d);
void dbspecs_free(struct db_spec *d, size_t n);

struct db_addr {
	struct sockaddr_storage sa;
	socklen_t len;
};
/* Every address of the database (static, else getaddrinfo for TCP): 0 with *n >= 1, or
 * -EHOSTUNREACH with why set (out is then untouched past *n = 0). Blocks on DNS. */
int db_resolve(const struct db_spec *d, struct db_addr *out, size_t max, size_t *n, char *why,
	       size_t whylen);
/* Addresses known without a lookup: true for an IP literal and for "localhost" and names
 * under ".localhost" (RFC 6761 6.3: 127.0.0.1 and ::1), false for a name to look up. */
bool db_resolve_static(const char *host, uint16_t port, struct db_addr *out, size_t max, size_t *n);
bool db_host_is_localhost(const char *host);
struct addrinfo;
/* The deduplicated addresses of a getaddrinfo result, at most max. */
void db_addrs_from_ai(const struct addrinfo *ai, struct db_addr *out, size_t max, size_t *n);
/* Same set of addresses, in any order. */
bool db_addrs_same(const struct db_addr *a, size_t na, const struct db_addr *b, size_t nb);
/* "127.0.0.1:5432" or "[::1]:5432" */
void db_addr_fmt(const struct db_addr *a, char *buf, size_t len);
/* Stable 32-bit id of a database name for the kernel maps (never 0). */
uint32_t db_id_of(const char *name);

#endif /* CAELUM_DBSPEC_H */
