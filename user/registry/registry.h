/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The registry: the truth about services and port reservations.
 *
 * Model
 *   services/<name>            {"name", "ports", "origin": "file"|"api", "source"}
 *   reservations/<port>/<proto> {"service", "origin": "runtime"}: on every host
 *   hostreservations/<host>/<port>/<proto> {"service", "origin": "runtime"}: on <host> only
 *   portowners/<port>/<proto>  {"service", "host"?}: the guard every reservation of the
 *                              (port, proto) writes (see registry_reserve)
 *   gpus/<id>                  {"service"}: which service a GPU is assigned to
 *   databases/<name>           {"name", "kind", "address", "unmanaged", "origin", "source"}
 *   hostdatabases/<host>/<name> the same, on <host> only. A name is defined cluster-wide or
 *                              host-only (on any number of hosts), never both; a service's
 *                              "databases" name resolves to this host's definition
 *   A service's ports come from its spec; runtime reservations (caelumctl port reserve,
 *   later the API and MCP) are separate keys so that a reload of services_dir never loses
 *   them. A (port, proto) has at most one owner on a host: a spec or a cluster-wide
 *   reservation excludes every host-only reservation of another service, and two hosts
 *   may hold the same (port, proto) host-only for different services.
 *
 * Backends
 *   The model is stored in a key-value backend with etcd's semantics: every key has a
 *   mod_revision, writes are transactions guarded by per-key revision compares
 *   (compare-and-swap), and the store has one global revision. The file backend keeps it
 *   in <state_dir>/registry.json + registry.wal; an etcd backend implements the same ops.
 *
 * Changes
 *   An operation validates against the model (a reservation: one owner lookup; a service or
 *   database: the complete prospective state, conflicts naming both owners), and commits the
 *   difference in one transaction guarded by the keys' revisions. The model itself changes
 *   only through the backend's watch (registry_poll): the same path for our own commits and
 *   for anybody else's. Watchers are told what each batch of events changed (reg_delta).
 */
#ifndef CAELUM_REGISTRY_H
#define CAELUM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caelum/common.h"
#include "dbspec.h"
#include "jsonv.h"
#include "spec.h"

/* ---- backend interface ---- */

#define KV_REV_ANY    UINT64_MAX /* compare nothing */
#define KV_REV_ABSENT 0		 /* compare: key must not exist */

struct kv {
	char *key;
	char *value; /* JSON text */
	uint64_t mod_rev;
};

enum kv_op_type { KV_PUT, KV_DEL };

struct kv_op {
	enum kv_op_type type;
	const char *key;
	const char *value;   /* PUT only */
	uint64_t expect_rev; /* KV_REV_ANY, KV_REV_ABSENT or the key's mod_revision */
};

/* A committed change, as an etcd watch reports it (mvccpb.Event): value NULL for KV_DEL;
 * mod_rev is the revision of the transaction that made it. */
struct kv_event {
	enum kv_op_type type;
	char *key;
	char *value;
	uint64_t mod_rev;
};

struct registry_backend;

/*
 * A transaction's outcome, on the caller's thread: err 0 and rev = the revision it created;
 * -ECANCELED when a compare failed (nothing applied; failed = the op index, rev = the
 * store's revision when it was refused: the model shows the winner once it gets there);
 * -ETIMEDOUT/-EHOSTUNREACH when the store could not be reached or has no quorum; -errno.
 */
typedef void (*kv_txn_done_fn)(void *arg, int err, uint64_t rev, size_t failed);

/*
 * What a registry backend implements: etcd's KV and Watch services, reduced to what the
 * registry needs (etcd api/etcdserverpb/rpc.proto: Range, Txn with compares, Watch). The
 * file backend is registry_file.c; an etcd backend implements the same table. Calls return
 * 0 or -errno and never block for long: a transaction completes asynchronously.
 */
struct registry_backend_ops {
	const char *name;
	/* All keys under prefix (sorted) at one revision, returned in *rev. */
	int (*range)(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n,
		     uint64_t *rev);
	/* Start a transaction: all compares hold -> all ops applied atomically. ops are copied
	 * before it returns. 0: done(arg, ...) is called exactly once, from txn_reap on the
	 * caller's thread, within the backend's own time budget (see kv_txn_done_fn); -errno:
	 * nothing was started and done is never called. */
	int (*txn_submit)(struct registry_backend *b, const struct kv_op *ops, size_t n,
			  kv_txn_done_fn done, void *arg);
	/* Call done for every transaction that has completed. watch_fd is readable when one
	 * has; the registry calls it from registry_poll(). */
	void (*txn_reap)(struct registry_backend *b);
	/* Report every change with revision > from_rev through watch_read (-ESTALE: that
	 * history is gone, range again). */
	int (*watch)(struct registry_backend *b, uint64_t from_rev);
	/* Readable when watch_read has events. */
	int (*watch_fd)(struct registry_backend *b);
	/* The events queued so far, in revision order; *ev malloc'd (kv_events_free). */
	int (*watch_read)(struct registry_backend *b, struct kv_event **ev, size_t *n);
	/* Optional: periodic work on the caller's loop (the etcd backend's local copy). */
	void (*tick)(struct registry_backend *b);
	/* Optional: the backend's state for `status` (endpoints, revision, stale, counters). */
	struct json_object *(*status)(struct registry_backend *b);
	/* The transactions not answered yet may get done(-ESHUTDOWN) from here: their args
	 * must be valid until it returns. */
	void (*free)(struct registry_backend *b);
};

struct registry_backend {
	const struct registry_backend_ops *ops;
};

void kvs_free(struct kv *kvs, size_t n);
void kv_events_free(struct kv_event *ev, size_t n);

/* File backend: <dir>/registry.json (snapshot) + <dir>/registry.wal (log), exclusive lock on
 * <dir>/registry.lock. -EBUSY when another process holds it. */
int registry_file_open(const char *dir, struct registry_backend **out);
/* Fold the log into a new snapshot once it is larger than min_bytes and than the snapshot
 * (default 4 MiB; tests and benchmarks set it lower). b must be a file backend. */
void registry_file_set_compaction(struct registry_backend *b, size_t min_bytes);

/* etcd backend (registry_etcd.c): every key under rc->prefix; the local copy in
 * <state_dir>/registry-etcd.json. etcd unreachable at open: the local copy is served
 * (stale); without one, -EHOSTUNREACH. */
struct registry_cfg;
struct etcd;
int registry_etcd_open(const struct registry_cfg *rc, const char *state_dir,
		       struct registry_backend **out);
/* The etcd client and prefix of an etcd backend (NULL for another backend). */
struct etcd *registry_etcd_client(struct registry_backend *b);
const char *registry_etcd_prefix(struct registry_backend *b);
/* The keys under prefix (without the registry prefix) as last received by the watch: no
 * call to etcd. b must be an etcd backend. *out malloc'd (kvs_free). */
int registry_etcd_keys(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n);

/* A backend error that means "the shared store cannot be reached or has no quorum": the
 * operation was not applied anywhere (EXIT_UNAVAILABLE, HTTP 503). */
bool registry_err_unavailable(int err);

/* ---- model ---- */

enum reg_origin { ORIGIN_FILE, ORIGIN_API, ORIGIN_RUNTIME };

struct reg_service {
	struct service_spec spec;
	enum reg_origin origin; /* ORIGIN_FILE or ORIGIN_API */
	uint64_t mod_rev;
};

/* A runtime reservation: cluster-wide (host NULL) or on one host. */
struct reg_resv {
	uint16_t port;
	uint8_t proto;
	const char *host;    /* pooled; NULL: on every host (reservations/...) */
	const char *service; /* a pooled name, shared by every reservation of the service */
	uint64_t mod_rev;
};

/* The guard of a (port, proto): the mod_revision of portowners/<port>/<proto>. */
struct reg_guard {
	uint32_t slot; /* REG_SLOT */
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
	const char *host;	/* pooled; NULL: on every host (databases/...) */
	enum reg_origin origin; /* ORIGIN_FILE or ORIGIN_API */
	uint64_t mod_rev;
};

struct reg_state {
	struct reg_service *svcs; /* sorted by name */
	size_t n_svcs, cap_svcs;
	struct reg_db *dbs; /* sorted by name */
	size_t n_dbs, cap_dbs;
	/* runtime reservations of every host, sorted by (port, proto, host), the cluster-wide
	 * one (host NULL) first */
	struct reg_resv *resv;
	size_t n_resv, cap_resv;
	struct reg_guard *guards; /* sorted by slot */
	size_t n_guards, cap_guards;
	/* this host (registry_set_host; borrowed, NULL: none): its host-only reservations
	 * are the ones in force here */
	const char *self;
	struct reg_gpu *gpus; /* GPU assignments, sorted by GPU id */
	size_t n_gpus;
	uint64_t rev;
	/* (port, proto) slot -> 1 + index in svcs of the service whose spec declares it, 0 for
	 * none; rebuilt when services change (REG_SLOT() names a slot). NULL in copies. */
	uint32_t *spec_owner;
};

/* Services a registry may hold: the kernel's maps (CAELUM_MAX_SERVICES) less room for
 * Caelum's own cgroups (.probe, .verify-*). */
#define REG_MAX_SERVICES (CAELUM_MAX_SERVICES - 64)

/* Dense index of a (port, proto) pair: 0..REG_SLOTS-1. */
#define REG_SLOTS	      (65536 * 2)
#define REG_SLOT(port, proto) ((uint32_t)(port)*2 + ((proto) == 17 /* IPPROTO_UDP */))
#define REG_SLOT_PORT(slot)   ((uint16_t)((slot) / 2))
#define REG_SLOT_PROTO(slot)  ((uint8_t)(((slot)&1) ? 17 : 6))

/*
 * What one batch of watch events changed, for the components: the (port, proto) slots whose
 * owner may differ (REG_SLOT), and which other object kinds changed. A slot may repeat.
 */
struct reg_delta {
	uint64_t from_rev, rev; /* the model went from from_rev to rev */
	uint32_t *slots;
	size_t n_slots, cap_slots;
	bool services, dbs, gpus;
};

/* One effective reservation: from a spec or made at runtime. */
struct reg_claim {
	uint16_t port;
	uint8_t proto;
	enum reg_origin origin; /* ORIGIN_FILE/ORIGIN_API: from the spec, ORIGIN_RUNTIME */
	const char *service;
	const char *host; /* a host-only reservation's host; NULL: on every host */
};

struct registry;

/* Called after the model applied a batch of watch events: st is at delta->rev. */
typedef void (*registry_watch_cb)(void *ctx, const struct reg_state *st,
				  const struct reg_delta *delta);

int registry_open(struct registry_backend *b, struct registry **out, struct verr *e);
/* Capacity for admission and GPU assignment (borrowed; NULL = no admission). */
void registry_set_capacity(struct registry *r, const struct capacity *cap);
/*
 * Where services run, when the registry is shared by several hosts (etcd): a service is
 * registered on every host but runs on some, and admission stays per host, so only the
 * services runs_here() names (the ones this host runs) count against this host's capacity,
 * at a commit and in registry_admit_service(). Without a placement (one host, the file
 * backend) every registered service is this host's and counts.
 */
struct reg_placement {
	bool (*runs_here)(void *ctx, const char *service);
	void *ctx;
};
/* pl copied; NULL: every service counts. */
void registry_set_placement(struct registry *r, const struct reg_placement *pl);
/* This host's name (copied; at most 255 bytes): the host-only reservations of host are the
 * ones registry_claims(), registry_owner() and registry_slot_owner() see. */
void registry_set_host(struct registry *r, const char *host);
/* The GPU's service, or NULL. */
const char *registry_gpu_owner(const struct reg_state *st, const char *gpu);
/* Would name fit next to every other registered service (with a placement: every other one
 * that runs here)? (caelumctl run) 0 or -ENOSPC (the numbers in e). */
int registry_admit_service(const struct registry *r, const char *name, struct verr *e);
void registry_close(struct registry *r);
const struct reg_state *registry_state(const struct registry *r);
const char *registry_backend_name(const struct registry *r);
void registry_watch(struct registry *r, registry_watch_cb cb, void *ctx);
/*
 * The one way changes reach the model: read the backend's watch events, apply them to the
 * model (O(events)), call every watcher with the delta, take the backend's answers to
 * submitted commits, then run the continuations of the commits whose revision the model
 * has reached.
 * The daemon calls it when registry_watch_fd() is readable. 0 or -errno.
 */
int registry_poll(struct registry *r);
int registry_watch_fd(const struct registry *r);
/* Periodic work (the daemon's tick): a re-list that failed is retried, commits out of time
 * are answered, the backend ticks. */
void registry_tick(struct registry *r);
/* {"backend", ...the backend's status} (new reference). */
struct json_object *registry_status_json(const struct registry *r);
struct registry_backend *registry_backend_of(const struct registry *r);
/* Revision of the last transaction this registry committed (0: none yet). */
uint64_t registry_last_commit(const struct registry *r);
/* Slot's owner on this host by spec, cluster-wide or this host's reservation:
 * O(1) + O(log reservations). */
const char *registry_slot_owner(const struct reg_state *st, uint32_t slot);

const struct reg_service *registry_service(const struct registry *r, const char *name);
/* Every (port, proto) reserved on this host (specs, cluster-wide reservations, this host's
 * host-only ones), sorted; *out malloc'd, names point into the state. 0 or -ENOMEM. */
int registry_claims(const struct reg_state *st, struct reg_claim **out, size_t *n);
/* The same with every host's host-only reservations (host set), sorted by (port, proto,
 * host): what `port list` shows. */
int registry_claims_all(const struct reg_state *st, struct reg_claim **out, size_t *n);
/* Owner of (port, proto) on this host: its service name or NULL. */
const char *registry_owner(const struct registry *r, uint16_t port, uint8_t proto,
			   enum reg_origin *origin);
const char *origin_name(enum reg_origin o);

/*
 * Asynchronous commits. A mutation validates against the model and builds its transaction
 * at once (nothing blocks), then the backend runs it. Its continuation fn(arg, err, rev, e)
 * runs on the loop's thread, from registry_poll() or registry_tick(), exactly once (unless
 * cancelled): err 0 once the model has reached rev, the revision it committed (0: nothing
 * was committed: a lost race turned out to be ours); or -errno with every reason in e
 * (borrowed for the call): -EEXIST (the caught-up model names the winner of a lost compare),
 * -ECANCELED (changed concurrently: try again), -ETIMEDOUT/-EHOSTUNREACH (unavailable:
 * not confirmed: nothing changed here, but a request the store received may still commit
 * when it recovers), -ESHUTDOWN (registry_close).
 */
#define REG_PENDING 1
struct reg_commit;
typedef void (*registry_commit_fn)(void *arg, int err, uint64_t rev, struct verr *e);
struct reg_async {
	registry_commit_fn fn;
	void *arg;
};
/* The continuation will not run (its caller went away); the commit itself may still land. */
void registry_commit_cancel(struct reg_commit *c);
/* Poll the backend's watch until *done, which c's continuation sets: what a caller that
 * cannot answer later does after submitting c. The model follows the watch meanwhile, but
 * only c's continuation runs (bounded by c's deadlines); the others run from the next
 * registry_poll() or registry_tick(). */
void registry_wait(struct registry *r, struct reg_commit *c, const bool *done);
/* How long a commit waits for the backend's answer before it is reported -ETIMEDOUT (ms;
 * default 10000, the backend answers within its own budget before that). */
void registry_set_answer_timeout(struct registry *r, unsigned int ms);

/* Operations. 0, or -EINVAL (refused: reasons in e), -ENOENT, -EEXIST, -errno.
 * The plain forms wait for the outcome (polling the backend's watch): for startup (before
 * the loop serves anyone) and tests. The _async forms return 0 (nothing to commit), -errno (refused
 * now) or REG_PENDING (submitted: *out names it, as->fn runs later). */
int registry_service_apply(struct registry *r, const struct service_spec *s, enum reg_origin origin,
			   struct verr *e);
int registry_service_delete(struct registry *r, const char *name, struct verr *e);
/* Replace every ORIGIN_FILE service with specs, keeping file databases (tests). */
int registry_sync_files(struct registry *r, const struct service_spec *specs, size_t n,
			struct verr *e);
/* Replace every ORIGIN_FILE service and database (a reload), atomically. */
int registry_sync_all(struct registry *r, const struct service_spec *specs, size_t n,
		      const struct db_spec *dbs, size_t n_dbs, struct verr *e);
/*
 * The same without waiting (caelumd's reload and its commit of services_dir): specs and dbs
 * validated against the model (ownership, conflicts, admission against cap: borrowed until
 * the continuation ran or was cancelled; NULL: the registry's capacity) and the difference
 * submitted at once; they are copied, the caller frees its own. 0: nothing to change;
 * -errno: refused now (reasons in e); REG_PENDING: as->fn runs later. A lost compare (another
 * writer changed a key it compared) is validated again against the model caught up to the
 * store, and submitted anew (or refused with the new reasons, or 0 with rev 0 when nothing
 * is left to change), at most 8 times; then -ECANCELED.
 */
int registry_sync_all_async(struct registry *r, const struct service_spec *specs, size_t n,
			    const struct db_spec *dbs, size_t n_dbs, const struct capacity *cap,
			    const struct reg_async *as, struct reg_commit **out, struct verr *e);
/* The revision the backend answered for pending commit c (valid until its continuation ran
 * or it was cancelled), 0 while it has not answered or answered with an error. The model
 * reaches it with the watch, possibly before the continuation runs. */
uint64_t registry_commit_rev(const struct reg_commit *c);
/* The definition of name in force on this host: this host's host-only one, else the
 * cluster-wide one (a name has never both), or NULL. */
const struct reg_db *registry_db(const struct registry *r, const char *name);
/* The definition of name on host exactly (NULL: the cluster-wide one), or NULL. */
const struct reg_db *registry_db_at(const struct reg_state *st, const char *name, const char *host);
/* d applies on this host (cluster-wide or this host's): only those reach the kernel. */
bool registry_db_here(const struct reg_state *st, const struct reg_db *d);
/* Define d on every host (host NULL) or on host only. -EINVAL: host not a valid host name;
 * -EEXIST: the name is defined with the other kind (both named in e), or by another origin. */
int registry_db_apply(struct registry *r, const struct db_spec *d, enum reg_origin origin,
		      const char *host, struct verr *e);
/* Delete the cluster-wide (host NULL) or host's definition of name. */
int registry_db_delete(struct registry *r, const char *name, const char *host, struct verr *e);
/*
 * Reserve (port, proto) for service on every host (host NULL) or on host only. Refused
 * (-EEXIST, the owner named in e) when another service owns it by spec or cluster-wide, or
 * (host-only) on that host, or (cluster-wide) on any host. Already the service's: 0, nothing
 * written. -ENOENT: unknown service; -EINVAL: host not a valid host name.
 */
int registry_reserve(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		     const char *service, struct verr *e);
/* Release the cluster-wide (host NULL) or host's reservation of (port, proto). -ENOENT: no
 * such reservation; -EEXIST: declared by a spec. */
int registry_release(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		     struct verr *e);
/* No spec declares (port, proto) and no host reserves it, this one or another. */
bool registry_port_free(const struct reg_state *st, uint16_t port, uint8_t proto);
/* The reservation of (port, proto) for host (NULL: the cluster-wide one), or NULL. */
const struct reg_resv *registry_resv(const struct reg_state *st, uint16_t port, uint8_t proto,
				     const char *host);
int registry_service_apply_async(struct registry *r, const struct service_spec *s,
				 enum reg_origin origin, const struct reg_async *as,
				 struct reg_commit **out, struct verr *e);
int registry_service_delete_async(struct registry *r, const char *name, const struct reg_async *as,
				  struct reg_commit **out, struct verr *e);
int registry_db_apply_async(struct registry *r, const struct db_spec *d, enum reg_origin origin,
			    const char *host, const struct reg_async *as, struct reg_commit **out,
			    struct verr *e);
int registry_db_delete_async(struct registry *r, const char *name, const char *host,
			     const struct reg_async *as, struct reg_commit **out, struct verr *e);
int registry_reserve_async(struct registry *r, uint16_t port, uint8_t proto, const char *host,
			   const char *service, const struct reg_async *as, struct reg_commit **out,
			   struct verr *e);
int registry_release_async(struct registry *r, uint16_t port, uint8_t proto, const char *host,
			   const struct reg_async *as, struct reg_commit **out, struct verr *e);

/* Internal (registry_admit.c): admission of new against capacity (with pl: only the services
 * that run here), and GPU assignment of new (stable: a service keeps the GPUs it had in old
 * when they are still free). */
int registry_admit(const struct capacity *cap, const struct reg_placement *pl,
		   const struct reg_state *old, struct reg_state *new, struct verr *e);
int reg_gpu_cmp(const void *a, const void *b);

#endif /* CAELUM_REGISTRY_H */
