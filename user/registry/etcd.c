// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd v3 client over the JSON gateway: unary calls (range, txn, lease, auth) with endpoint
 * failover and token renewal, on the caller's thread. The watch, the session's lease and
 * the watchdog run in the client's thread (etcd_watch.c); the wire format is etcd_json.c.
 * HTTP/1.1 only: etcd 3.4's gateway answers HTTP/2 without TLS with an error.
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

#include "etcd_int.h"
#include "log.h"

uint64_t etcd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t etcd_buf_write(char *ptr, size_t size, size_t nmemb, void *ud)
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

int etcd_curl_errno(CURLcode rc)
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
void etcd_easy_common(struct etcd *c, CURL *h, const char *url, struct curl_slist *hdrs)
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

struct curl_slist *etcd_headers(struct etcd *c, bool watch)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char auth[sizeof(c->token) + 32];

	pthread_mutex_lock(&c->mu);
	snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
	pthread_mutex_unlock(&c->mu);
	if (h && strlen(auth) > strlen("Authorization: "))
		h = curl_slist_append(h, auth);
	/* The gateway forwards Grpc-Metadata-* as gRPC metadata: a member without a leader
	 * cancels the watch instead of keeping it silently stale (etcd clientv3.WithRequireLeader).
	 */
	if (h && watch)
		h = curl_slist_append(h, "Grpc-Metadata-hasleader: true");
	return h;
}

/* One POST to endpoint ep: 0 and the parsed answer, or -errno (transport or HTTP). */
static int post(struct etcd *c, CURL *h, int ep, const char *path, const char *body,
		long timeout_ms, struct json_object **resp)
{
	struct curl_slist *hdrs = etcd_headers(c, false);
	struct buf b = {};
	char url[ETCD_ENDPOINT_MAX + 64];
	long status = 0;
	CURLcode rc;
	int err;

	snprintf(url, sizeof(url), "%s%s", c->cfg.endpoints[ep], path);
	curl_easy_reset(h);
	etcd_easy_common(c, h, url, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	err = etcd_curl_errno(rc);
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

	if (!json_object_object_get_ex(resp, "header", &h) ||
	    etcd_json_u64(h, "raft_term", &term) || !term)
		return;
	pthread_mutex_lock(&c->mu);
	if (*last && term != *last)
		c->st.leader_changes++;
	*last = term;
	pthread_mutex_unlock(&c->mu);
}

/* POST /v3/auth/authenticate with the configured user: a new simple token. */
int etcd_authenticate(struct etcd *c, CURL *h, int ep, long timeout_ms)
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

bool etcd_have_token(struct etcd *c)
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

void etcd_failover(struct etcd *c, int ep)
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
	uint64_t deadline = etcd_now_ms() + c->cfg.timeout_ms, now, round_start = 0;
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
	for (unsigned int tries = 0; (now = etcd_now_ms()) < deadline; tries++) {
		long t = (long)(deadline - now) < share ? (long)(deadline - now) : share;
		int ep;

		/* Every endpoint refused at once (nothing listens): wait before the next round
		 * rather than spin through the budget (the watch thread does the same). */
		if (tries && !(tries % c->cfg.n_endpoints) && now - round_start < RETRY_MIN_MS) {
			uint64_t nap = RETRY_MIN_MS - (now - round_start);

			usleep((useconds_t)((nap < deadline - now ? nap : deadline - now) * 1000));
			now = etcd_now_ms();
		}
		if (!(tries % c->cfg.n_endpoints))
			round_start = now;

		pthread_mutex_lock(&c->mu);
		ep = c->endpoint;
		pthread_mutex_unlock(&c->mu);
		if (c->cfg.username[0] && !etcd_have_token(c)) {
			err = etcd_authenticate(c, c->easy, ep, t);
			if (err == -EACCES || err == -EPERM)
				return err;
			if (err) {
				etcd_failover(c, ep);
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
		etcd_failover(c, ep);
	}
	return err == -EIO ? -ETIMEDOUT : err;
}

static char *b64s(const char *s, size_t len)
{
	return etcd_b64_encode(s, len);
}

void etcd_add_b64(struct json_object *o, const char *field, const char *s, size_t len)
{
	char *e = b64s(s, len);

	json_object_object_add(o, field, json_object_new_string(e ? e : ""));
	free(e);
}

void etcd_add_u64(struct json_object *o, const char *field, uint64_t v)
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

	etcd_add_b64(req, "key", key, strlen(key));
	if (range_end)
		etcd_add_b64(req, "range_end", range_end, range_end[0] ? strlen(range_end) : 1);
	if (serializable)
		json_object_object_add(req, "serializable", json_object_new_boolean(true));
	err = call(c, "/v3/kv/range", req, &resp);
	json_object_put(req);
	if (!err)
		err = etcd_parse_range(resp, kvs, n, rev);
	json_object_put(resp);
	return err;
}

struct json_object *etcd_txn_op(const struct etcd_op *op)
{
	struct json_object *o = json_object_new_object(), *r = json_object_new_object();

	etcd_add_b64(r, "key", op->key, strlen(op->key));
	if (!op->del) {
		etcd_add_b64(r, "value", op->value, strlen(op->value));
		if (op->lease)
			etcd_add_u64(r, "lease", (uint64_t)op->lease);
	}
	json_object_object_add(o, op->del ? "request_delete_range" : "request_put", r);
	return o;
}

static struct json_object *txn_cmp(const struct etcd_cmp *cmp)
{
	struct json_object *o = json_object_new_object();

	etcd_add_b64(o, "key", cmp->key, strlen(cmp->key));
	json_object_object_add(o, "result", json_object_new_string("EQUAL"));
	if (cmp->mod_rev) {
		json_object_object_add(o, "target", json_object_new_string("MOD"));
		etcd_add_u64(o, "mod_revision", cmp->mod_rev);
	} else {
		json_object_object_add(o, "target", json_object_new_string("CREATE"));
		etcd_add_u64(o, "create_revision", 0);
	}
	return o;
}

static struct json_object *txn_request(const struct etcd_cmp *cmp, size_t n_cmp,
				       const struct etcd_op *ops, size_t n_ops)
{
	struct json_object *req = json_object_new_object();
	struct json_object *ca = json_object_new_array(), *sa = json_object_new_array();

	for (size_t i = 0; i < n_cmp; i++)
		json_object_array_add(ca, txn_cmp(&cmp[i]));
	for (size_t i = 0; i < n_ops; i++)
		json_object_array_add(sa, etcd_txn_op(&ops[i]));
	json_object_object_add(req, "compare", ca);
	json_object_object_add(req, "success", sa);
	return req;
}

char *etcd_txn_body(const struct etcd_cmp *cmp, size_t n_cmp, const struct etcd_op *ops,
		    size_t n_ops)
{
	struct json_object *req = txn_request(cmp, n_cmp, ops, n_ops);
	char *s = strdup(json_object_to_json_string(req));

	json_object_put(req);
	return s;
}

int etcd_txn(struct etcd *c, const struct etcd_cmp *cmp, size_t n_cmp, const struct etcd_op *ops,
	     size_t n_ops, bool *succeeded, uint64_t *rev)
{
	struct json_object *req = txn_request(cmp, n_cmp, ops, n_ops), *resp = NULL;
	int err;

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

	etcd_add_u64(req, "TTL", ttl_s);
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

	etcd_add_u64(req, "ID", (uint64_t)id);
	err = call(c, "/v3/lease/revoke", req, &resp);
	json_object_put(req);
	json_object_put(resp);
	return err;
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

void etcd_reqs_free(struct etcd_req *r)
{
	while (r) {
		struct etcd_req *next = r->next;

		free(r->body);
		free(r);
		r = next;
	}
}

/* Tell the callers of txns that will not finish now (err, or their own when 0); free them. */
static void reqs_end(struct etcd_req *r, int err)
{
	while (r) {
		struct etcd_req *next = r->next;

		r->done(r->arg, err ? err : r->err, r->succeeded, r->rev);
		free(r->body);
		free(r);
		r = next;
	}
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
	reqs_end(c->reqs, -ESHUTDOWN);
	reqs_end(c->reqs_done, 0);
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
