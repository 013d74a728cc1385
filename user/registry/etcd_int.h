/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Inside the etcd client: the state etcd.c (unary calls) and etcd_watch.c (the thread:
 * watch, session, watchdog) share, and their common helpers. Not for other modules. */
#ifndef CAELUM_ETCD_INT_H
#define CAELUM_ETCD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "etcd.h"

#define RESP_MAX       (256U << 20) /* a range of the whole registry */
#define RETRY_MIN_MS   100	    /* the least time between two rounds over the endpoints */
#define ATTEMPT_MIN_MS 1000	    /* one endpoint's share of a call's budget, at least */
#define CONNECT_MS     1000

struct buf {
	char *p;
	size_t len, cap;
};

/* A session key: value NULL = to be deleted; written when gen != done_gen. */
struct skey {
	char *key, *value;
	uint64_t gen, done_gen;
};

/* A txn submitted with etcd_txn_submit: queued by the caller, run by the thread, handed
 * back through the done list. */
struct etcd_req {
	char *body;	   /* the txn request (JSON) */
	uint64_t deadline; /* etcd_now_ms() when the budget runs out */
	uint64_t retry_at; /* the next attempt, not before */
	bool renewed;	   /* the token was renewed once already */
	int err;	   /* of the last attempt */
	bool succeeded;
	uint64_t rev;
	etcd_txn_done_fn done;
	void *arg;
	void *x; /* the attempt in flight (the thread's struct xfer), NULL between attempts */
	struct etcd_req *next;
};

struct etcd {
	struct etcd_cfg cfg;
	CURL *easy;	     /* unary calls, caller's thread */
	pthread_mutex_t mu;  /* guards everything below */
	pthread_cond_t cond; /* watch_rev advanced */
	char token[1024];
	int endpoint; /* unary calls start here */
	struct etcd_stats st;
	uint64_t unary_term; /* raft term last seen by a unary call */
	/* watch: what the thread should do */
	char *w_prefix;
	uint64_t w_next; /* next revision wanted */
	uint64_t w_gen;	 /* bumped by etcd_watch_start: reopen */
	bool w_active;
	struct etcd_event *q;
	size_t n_q, cap_q;
	uint64_t q_compacted;
	/* session: keys under a lease the thread keeps alive */
	unsigned int s_ttl_s; /* 0 = no session */
	int64_t s_lease;      /* 0 = none granted (yet, or lost) */
	struct skey *skeys;
	size_t n_skeys, cap_skeys;
	/* txns: submitted (the thread takes them), finished (etcd_txn_reap hands them back) */
	struct etcd_req *reqs, *reqs_done;
	bool stop;
	/* thread */
	pthread_t thr;
	bool thr_started;
	CURLM *multi;
	int event_fd;
};

uint64_t etcd_now_ms(void);
/* libcurl write callback into a struct buf (at most RESP_MAX). */
size_t etcd_buf_write(char *ptr, size_t size, size_t nmemb, void *ud);
/* HTTP/1.1, TLS files, TCP keepalive, no signals, connect timeout, headers. */
void etcd_easy_common(struct etcd *c, CURL *h, const char *url, struct curl_slist *hdrs);
/* Content-Type, the token (when there is one), and hasleader for a watch. */
struct curl_slist *etcd_headers(struct etcd *c, bool watch);
/* A new token for the configured user from endpoint ep: 0, -EACCES, -errno. */
int etcd_authenticate(struct etcd *c, CURL *h, int ep, long timeout_ms);
bool etcd_have_token(struct etcd *c);
/* {"request_put": ...} or {"request_delete_range": ...} of a txn's success branch. */
struct json_object *etcd_txn_op(const struct etcd_op *op);
/* Map a libcurl result to -errno (-EHOSTUNREACH, -ETIMEDOUT, -EACCES, -EIO). */
int etcd_curl_errno(CURLcode rc);
/* Unary calls move on from endpoint ep to the next one (counted once per endpoint). */
void etcd_failover(struct etcd *c, int ep);
/* The body of a txn request: {"compare": [...], "success": [...]} (malloc'd). */
char *etcd_txn_body(const struct etcd_cmp *cmp, size_t n_cmp, const struct etcd_op *ops,
		    size_t n_ops);
void etcd_reqs_free(struct etcd_req *r);
void etcd_add_b64(struct json_object *o, const char *field, const char *s, size_t len);
/* An int64 field the way the gateway wants it: a string. */
void etcd_add_u64(struct json_object *o, const char *field, uint64_t v);

#endif /* CAELUM_ETCD_INT_H */
