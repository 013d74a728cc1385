/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The registry: the truth about services and port reservations.
 *
 * Model
 *   services/<name>            {"name", "ports", "origin": "file"|"api", "source"}
 *   reservations/<port>/<proto> {"service", "origin": "runtime"}
 *   gpus/<id>                  {"service"}: which service a GPU is assigned to
 *   databases/<name>           {"name", "kind", "address", "unmanaged", "origin", "source"}
 *   A service's ports come from its spec; runtime reservations (caelumctl port reserve,
 *   later the API and MCP) are separate keys so that a reload of services_dir never loses
 *   them. A (port, proto) has at most one owner across both.
 *
 * Backends
 *   The model is stored in a key-value backend with etcd's semantics: every key has a
 *   mod_revision, writes are transactions guarded by per-key revision compares
 *   (compare-and-swap), and the store has one global revision. The file backend keeps it
 *   in <state_dir>/registry.json; an etcd backend implements the same ops.
 *
 * Changes
 *   Every operation builds the complete prospective state, validates it (conflicts name
 *   both owners), and commits the difference in one transaction. Watchers are told after
 *   each successful commit, whoever made it.
 */
#ifndef CAELUM_REGISTRY_H
#define CAELUM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbspec.h"
#include "jsonv.h"
#include "spec.h"

/* ---- backend interface ---- */

#define KV_REV_ANY UINT64_MAX /* compare nothing */
#define KV_REV_ABSENT 0 /* compare: key must not exist */

struct kv {
	char *key;
	char *value; /* JSON text */
	uint64_t mod_rev;
};

enum kv_op_type { KV_PUT, KV_DEL };

struct kv_op {
	enum kv_op_type type;
	const char *key;
	const char *value; /* PUT only */
	uint64_t expect_rev; /* KV_REV_ANY, KV_REV_ABSENT or the key's mod_revision */
};

struct registry_backend;

struct registry_backend_ops {
	const char *name;
	/* All keys under prefix (sorted), and the store revision. */
	int (*range)(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n,
		     uint64_t *rev);
	/* All compares hold -> all ops applied atomically, 0 and *rev = new revision.
	 * A compare fails -> nothing applied, -ECANCELED and *failed = op index. */
	int (*txn)(struct registry_backend *b, const struct kv_op *ops, size_t n, uint64_t *rev,
		   size_t *failed);
	/* Something to poll for changes made by others (-1: nobody else writes). */
	int (*watch_fd)(struct registry_backend *b);
	void (*free)(struct registry_backend *b);
};

struct registry_backend {
	const struct registry_backend_ops *ops;
};

void kvs_free(struct kv *kvs, size_t n);

/* File backend: <dir>/registry.json, exclusive lock on <dir>/registry.lock. */
int registry_file_open(const char *dir, struct registry_backend **out);

/* ---- model ---- */

enum reg_origin { ORIGIN_FILE, ORIGIN_API, ORIGIN_RUNTIME };

struct reg_service {
	struct service_spec spec;
	enum reg_origin origin; /* ORIGIN_FILE or ORIGIN_API */
	uint64_t mod_rev;
};

struct reg_resv {
	uint16_t port;
	uint8_t proto;
	char service[SERVICE_NAME_MAX + 1];
	uint64_t mod_rev;
};

/* A GPU assigned to a service; stable across restarts (stored in the registry). */
struct reg_gpu {
	char gpu[GPU_ID_MAX + 1];
	char service[SERVICE_NAME_MAX + 1];
	uint64_t mod_rev;
};

struct reg_db {
	struct db_spec spec;
	enum reg_origin origin; /* ORIGIN_FILE or ORIGIN_API */
	uint64_t mod_rev;
};

struct reg_state {
	struct reg_service *svcs; /* sorted by name */
	size_t n_svcs;
	struct reg_db *dbs; /* sorted by name */
	size_t n_dbs;
	struct reg_resv *resv; /* runtime reservations, sorted by (port, proto) */
	size_t n_resv;
	struct reg_gpu *gpus; /* GPU assignments, sorted by GPU id */
	size_t n_gpus;
	uint64_t rev;
};

/* One effective reservation: from a spec or made at runtime. */
struct reg_claim {
	uint16_t port;
	uint8_t proto;
	enum reg_origin origin; /* ORIGIN_FILE/ORIGIN_API: from the spec, ORIGIN_RUNTIME */
	const char *service;
};

struct registry;

typedef void (*registry_watch_cb)(void *ctx, const struct reg_state *st);

int registry_open(struct registry_backend *b, struct registry **out, struct verr *e);
/* Capacity for admission and GPU assignment (borrowed; NULL = no admission). */
void registry_set_capacity(struct registry *r, const struct capacity *cap);
/* The GPU's service, or NULL. */
const char *registry_gpu_owner(const struct reg_state *st, const char *gpu);
/* Would name fit next to every other registered service? (caelumctl run) */
int registry_admit_service(const struct registry *r, const char *name, struct verr *e);
void registry_close(struct registry *r);
const struct reg_state *registry_state(const struct registry *r);
const char *registry_backend_name(const struct registry *r);
void registry_watch(struct registry *r, registry_watch_cb cb, void *ctx);

const struct reg_service *registry_service(const struct registry *r, const char *name);
/* Every (port, proto) reserved, sorted; *out malloc'd, names point into the state. */
int registry_claims(const struct reg_state *st, struct reg_claim **out, size_t *n);
/* Owner of (port, proto): its service name or NULL. */
const char *registry_owner(const struct registry *r, uint16_t port, uint8_t proto,
			   enum reg_origin *origin);
const char *origin_name(enum reg_origin o);

/* Operations. 0, or -EINVAL (refused: reasons in e), -ENOENT, -EEXIST, -errno. */
int registry_service_apply(struct registry *r, const struct service_spec *s,
			   enum reg_origin origin, struct verr *e);
int registry_service_delete(struct registry *r, const char *name, struct verr *e);
/* Replace every ORIGIN_FILE service with specs, keeping file databases (tests). */
int registry_sync_files(struct registry *r, const struct service_spec *specs, size_t n,
			struct verr *e);
/* Replace every ORIGIN_FILE service and database (a reload), atomically. */
int registry_sync_all(struct registry *r, const struct service_spec *specs, size_t n,
		      const struct db_spec *dbs, size_t n_dbs, struct verr *e);
const struct reg_db *registry_db(const struct registry *r, const char *name);
int registry_db_apply(struct registry *r, const struct db_spec *d, enum reg_origin origin,
		      struct verr *e);
int registry_db_delete(struct registry *r, const char *name, struct verr *e);
int registry_reserve(struct registry *r, uint16_t port, uint8_t proto, const char *service,
		     struct verr *e);
int registry_release(struct registry *r, uint16_t port, uint8_t proto, struct verr *e);

/* Internal (registry_admit.c): admission of new against capacity, and GPU assignment of
 * new (stable: a service keeps the GPUs it had in old when they are still free). */
int registry_admit(const struct capacity *cap, const struct reg_state *old,
		   struct reg_state *new, struct verr *e);
int reg_gpu_cmp(const void *a, const void *b);

#endif /* CAELUM_REGISTRY_H */
