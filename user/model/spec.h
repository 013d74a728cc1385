/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Service specs: {"name": "alpha", "ports": ["8100/tcp", "8101/udp", "9000"]}, one file per
 * service (services_dir/NAME.json) or applied through caelumctl. Protocol defaults to tcp;
 * "A-B" reserves a range.
 */
#ifndef CAELUM_SPEC_H
#define CAELUM_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "capacity.h"
#include "jsonv.h"
#include "names.h"
#include "portrange.h"

#define SPEC_MAX_PORT_ITEMS    4096 /* entries in "ports" (each may be a range) */
#define SPEC_MAX_DBS	       64
#define SPEC_MAX_CREDS	       64
#define SPEC_MAX_ARGV	       64
#define SPEC_HEALTH_USER_MAX   32  /* useradd(8)'s limit on a login name */
#define SPEC_HEALTH_TARGET_MAX 511 /* a probe target (probe.h PROBE_TARGET_MAX - 1) */
#define CRED_ENV_MAX	       127
#define CRED_PATH_MAX	       1023

/* "databases": [{"name": "analytics-db", "max_connections": 10}] */
struct spec_db {
	char name[SERVICE_NAME_MAX + 1];
	int64_t max_connections; /* 0 = no cap */
};

enum cred_kind { CRED_ENV = 1, CRED_FILE };

/* "credentials": [{"env": "TOKEN"}, {"file": "/etc/x.key", "mode": "0600", "owner": "root"}] */
struct spec_cred {
	enum cred_kind kind;
	char env[CRED_ENV_MAX + 1];
	char file[CRED_PATH_MAX + 1];
	int mode;	   /* loosest mode allowed, -1 = any */
	int64_t owner_uid; /* -1 = any */
	char owner[64];	   /* as written */
};

enum health_kind { HEALTH_NONE, HEALTH_TCP, HEALTH_HTTP, HEALTH_EXEC };

/* "health": {"tcp": "127.0.0.1:8100"} | {"http": URL} | {"exec": [argv]}, + timing */
struct spec_health {
	enum health_kind kind;
	char *target; /* TCP host:port or HTTP URL (at most SPEC_HEALTH_TARGET_MAX bytes); else NULL
		       */
	char **argv;  /* EXEC: NULL-terminated, at most SPEC_MAX_ARGV; else NULL */
	/* EXEC: who runs it, a user name or a decimal uid (SPEC_HEALTH_USER_MAX bytes at most);
	 * NULL: "nobody". Never root's capabilities: see probe.h, probe_spec.run_as. */
	char *user;
	int64_t interval_s, timeout_s, failures_before_critical;
};

/* "cgroup": an existing cgroup, relative to cgroup_root, that identifies the service
 * instead of <cgroup_root>/caelum/<name> (include/caelum/cgfollow.h). */
#define SPEC_CGROUP_MAX 96

struct service_spec {
	char name[SERVICE_NAME_MAX + 1];
	char cgroup[SPEC_CGROUP_MAX]; /* "" when the service lives in caelum/<name> */
	struct port_range *ports;     /* proto is IPPROTO_TCP or IPPROTO_UDP */
	size_t n_ports;
	char *source;		   /* the file it came from, NULL when applied through the API */
	struct spec_resources res; /* all zero when the spec has no "resources" */
	struct spec_db *dbs;
	size_t n_dbs;
	struct spec_cred *creds;
	size_t n_creds;
	struct spec_health health;
};

/* spec_ext.c: "databases", "credentials", "health". */
void spec_parse_databases(struct json_object *v, const char *file, struct service_spec *s,
			  struct verr *e);
void spec_parse_credentials(struct json_object *v, const char *file, struct service_spec *s,
			    struct verr *e);
void spec_parse_health(struct json_object *v, const char *file, struct service_spec *s,
		       struct verr *e);
void spec_ext_to_json(const struct service_spec *s, struct json_object *obj);
int spec_ext_copy(struct service_spec *dst, const struct service_spec *src);
void spec_ext_free(struct service_spec *s);
/* "0640" */
void cred_mode_fmt(int mode, char *buf, size_t len);

int spec_from_json(struct json_object *obj, const char *file, struct service_spec *s,
		   struct verr *e);
/* Load services_dir/NAME.json; the name inside must match NAME. */
int spec_load_file(const char *path, struct service_spec *s, struct verr *e);
/* Every *.json in dir, sorted by name, with cross-service conflicts reported. A missing
 * dir is an empty set. */
int spec_load_dir(const char *dir, struct service_spec **out, size_t *n, struct verr *e);
/* Conflicts between specs: same port/proto claimed twice (within or across services). */
int spec_check_conflicts(const struct service_spec *specs, size_t n, struct verr *e);
/* {"name": ..., "ports": [...]} (new reference). */
struct json_object *spec_to_json(const struct service_spec *s);
void spec_free(struct service_spec *s);
void specs_free(struct service_spec *specs, size_t n);
int spec_copy(struct service_spec *dst, const struct service_spec *src);
bool spec_has_resources(const struct service_spec *s);
/* Number of (port, proto) pairs the spec reserves. */
size_t spec_port_count(const struct service_spec *s);

#endif /* CAELUM_SPEC_H */
