// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd v3 client over the JSON gateway: unary calls with endpoint failover and token
 * renewal on the caller's thread; watch, lease keepalive and the watch's watchdog in a
 * thread of their own (libcurl multi), handing events over through a mutex-guarded queue
 * and an eventfd. Wire format: etcd_json.c. HTTP/1.1 only: etcd 3.4's gateway answers
 * HTTP/2 without TLS with an error.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "etcd.h"
#include "log.h"

#define RESP_MAX (256U << 20) /* a range of the whole registry */
#define ATTEMPT_MIN_MS 1000 /* one endpoint's share of a call's budget, at least */
#define CONNECT_MS 1000
#define WATCH_SILENT_MS 3000 /* a watch this quiet gets its member probed */
#define PROBE_MS 2000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000

struct buf {
	char *p;
	size_t len, cap;
};

/* A session key: value NULL = to be deleted; written when gen != done_gen. */
struct skey {
	char *key, *value;
	uint64_t gen, done_gen;
};

struct etcd {
	struct etcd_cfg cfg;
	CURL *easy; /* unary calls, caller's thread */
	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cond; /* watch_rev advanced */
	char token[1024];
	int endpoint; /* unary calls start here */
	struct etcd_stats st;
	uint64_t unary_term; /* raft term last seen by a unary call */
	/* watch: what the thread should do */
	char *w_prefix;
	uint64_t w_next; /* next revision wanted */
	uint64_t w_gen; /* bumped by etcd_watch_start: reopen */
	bool w_active;
	struct etcd_event *q;
	size_t n_q, cap_q;
	uint64_t q_compacted;
	/* session: keys under a lease the thread keeps alive */
	unsigned int s_ttl_s; /* 0 = no session */
	int64_t s_lease; /* 0 = none granted (yet, or lost) */
	struct skey *skeys;
	size_t n_skeys, cap_skeys;
	bool stop;
	/* thread */
	pthread_t thr;
	bool thr_started;
	CURLM *multi;
	int event_fd;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t buf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;

	if (b->len + n + 1 > RESP_MAX)
		return 0;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *tmp;

		while (cap < b->len + n + 1)
			cap *= 2;
		tmp = realloc(b->p, cap);
		if (!tmp)
			return 0;
		b->p = tmp;
		b->cap = cap;
	}
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

bool etcd_unavailable(int err)
{
	return err == -ETIMEDOUT || err == -EHOSTUNREACH;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* The options every request shares: HTTP/1.1, TLS files, TCP keepalive, no signals. */
static void easy_common(struct etcd *c, CURL *h, const char *url, struct curl_slist *hdrs)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->cfg.ca[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca);
	if (c->cfg.cert[0])
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cfg.cert);
	if (c->cfg.key[0])
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->cfg.key);
}

static struct curl_slist *headers(struct etcd *c, bool watch)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char auth[sizeof(c->token) + 32];

	pthread_mutex_lock(&c->mu);
	snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
	pthread_mutex_unlock(&c->mu);
	if (h && strlen(auth) > strlen("Authorization: "))
		h = curl_slist_append(h, auth);
	/* The gateway forwards Grpc-Metadata-* as gRPC metadata: a member without a leader
	 * cancels the watch instead of keeping it silently stale (etcd clientv3.WithRequireLeader). */
	if (h && watch)
		h = curl_slist_append(h, "Grpc-Metadata-hasleader: true");
	return h;
}

/* One POST to endpoint ep: 0 and the parsed answer, or -errno (transport or HTTP). */
static int post(struct etcd *c, CURL *h, int ep, const char *path, const char *body,
		long timeout_ms, struct json_object **resp)
{
	struct curl_slist *hdrs = headers(c, false);
	struct buf b = {};
	char url[ETCD_ENDPOINT_MAX + 64];
	long status = 0;
	CURLcode rc;
	int err;

	snprintf(url, sizeof(url), "%s%s", c->cfg.endpoints[ep], path);
	curl_easy_reset(h);
	easy_common(c, h, url, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	err = curl_errno(rc);
	if (err)
		p_debug("etcd %s%s: %s", c->cfg.endpoints[ep], path, curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	*resp = !err && b.p ? json_tokener_parse(b.p) : NULL;
	if (!err && !*resp)
		err = status >= 500 ? -ETIMEDOUT : -EINVAL; /* a proxy's error page, or garbage */
	free(b.p);
	return err;
}

static void note_term(struct etcd *c, struct json_object *resp, uint64_t *last)
{
	struct json_object *h;
	uint64_t term = 0;

	if (!json_object_object_get_ex(resp, "header", &h) || etcd_json_u64(h, "raft_term", &term) ||
	    !term)
		return;
	pthread_mutex_lock(&c->mu);
	if (*last && term != *last)
		c->st.leader_changes++;
	*last = term;
	pthread_mutex_unlock(&c->mu);
}

/* POST /v3/auth/authenticate with the configured user: a new simple token. */
static int authenticate(struct etcd *c, CURL *h, int ep, long timeout_ms)
{
	struct json_object *req = json_object_new_object(), *resp = NULL, *tok;
	char msg[256];
	int err;

	json_object_object_add(req, "name", json_object_new_string(c->cfg.username));
	json_object_object_add(req, "password", json_object_new_string(c->cfg.password));
	err = post(c, h, ep, "/v3/auth/authenticate", json_object_to_json_string(req), timeout_ms,
		   &resp);
	json_object_put(req);
	if (!err)
		err = etcd_json_error(resp, msg, sizeof(msg));
	if (err == -EINVAL || err == -EKEYEXPIRED) {
		p_err("etcd refused user '%s': %s", c->cfg.username, msg);
		err = -EACCES;
	}
	if (!err && (!json_object_object_get_ex(resp, "token", &tok) ||
		     !json_object_is_type(tok, json_type_string)))
		err = -EINVAL;
	if (!err) {
		pthread_mutex_lock(&c->mu);
		snprintf(c->token, sizeof(c->token), "%s", json_object_get_string(tok));
		c->st.reauths++;
		pthread_mutex_unlock(&c->mu);
	}
	json_object_put(resp);
	return err;
}

static bool have_token(struct etcd *c)
{
	bool have;

	pthread_mutex_lock(&c->mu);
	have = c->token[0] != '\0';
	pthread_mutex_unlock(&c->mu);
	return have;
}

static void drop_token(struct etcd *c)
{
	pthread_mutex_lock(&c->mu);
	c->token[0] = '\0';
	pthread_mutex_unlock(&c->mu);
}

static void failover(struct etcd *c, int ep)
{
	pthread_mutex_lock(&c->mu);
	if (c->endpoint == ep) {
		c->endpoint = (ep + 1) % (int)c->cfg.n_endpoints;
		c->st.failovers++;
	}
	pthread_mutex_unlock(&c->mu);
}

/*
 * One unary call within cfg.timeout_ms: each endpoint gets a share of the budget; an
 * endpoint that cannot be reached or answers "unavailable" (no leader, no quorum) is left
 * for the next; an expired token is renewed once. 0 and *resp, or -errno.
 */
static int call(struct etcd *c, const char *path, struct json_object *req,
		struct json_object **resp)
{
	uint64_t deadline = now_ms() + c->cfg.timeout_ms, now;
	long share = (long)(c->cfg.timeout_ms / c->cfg.n_endpoints);
	const char *body = json_object_to_json_string(req);
	bool renewed = false;
	int err = -ETIMEDOUT;
	char msg[256];

	if (share < ATTEMPT_MIN_MS)
		share = ATTEMPT_MIN_MS;
	pthread_mutex_lock(&c->mu);
	c->st.requests++;
	pthread_mutex_unlock(&c->mu);
	while ((now = now_ms()) < deadline) {
		long t = (long)(deadline - now) < share ? (long)(deadline - now) : share;
		int ep;

		pthread_mutex_lock(&c->mu);
		ep = c->endpoint;
		pthread_mutex_unlock(&c->mu);
		if (c->cfg.username[0] && !have_token(c)) {
			err = authenticate(c, c->easy, ep, t);
			if (err == -EACCES || err == -EPERM)
				return err;
			if (err) {
				failover(c, ep);
				continue;
			}
		}
		err = post(c, c->easy, ep, path, body, t, resp);
		if (!err) {
			note_term(c, *resp, &c->unary_term);
			err = etcd_json_error(*resp, msg, sizeof(msg));
			if (!err)
				return 0;
			json_object_put(*resp);
			*resp = NULL;
			p_debug("etcd %s%s: %s", c->cfg.endpoints[ep], path, msg);
		}
		if (err == -EKEYEXPIRED && c->cfg.username[0] && !renewed) {
			drop_token(c); /* simple tokens expire (--auth-token-ttl): a new one */
			renewed = true;
			continue;
		}
		if (err == -EKEYEXPIRED)
			return -EACCES;
		if (!etcd_unavailable(err) && err != -EIO)
			return err;
		failover(c, ep);
	}
	return err == -EIO ? -ETIMEDOUT : err;
}

static char *b64s(const char *s, size_t len)
{
	return etcd_b64_encode(s, len);
}

static void add_b64(struct json_object *o, const char *field, const char *s, size_t len)
{
	char *e = b64s(s, len);

	json_object_object_add(o, field, json_object_new_string(e ? e : ""));
	free(e);
}

static void add_u64(struct json_object *o, const char *field, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	json_object_object_add(o, field, json_object_new_string(s));
}

const char *etcd_prefix_end(const char *prefix, char *buf, size_t size, size_t *len)
{
	size_t n = strlen(prefix);

	snprintf(buf, size, "%s", prefix);
	while (n && (unsigned char)buf[n - 1] == 0xff)
		buf[--n] = '\0';
	if (!n) {
		buf[0] = '\0';
		*len = 1; /* "\0": every key from the start key on */
		return buf;
	}
	buf[n - 1]++;
	buf[n] = '\0';
	*len = n;
	return buf;
}

int etcd_range(struct etcd *c, const char *key, const char *range_end, bool serializable,
	       struct etcd_kv **kvs, size_t *n, uint64_t *rev)
{
	struct json_object *req = json_object_new_object(), *resp = NULL;
	int err;

	add_b64(req, "key", key, strlen(key));
	if (range_end)
		add_b64(req, "range_end", range_end, range_end[0] ? strlen(range_end) : 1);
	if (serializable)
		json_object_object_add(req, "serializable", json_object_new_boolean(true));
	err = call(c, "/v3/kv/range", req, &resp);
	json_object_put(req);
	if (!err)
		err = etcd_parse_range(resp, kvs, n, rev);
	json_object_put(resp);
	return err;
}

static struct json_object *txn_op(const struct etcd_op *op)
{
	struct json_object *o = json_object_new_object(), *r = json_object_new_object();

	add_b64(r, "key", op->key, strlen(op->key));
	if (!op->del) {
		add_b64(r, "value", op->value, strlen(op->value));
		if (op->lease)
			add_u64(r, "lease", (uint64_t)op->lease);
	}
	json_object_object_add(o, op->del ? "request_delete_range" : "request_put", r);
	return o;
}

static struct json_object *txn_cmp(const struct etcd_cmp *cmp)
{
	struct json_object *o = json_object_new_object();

	add_b64(o, "key", cmp->key, strlen(cmp->key));
	json_object_object_add(o, "result", json_object_new_string("EQUAL"));
	if (cmp->mod_rev) {
		json_object_object_add(o, "target", json_object_new_string("MOD"));
		add_u64(o, "mod_revision", cmp->mod_rev);
	} else {
		json_object_object_add(o, "target", json_object_new_string("CREATE"));
		add_u64(o, "create_revision", 0);
	}
	return o;
}

int etcd_txn(struct etcd *c, const struct etcd_cmp *cmp, size_t n_cmp, const struct etcd_op *ops,
	     size_t n_ops, bool *succeeded, uint64_t *rev)
{
	struct json_object *req = json_object_new_object(), *resp = NULL;
	struct json_object *ca = json_object_new_array(), *sa = json_object_new_array();
	int err;

	for (size_t i = 0; i < n_cmp; i++)
		json_object_array_add(ca, txn_cmp(&cmp[i]));
	for (size_t i = 0; i < n_ops; i++)
		json_object_array_add(sa, txn_op(&ops[i]));
	json_object_object_add(req, "compare", ca);
	json_object_object_add(req, "success", sa);
	err = call(c, "/v3/kv/txn", req, &resp);
	json_object_put(req);
	if (!err)
		err = etcd_parse_txn(resp, succeeded, rev);
	json_object_put(resp);
	return err;
}

int etcd_lease_grant(struct etcd *c, unsigned int ttl_s, int64_t *id)
{
	struct json_object *req = json_object_new_object(), *resp = NULL;
	uint64_t v = 0;
	int err;

	add_u64(req, "TTL", ttl_s);
	err = call(c, "/v3/lease/grant", req, &resp);
	json_object_put(req);
	if (!err)
		err = etcd_json_u64(resp, "ID", &v);
	if (!err && (!v || v > INT64_MAX))
		err = -EINVAL;
	*id = (int64_t)v;
	json_object_put(resp);
	return err;
}

int etcd_lease_revoke(struct etcd *c, int64_t id)
{
	struct json_object *req = json_object_new_object(), *resp = NULL;
	int err;

	add_u64(req, "ID", (uint64_t)id);
	err = call(c, "/v3/lease/revoke", req, &resp);
	json_object_put(req);
	json_object_put(resp);
	return err;
}

/* ---- the thread: watch, keepalive, watchdog ---- */

struct xfer {
	CURL *h;
	struct curl_slist *hdrs;
	struct buf b; /* a unary answer, or the watch's partial line */
	char *body;
	int ep;
	bool created; /* watch: the server created it */
	bool stop; /* watch: do not reopen (compacted) */
	uint64_t gen; /* watch: etcd_watch_start generation it serves */
};

struct thr {
	struct etcd *c;
	struct xfer *watch, *ka, *probe, *grant, *put;
	int ep; /* the watch's endpoint; the session's requests go there too */
	uint64_t retry_at, ka_at, grant_at, put_at, last_data, backoff, term;
	uint64_t *put_gens; /* gen of each session key the put in flight writes, 0 = not in it */
	CURL *auth;
};

static void wake_loop(struct etcd *c)
{
	uint64_t one = 1;

	if (write(c->event_fd, &one, sizeof(one)) < 0)
		p_debug("etcd eventfd: %s", strerror(errno));
}

static int queue_events(struct etcd *c, struct etcd_watch_msg *m)
{
	if (c->n_q + m->n_ev > c->cap_q) {
		size_t cap = c->cap_q ? c->cap_q : 64;
		struct etcd_event *tmp;

		while (cap < c->n_q + m->n_ev)
			cap *= 2;
		tmp = realloc(c->q, cap * sizeof(*tmp));
		if (!tmp)
			return -ENOMEM;
		c->q = tmp;
		c->cap_q = cap;
	}
	memcpy(c->q + c->n_q, m->ev, m->n_ev * sizeof(*m->ev));
	c->n_q += m->n_ev;
	free(m->ev);
	m->ev = NULL;
	m->n_ev = 0;
	return 0;
}

/* One watch line, under the lock. false: close the stream. */
static bool watch_msg(struct thr *t, struct xfer *x, struct etcd_watch_msg *m)
{
	struct etcd *c = t->c;
	uint64_t last = 0;

	if (m->error) {
		p_warn("etcd watch on %s: %s", c->cfg.endpoints[x->ep], m->reason);
		if (m->error == -EKEYEXPIRED)
			c->token[0] = '\0';
		return false;
	}
	if (m->raft_term && t->term && m->raft_term != t->term)
		c->st.leader_changes++;
	if (m->raft_term)
		t->term = m->raft_term;
	if (m->created)
		x->created = true;
	if (m->canceled && m->compact_rev) {
		/* The history from w_next is gone: the caller lists again and restarts. */
		c->q_compacted = m->compact_rev;
		c->st.compactions++;
		c->w_active = false;
		x->stop = true;
		wake_loop(c);
		return false;
	}
	if (m->canceled) {
		p_warn("etcd watch on %s canceled: %s", c->cfg.endpoints[x->ep],
		       m->reason[0] ? m->reason : "no reason given");
		return false;
	}
	for (size_t i = 0; i < m->n_ev; i++)
		if (m->ev[i].mod_rev > last)
			last = m->ev[i].mod_rev;
	if (m->n_ev && queue_events(c, m))
		return false; /* out of memory: reopen from w_next, nothing is lost */
	if (last) {
		c->w_next = last + 1;
		c->st.watch_rev = last;
		wake_loop(c);
	} else if (!m->created && m->header_rev > c->st.watch_rev) {
		c->st.watch_rev = m->header_rev; /* progress notification */
		if (c->w_next <= m->header_rev)
			c->w_next = m->header_rev + 1;
	}
	c->st.watch_up = x->created;
	pthread_cond_broadcast(&c->cond);
	return true;
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct thr *t = ud;
	struct xfer *x = t->watch;
	size_t n = size * nmemb, off = 0;
	bool keep = true;

	if (buf_write(ptr, size, nmemb, &x->b) != n)
		return 0;
	t->last_data = now_ms();
	pthread_mutex_lock(&t->c->mu);
	while (keep && off < x->b.len) {
		char *nl = memchr(x->b.p + off, '\n', x->b.len - off);
		struct etcd_watch_msg m;
		size_t len;

		if (!nl)
			break;
		len = (size_t)(nl - (x->b.p + off));
		if (len && etcd_parse_watch(x->b.p + off, len, &m) == 0) {
			keep = watch_msg(t, x, &m);
			etcd_watch_msg_free(&m);
		} else if (len) {
			p_warn("etcd watch: unreadable line from %s", t->c->cfg.endpoints[x->ep]);
			keep = false;
		}
		off += len + 1;
	}
	pthread_mutex_unlock(&t->c->mu);
	memmove(x->b.p, x->b.p + off, x->b.len - off);
	x->b.len -= off;
	return keep ? n : 0;
}

static void xfer_free(struct thr *t, struct xfer *x)
{
	if (!x)
		return;
	curl_multi_remove_handle(t->c->multi, x->h);
	curl_easy_cleanup(x->h);
	curl_slist_free_all(x->hdrs);
	free(x->b.p);
	free(x->body);
	free(x);
}

static struct xfer *xfer_new(struct thr *t, int ep, const char *path, char *body, bool watch)
{
	struct xfer *x = calloc(1, sizeof(*x));
	char url[ETCD_ENDPOINT_MAX + 64];

	if (!x || !body || !(x->h = curl_easy_init())) {
		free(x);
		free(body);
		return NULL;
	}
	x->ep = ep;
	x->body = body;
	x->hdrs = headers(t->c, watch);
	snprintf(url, sizeof(url), "%s%s", t->c->cfg.endpoints[ep], path);
	easy_common(t->c, x->h, url, x->hdrs);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	if (watch) {
		curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, watch_write);
		curl_easy_setopt(x->h, CURLOPT_WRITEDATA, t);
	} else {
		curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)PROBE_MS);
		curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, buf_write);
		curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &x->b);
	}
	if (curl_multi_add_handle(t->c->multi, x->h)) {
		xfer_free(t, x);
		return NULL;
	}
	return x;
}

static char *watch_body(struct etcd *c)
{
	struct json_object *o = json_object_new_object(), *cr = json_object_new_object();
	char end[512];
	size_t len;
	char *s;

	etcd_prefix_end(c->w_prefix, end, sizeof(end), &len);
	add_b64(cr, "key", c->w_prefix, strlen(c->w_prefix));
	add_b64(cr, "range_end", end, len);
	add_u64(cr, "start_revision", c->w_next);
	json_object_object_add(cr, "progress_notify", json_object_new_boolean(true));
	json_object_object_add(o, "create_request", cr);
	s = strdup(json_object_to_json_string(o));
	json_object_put(o);
	return s;
}

static void watch_open(struct thr *t, uint64_t now)
{
	struct etcd *c = t->c;
	char *body;
	uint64_t gen;

	if (c->cfg.username[0] && !have_token(c) &&
	    authenticate(c, t->auth, t->ep, PROBE_MS)) {
		t->ep = (t->ep + 1) % (int)c->cfg.n_endpoints;
		t->retry_at = now + t->backoff;
		return;
	}
	pthread_mutex_lock(&c->mu);
	body = watch_body(c);
	gen = c->w_gen;
	pthread_mutex_unlock(&c->mu);
	t->watch = xfer_new(t, t->ep, "/v3/watch", body, true);
	if (t->watch)
		t->watch->gen = gen;
	t->last_data = now;
}

/* The watch ended (or was dropped): reopen on the next endpoint after a backoff. */
static void watch_closed(struct thr *t, uint64_t now)
{
	struct etcd *c = t->c;
	bool stop = t->watch->stop, created = t->watch->created;

	xfer_free(t, t->watch);
	t->watch = NULL;
	pthread_mutex_lock(&c->mu);
	c->st.watch_up = false;
	if (!stop && c->w_active)
		c->st.watch_restarts++;
	pthread_mutex_unlock(&c->mu);
	if (stop)
		return;
	if (created)
		t->backoff = RETRY_MIN_MS;
	else if ((t->backoff *= 2) > RETRY_MAX_MS)
		t->backoff = RETRY_MAX_MS;
	t->ep = (t->ep + 1) % (int)c->cfg.n_endpoints;
	t->retry_at = now + t->backoff;
}

/* The answer of a session request: the parsed JSON, or NULL (and *err) on failure. */
static struct json_object *xfer_answer(struct xfer *x, CURLcode rc, int *err)
{
	struct json_object *resp = rc == CURLE_OK && x->b.p ? json_tokener_parse(x->b.p) : NULL;

	*err = resp ? etcd_json_error(resp, NULL, 0) : -EIO;
	if (*err) {
		json_object_put(resp);
		return NULL;
	}
	return resp;
}

/* The lease is gone (expired while we could not reach etcd): count it, grant a new one. */
static void session_lost(struct etcd *c)
{
	if (!c->s_lease)
		return;
	c->s_lease = 0;
	c->st.lease_losses++;
	for (size_t i = 0; i < c->n_skeys; i++)
		c->skeys[i].done_gen = 0;
	wake_loop(c);
}

static void ka_done(struct thr *t, CURLcode rc, uint64_t now)
{
	struct etcd *c = t->c;
	int64_t ttl = -1;
	int err;
	struct json_object *resp = xfer_answer(t->ka, rc, &err);

	if (resp && etcd_parse_keepalive(resp, &ttl))
		ttl = -1;
	json_object_put(resp);
	pthread_mutex_lock(&c->mu);
	if (err == -EKEYEXPIRED)
		c->token[0] = '\0';
	if (ttl == 0 || err == -ENOENT)
		session_lost(c); /* no TTL in the answer, or "lease not found" */
	t->ka_at = now + (ttl > 0 ? (uint64_t)c->s_ttl_s * 1000 / 3 : 500);
	pthread_mutex_unlock(&c->mu);
	xfer_free(t, t->ka);
	t->ka = NULL;
}

static void grant_done(struct thr *t, CURLcode rc, uint64_t now)
{
	struct etcd *c = t->c;
	uint64_t id = 0;
	int err;
	struct json_object *resp = xfer_answer(t->grant, rc, &err);

	if (resp && (etcd_json_u64(resp, "ID", &id) || id > INT64_MAX))
		id = 0;
	json_object_put(resp);
	pthread_mutex_lock(&c->mu);
	if (err == -EKEYEXPIRED)
		c->token[0] = '\0';
	if (id && c->s_ttl_s) {
		c->s_lease = (int64_t)id;
		for (size_t i = 0; i < c->n_skeys; i++)
			c->skeys[i].done_gen = 0; /* every key again, with the new lease */
		t->ka_at = now + (uint64_t)c->s_ttl_s * 1000 / 3;
	}
	pthread_mutex_unlock(&c->mu);
	t->grant_at = now + (id ? 0 : 1000);
	xfer_free(t, t->grant);
	t->grant = NULL;
}

static void put_done(struct thr *t, CURLcode rc, uint64_t now)
{
	struct etcd *c = t->c;
	int err;
	struct json_object *resp = xfer_answer(t->put, rc, &err);

	json_object_put(resp);
	pthread_mutex_lock(&c->mu);
	if (!err)
		for (size_t i = 0; i < c->n_skeys; i++)
			if (t->put_gens[i] && c->skeys[i].gen == t->put_gens[i])
				c->skeys[i].done_gen = t->put_gens[i];
	if (err == -EKEYEXPIRED)
		c->token[0] = '\0';
	if (err == -ENOENT)
		session_lost(c); /* "requested lease not found" */
	pthread_mutex_unlock(&c->mu);
	t->put_at = now + (err ? 500 : 0);
	free(t->put_gens);
	t->put_gens = NULL;
	xfer_free(t, t->put);
	t->put = NULL;
}

/* Under the lock: one txn writing every session key not yet written, or NULL. */
static char *session_txn(struct thr *t)
{
	struct etcd *c = t->c;
	struct json_object *o = NULL, *ops = NULL;
	char *body = NULL;

	t->put_gens = calloc(c->n_skeys + 1, sizeof(*t->put_gens));
	if (!t->put_gens)
		return NULL;
	for (size_t i = 0; i < c->n_skeys; i++) {
		struct skey *k = &c->skeys[i];
		struct etcd_op op = { .del = !k->value, .key = k->key, .value = k->value,
				      .lease = c->s_lease };

		if (k->gen == k->done_gen)
			continue;
		if (!o) {
			o = json_object_new_object();
			ops = json_object_new_array();
			json_object_object_add(o, "success", ops);
		}
		json_object_array_add(ops, txn_op(&op));
		t->put_gens[i] = k->gen;
	}
	if (o)
		body = strdup(json_object_to_json_string(o));
	json_object_put(o);
	if (!body) {
		free(t->put_gens);
		t->put_gens = NULL;
	}
	return body;
}

static void session_step(struct thr *t, uint64_t now)
{
	struct etcd *c = t->c;
	char *body = NULL, ttl[48];
	int64_t lease;

	bool grant;

	/* xfer_new() takes the lock (the token): requests are made after it is released */
	pthread_mutex_lock(&c->mu);
	lease = c->s_lease;
	snprintf(ttl, sizeof(ttl), "{\"TTL\":\"%u\"}", c->s_ttl_s);
	if (c->s_ttl_s && lease && !t->put && now >= t->put_at)
		body = session_txn(t);
	grant = c->s_ttl_s && !lease && !t->grant && now >= t->grant_at;
	pthread_mutex_unlock(&c->mu);
	if (grant)
		t->grant = xfer_new(t, t->ep, "/v3/lease/grant", strdup(ttl), false);
	if (body) {
		t->put = xfer_new(t, t->ep, "/v3/kv/txn", body, false);
		if (!t->put) {
			free(t->put_gens);
			t->put_gens = NULL;
		}
	}
	if (lease && !t->ka && now >= t->ka_at) {
		char *ka;

		if (asprintf(&ka, "{\"ID\":\"%lld\"}", (long long)lease) >= 0)
			t->ka = xfer_new(t, t->ep, "/v3/lease/keepalive", ka, false);
	}
}

/* The watch was silent: ask its member how it is; no answer = drop the watch. */
static void probe_done(struct thr *t, CURLcode rc, uint64_t now)
{
	struct json_object *resp = rc == CURLE_OK && t->probe->b.p ? json_tokener_parse(t->probe->b.p) : NULL;
	bool ok = resp && !etcd_json_error(resp, NULL, 0);

	json_object_put(resp);
	xfer_free(t, t->probe);
	t->probe = NULL;
	t->last_data = now;
	if (!ok && t->watch) {
		p_warn("etcd member %s does not answer; watching through another",
		       t->c->cfg.endpoints[t->watch->ep]);
		watch_closed(t, now);
	}
}

static void thr_step(struct thr *t)
{
	struct etcd *c = t->c;
	uint64_t now = now_ms(), gen;
	bool active;

	pthread_mutex_lock(&c->mu);
	active = c->w_active;
	gen = c->w_gen;
	pthread_mutex_unlock(&c->mu);
	if (t->watch && (t->watch->gen != gen || !active)) {
		t->watch->stop = true;
		watch_closed(t, now);
	}
	if (!t->watch && active && now >= t->retry_at)
		watch_open(t, now);
	session_step(t, now);
	if (t->watch && !t->probe && now - t->last_data > WATCH_SILENT_MS)
		t->probe = xfer_new(t, t->watch->ep, "/v3/maintenance/status", strdup("{}"), false);
}

static void thr_done(struct thr *t, CURLMsg *msg)
{
	struct xfer *x = NULL;
	uint64_t now = now_ms();

	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
	if (x == t->watch)
		watch_closed(t, now);
	else if (x == t->ka)
		ka_done(t, msg->data.result, now);
	else if (x == t->probe)
		probe_done(t, msg->data.result, now);
	else if (x == t->grant)
		grant_done(t, msg->data.result, now);
	else if (x == t->put)
		put_done(t, msg->data.result, now);
}

static void *thr_main(void *arg)
{
	struct thr t = { .c = arg, .backoff = RETRY_MIN_MS };
	struct etcd *c = t.c;
	bool stop = false;

	t.auth = curl_easy_init();
	pthread_mutex_lock(&c->mu);
	t.ep = c->endpoint;
	pthread_mutex_unlock(&c->mu);
	while (!stop) {
		CURLMsg *msg;
		int running, left;

		thr_step(&t);
		curl_multi_perform(c->multi, &running);
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				thr_done(&t, msg);
		curl_multi_poll(c->multi, NULL, 0, 200, NULL);
		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
	}
	xfer_free(&t, t.watch);
	xfer_free(&t, t.ka);
	xfer_free(&t, t.probe);
	xfer_free(&t, t.grant);
	xfer_free(&t, t.put);
	free(t.put_gens);
	curl_easy_cleanup(t.auth);
	return NULL;
}

static int thread_start(struct etcd *c);

int etcd_watch_start(struct etcd *c, const char *prefix, uint64_t start_rev)
{
	char *p = strdup(prefix);
	int err;

	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	free(c->w_prefix);
	c->w_prefix = p;
	c->w_next = start_rev;
	c->w_gen++;
	c->w_active = true;
	c->q_compacted = 0;
	etcd_events_free(c->q, c->n_q);
	c->q = NULL;
	c->n_q = c->cap_q = 0;
	c->st.watch_rev = start_rev ? start_rev - 1 : 0;
	pthread_mutex_unlock(&c->mu);
	err = thread_start(c);
	curl_multi_wakeup(c->multi);
	return err;
}

int etcd_watch_fd(const struct etcd *c)
{
	return c->event_fd;
}

int etcd_watch_take(struct etcd *c, struct etcd_event **ev, size_t *n, uint64_t *compacted)
{
	uint64_t cnt;

	if (read(c->event_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&c->mu);
	*ev = c->q;
	*n = c->n_q;
	*compacted = c->q_compacted;
	c->q = NULL;
	c->n_q = c->cap_q = 0;
	c->q_compacted = 0;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int etcd_watch_wait(struct etcd *c, uint64_t rev, unsigned int timeout_ms)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->mu);
	while (c->st.watch_rev < rev && !err)
		err = -pthread_cond_timedwait(&c->cond, &c->mu, &ts);
	pthread_mutex_unlock(&c->mu);
	return err;
}

static int thread_start(struct etcd *c)
{
	sigset_t all, old;
	int err;

	if (c->thr_started)
		return 0;
	/* Signals are the loop's (signalfd): the thread must never take one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&c->thr, NULL, thr_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!err)
		c->thr_started = true;
	return err;
}

int etcd_session_start(struct etcd *c, unsigned int ttl_s)
{
	pthread_mutex_lock(&c->mu);
	c->s_ttl_s = ttl_s ? ttl_s : 1;
	pthread_mutex_unlock(&c->mu);
	curl_multi_wakeup(c->multi);
	return thread_start(c);
}

int etcd_session_put(struct etcd *c, const char *key, const char *value)
{
	char *v = value ? strdup(value) : NULL;
	struct skey *k = NULL;
	int err = 0;

	if (value && !v)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n_skeys && !k; i++)
		if (!strcmp(c->skeys[i].key, key))
			k = &c->skeys[i];
	if (!k && c->n_skeys == c->cap_skeys) {
		size_t cap = c->cap_skeys ? c->cap_skeys * 2 : 16;
		struct skey *tmp = realloc(c->skeys, cap * sizeof(*tmp));

		if (tmp) {
			c->skeys = tmp;
			c->cap_skeys = cap;
		}
	}
	if (!k && c->n_skeys < c->cap_skeys) {
		k = &c->skeys[c->n_skeys];
		*k = (struct skey){ .key = strdup(key) };
		if (k->key)
			c->n_skeys++;
		else
			k = NULL;
	}
	if (k) {
		free(k->value);
		k->value = v;
		k->gen++;
	} else {
		free(v);
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&c->mu);
	curl_multi_wakeup(c->multi);
	return err;
}

int64_t etcd_session_lease(struct etcd *c)
{
	int64_t lease;

	pthread_mutex_lock(&c->mu);
	lease = c->s_lease;
	pthread_mutex_unlock(&c->mu);
	return lease;
}

void etcd_session_end(struct etcd *c, unsigned int timeout_ms)
{
	unsigned int budget = c->cfg.timeout_ms;
	int64_t lease;

	pthread_mutex_lock(&c->mu);
	lease = c->s_lease;
	c->s_ttl_s = 0;
	c->s_lease = 0;
	pthread_mutex_unlock(&c->mu);
	if (!lease)
		return;
	c->cfg.timeout_ms = timeout_ms;
	if (etcd_lease_revoke(c, lease))
		p_debug("etcd: lease %lld not revoked; it expires by itself", (long long)lease);
	c->cfg.timeout_ms = budget;
}

void etcd_stats_get(struct etcd *c, struct etcd_stats *s)
{
	pthread_mutex_lock(&c->mu);
	*s = c->st;
	s->endpoint = c->endpoint;
	pthread_mutex_unlock(&c->mu);
}

int etcd_endpoint_count(const struct etcd *c)
{
	return (int)c->cfg.n_endpoints;
}

const char *etcd_endpoint(const struct etcd *c, int i)
{
	return i >= 0 && i < (int)c->cfg.n_endpoints ? c->cfg.endpoints[i] : "";
}

int etcd_open(const struct etcd_cfg *cfg, struct etcd **out)
{
	struct etcd *c;

	if (!cfg->n_endpoints || cfg->n_endpoints > ETCD_MAX_ENDPOINTS)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	if (!c->cfg.timeout_ms)
		c->cfg.timeout_ms = 5000;
	c->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->easy = curl_easy_init();
	c->multi = curl_multi_init();
	if (c->event_fd < 0 || !c->easy || !c->multi) {
		etcd_close(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void etcd_close(struct etcd *c)
{
	if (!c)
		return;
	if (c->thr_started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_mutex_unlock(&c->mu);
		curl_multi_wakeup(c->multi);
		pthread_join(c->thr, NULL);
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->easy)
		curl_easy_cleanup(c->easy);
	if (c->event_fd >= 0)
		close(c->event_fd);
	etcd_events_free(c->q, c->n_q);
	for (size_t i = 0; i < c->n_skeys; i++) {
		free(c->skeys[i].key);
		free(c->skeys[i].value);
	}
	free(c->skeys);
	free(c->w_prefix);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	explicit_bzero(c->cfg.password, sizeof(c->cfg.password));
	free(c);
}
