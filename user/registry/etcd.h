/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * An etcd v3 client over etcd's JSON gateway (grpc-gateway, HTTP/1.1, libcurl + json-c).
 *
 * The API is etcd's api/etcdserverpb/rpc.proto as the gateway maps it (etcd 3.4: POST
 * /v3/kv/range, /v3/kv/txn, /v3/watch, /v3/lease/grant, /v3/lease/keepalive,
 * /v3/lease/revoke, /v3/auth/authenticate, /v3/maintenance/status). On the wire: keys and
 * values are base64, int64 fields are JSON strings, and fields at their default value are
 * omitted (a failed txn has no "succeeded", a PUT event no "type", an expired lease's
 * keepalive no "TTL"): every parser below reads an absent field as its default.
 *
 * Unary calls (range, txn, lease, auth) run on the caller's thread, with one budget for the
 * whole call: an endpoint that does not answer or answers "unavailable" is left for the
 * next one. The watch and the lease keepalive run in a thread of their own (libcurl multi);
 * watch events reach the caller through an eventfd (etcd_watch_fd) and etcd_watch_take.
 *
 * Errors: 0 or -errno. -ETIMEDOUT: no endpoint answered within the budget (or all answered
 * "unavailable": no leader, no quorum); -EHOSTUNREACH: no endpoint could be connected;
 * -EACCES: authentication refused; -ENOENT: lease not found; -EINVAL: a malformed answer.
 * etcd_unavailable() tells the first two apart from the rest.
 */
#ifndef CAELUM_ETCD_H
#define CAELUM_ETCD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define ETCD_MAX_ENDPOINTS 8
#define ETCD_ENDPOINT_MAX  256

struct etcd_cfg {
	char endpoints[ETCD_MAX_ENDPOINTS][ETCD_ENDPOINT_MAX]; /* http[s]://HOST:PORT */
	size_t n_endpoints;
	char username[128]; /* "" = no authentication */
	char password[256];
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX]; /* TLS files; "" = unset */
	unsigned int timeout_ms; /* budget of one unary call, all endpoints together */
};

/* One key (mvccpb.KeyValue); value NUL-terminated (values are JSON text here). */
struct etcd_kv {
	char *key;
	char *value;
	uint64_t mod_rev;
	int64_t lease; /* 0 = none */
};

/* A compare of a txn: mod_rev 0 = the key must not exist (create_revision == 0), else the
 * key's mod_revision must equal mod_rev. */
struct etcd_cmp {
	const char *key;
	uint64_t mod_rev;
};

/* An op of a txn's success branch: a put (with lease, 0 = none) or a delete of one key. */
struct etcd_op {
	bool del;
	const char *key;
	const char *value;
	int64_t lease;
};

/* A watch event (mvccpb.Event): value NULL for a delete. */
struct etcd_event {
	bool del;
	char *key;
	char *value;
	uint64_t mod_rev;
};

/* One line of the watch stream (etcdserverpb.WatchResponse, or the gateway's error). */
struct etcd_watch_msg {
	bool created, canceled;
	uint64_t header_rev, raft_term, compact_rev;
	struct etcd_event *ev;
	size_t n_ev;
	int error;	  /* -errno of an error line ({"error": {...}}), 0 otherwise */
	char reason[256]; /* cancel_reason or the error's message */
};

/* What recovered by itself since open, one counter each. */
struct etcd_stats {
	uint64_t requests, failovers, reauths; /* unary calls; endpoint switches; new tokens */
	uint64_t watch_restarts; /* watch streams reopened (endpoint lost, no leader, watchdog) */
	uint64_t compactions;	 /* watch canceled at a compacted revision: the caller re-lists */
	uint64_t leader_changes; /* raft term seen to change */
	uint64_t lease_losses;	 /* keepalive answered without TTL: the lease expired */
	bool watch_up;		 /* the watch stream is open and was created */
	uint64_t watch_rev;	 /* every event up to this revision was delivered */
	int endpoint;		 /* index of the endpoint unary calls use */
};

struct etcd;

/* Copy cfg, set libcurl up (no connection is made). 0 or -errno. */
int etcd_open(const struct etcd_cfg *cfg, struct etcd **out);
/* Stop the thread, free everything. NULL is fine. */
void etcd_close(struct etcd *c);
bool etcd_unavailable(int err);

/* Keys in [key, range_end) (range_end "" = key alone; the prefix helper below), sorted, at
 * one revision (*rev). serializable: answered by the member alone (works without quorum).
 * *kvs malloc'd (etcd_kvs_free). */
int etcd_range(struct etcd *c, const char *key, const char *range_end, bool serializable,
	       struct etcd_kv **kvs, size_t *n, uint64_t *rev);
/* The end of the range holding every key that starts with prefix (rpc.proto: "the key
 * plus one"); writes into buf, returns buf. "" gives "\0" (every key): *len set to 1. */
const char *etcd_prefix_end(const char *prefix, char *buf, size_t size, size_t *len);
/* If every compare holds, apply ops atomically: *succeeded, *rev = the store's revision
 * after the txn (the new one on success). */
int etcd_txn(struct etcd *c, const struct etcd_cmp *cmp, size_t n_cmp, const struct etcd_op *ops,
	     size_t n_ops, bool *succeeded, uint64_t *rev);
/* A lease of ttl_s seconds: *id. */
int etcd_lease_grant(struct etcd *c, unsigned int ttl_s, int64_t *id);
int etcd_lease_revoke(struct etcd *c, int64_t id);
void etcd_kvs_free(struct etcd_kv *kvs, size_t n);
void etcd_events_free(struct etcd_event *ev, size_t n);

/*
 * Watch [prefix, prefix end) from start_rev (inclusive) in the client's thread; reopened on
 * another endpoint when the stream ends, the member loses its leader
 * (Grpc-Metadata-hasleader) or stays silent while a status probe fails (the watchdog).
 * Calling it again restarts the watch from the new revision (after a compaction).
 */
int etcd_watch_start(struct etcd *c, const char *prefix, uint64_t start_rev);
/* Readable (eventfd) when events or a compaction are waiting. */
int etcd_watch_fd(const struct etcd *c);
/* The events delivered so far, in order (*ev malloc'd); *compacted = the compact revision
 * when the watch was canceled because start_rev was compacted (0 = not), after which the
 * caller re-lists and calls etcd_watch_start again. */
int etcd_watch_take(struct etcd *c, struct etcd_event **ev, size_t *n, uint64_t *compacted);
/* Wait until the watch delivered every event up to rev: 0, or -ETIMEDOUT after timeout_ms. */
int etcd_watch_wait(struct etcd *c, uint64_t rev, unsigned int timeout_ms);
/*
 * A session: keys that live as long as this process keeps a lease of ttl_s alive (etcd
 * clientv3/concurrency's Session). The thread grants the lease, keeps it alive every
 * ttl_s / 3 s, writes every session key with it, and when the lease is found expired
 * (keepalive without TTL: lease_losses) grants a new one and writes every key again.
 * Nothing here blocks the caller: etcd_session_put only records the wanted value.
 */
int etcd_session_start(struct etcd *c, unsigned int ttl_s);
/* key := value under the session's lease (value NULL: delete it). 0 or -ENOMEM. */
int etcd_session_put(struct etcd *c, const char *key, const char *value);
/* Revoke the lease (its keys go at once), within timeout_ms; the caller's thread. */
void etcd_session_end(struct etcd *c, unsigned int timeout_ms);
/* The session's lease, 0 while there is none (etcd away, or a new one being granted). */
int64_t etcd_session_lease(struct etcd *c);
void etcd_stats_get(struct etcd *c, struct etcd_stats *s);
int etcd_endpoint_count(const struct etcd *c);
const char *etcd_endpoint(const struct etcd *c, int i);

/* ---- the gateway's JSON (exposed for the unit tests) ---- */

/* Standard base64 (RFC 4648 with padding). encode: malloc'd text. decode: malloc'd bytes,
 * NUL-terminated, *len without it; -EINVAL on a character outside the alphabet. */
char *etcd_b64_encode(const void *data, size_t len);
int etcd_b64_decode(const char *text, char **out, size_t *len);
/* An int64 as the gateway writes it (a string, or a number from other gateways); absent
 * = 0. -EINVAL when it is neither or negative. */
int etcd_json_u64(struct json_object *obj, const char *field, uint64_t *out);
/* An error answer ({"error", "code", "message"}): -errno for its gRPC code, 0 when obj is
 * not an error; msg gets the message. */
int etcd_json_error(struct json_object *obj, char *msg, size_t msg_len);
int etcd_parse_range(struct json_object *resp, struct etcd_kv **kvs, size_t *n, uint64_t *rev);
int etcd_parse_txn(struct json_object *resp, bool *succeeded, uint64_t *rev);
/* *ttl_s = 0 when the lease expired (TTL omitted). */
int etcd_parse_keepalive(struct json_object *resp, int64_t *ttl_s);
/* One line of the watch stream: {"result": WatchResponse} or {"error": {...}}. */
int etcd_parse_watch(const char *line, size_t len, struct etcd_watch_msg *m);
void etcd_watch_msg_free(struct etcd_watch_msg *m);

#endif /* CAELUM_ETCD_H */
