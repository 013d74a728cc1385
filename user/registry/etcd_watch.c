// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The etcd client's thread (libcurl multi): the watch (one long POST of JSON lines, reopened
 * on the next endpoint when it ends, when its member has no leader or when a silent member
 * does not answer a status probe), and the session (a lease granted, kept alive every TTL/3,
 * the session's keys written with it; a lease found expired is replaced and every key
 * written again). Events reach the caller through a mutex-guarded queue and an eventfd.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "etcd_int.h"
#include "log.h"

#define WATCH_SILENT_MS 3000 /* a watch this quiet gets its member probed */
#define PROBE_MS	2000
#define RETRY_MAX_MS	2000

/* ---- the thread: watch, keepalive, watchdog ---- */

struct xfer {
	CURL *h;
	struct curl_slist *hdrs;
	struct buf b; /* a unary answer, or the watch's partial line */
	char *body;
	int ep;
	bool created; /* watch: the server created it */
	bool stop;    /* watch: do not reopen (compacted) */
	uint64_t gen; /* watch: etcd_watch_start generation it serves */
};

struct thr {
	struct etcd *c;
	struct xfer *watch, *ka, *probe, *grant, *put;
	int ep; /* the watch's endpoint; the session's requests go there too */
	uint64_t retry_at, ka_at, grant_at, put_at, auth_at, last_data, backoff, term;
	uint64_t *put_gens; /* gen of each session key the put in flight writes, 0 = not in it */
	CURL *auth;
	struct etcd_req *reqs; /* txns taken from etcd.reqs, until they finish */
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

	if (etcd_buf_write(ptr, size, nmemb, &x->b) != n)
		return 0;
	t->last_data = etcd_now_ms();
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

/* A request on the multi handle; timeout_ms bounds a unary one (0: the watch, unbounded). */
static struct xfer *xfer_new(struct thr *t, int ep, const char *path, char *body, long timeout_ms)
{
	struct xfer *x = calloc(1, sizeof(*x));
	char url[ETCD_ENDPOINT_MAX + 64];
	bool watch = !timeout_ms;

	if (!x || !body || !(x->h = curl_easy_init())) {
		free(x);
		free(body);
		return NULL;
	}
	x->ep = ep;
	x->body = body;
	x->hdrs = etcd_headers(t->c, watch);
	snprintf(url, sizeof(url), "%s%s", t->c->cfg.endpoints[ep], path);
	etcd_easy_common(t->c, x->h, url, x->hdrs);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	if (watch) {
		curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, watch_write);
		curl_easy_setopt(x->h, CURLOPT_WRITEDATA, t);
	} else {
		curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, timeout_ms);
		curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, etcd_buf_write);
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
	etcd_add_b64(cr, "key", c->w_prefix, strlen(c->w_prefix));
	etcd_add_b64(cr, "range_end", end, len);
	etcd_add_u64(cr, "start_revision", c->w_next);
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

	if (c->cfg.username[0] && !etcd_have_token(c) &&
	    etcd_authenticate(c, t->auth, t->ep, PROBE_MS)) {
		t->ep = (t->ep + 1) % (int)c->cfg.n_endpoints;
		t->retry_at = now + t->backoff;
		return;
	}
	pthread_mutex_lock(&c->mu);
	body = watch_body(c);
	gen = c->w_gen;
	pthread_mutex_unlock(&c->mu);
	t->watch = xfer_new(t, t->ep, "/v3/watch", body, 0);
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
		struct etcd_op op = {
			.del = !k->value, .key = k->key, .value = k->value, .lease = c->s_lease
		};

		if (k->gen == k->done_gen)
			continue;
		if (!o) {
			o = json_object_new_object();
			ops = json_object_new_array();
			json_object_object_add(o, "success", ops);
		}
		json_object_array_add(ops, etcd_txn_op(&op));
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

	/* A token refused as expired was dropped: a new one before the next request (the
	 * watch does the same before it reopens). At most one attempt a second. */
	if (c->cfg.username[0] && c->s_ttl_s && !etcd_have_token(c) && now >= t->auth_at) {
		t->auth_at = now + 1000;
		if (etcd_authenticate(c, t->auth, t->ep, PROBE_MS))
			return;
	}
	/* xfer_new() takes the lock (the token): requests are made after it is released */
	pthread_mutex_lock(&c->mu);
	lease = c->s_lease;
	snprintf(ttl, sizeof(ttl), "{\"TTL\":\"%u\"}", c->s_ttl_s);
	if (c->s_ttl_s && lease && !t->put && now >= t->put_at)
		body = session_txn(t);
	grant = c->s_ttl_s && !lease && !t->grant && now >= t->grant_at;
	pthread_mutex_unlock(&c->mu);
	if (grant)
		t->grant = xfer_new(t, t->ep, "/v3/lease/grant", strdup(ttl), PROBE_MS);
	if (body) {
		t->put = xfer_new(t, t->ep, "/v3/kv/txn", body, PROBE_MS);
		if (!t->put) {
			free(t->put_gens);
			t->put_gens = NULL;
		}
	}
	if (lease && !t->ka && now >= t->ka_at) {
		char *ka;

		if (asprintf(&ka, "{\"ID\":\"%lld\"}", (long long)lease) >= 0)
			t->ka = xfer_new(t, t->ep, "/v3/lease/keepalive", ka, PROBE_MS);
	}
}

/* The watch was silent: ask its member how it is; no answer = drop the watch. */
static void probe_done(struct thr *t, CURLcode rc, uint64_t now)
{
	struct json_object *resp =
		rc == CURLE_OK && t->probe->b.p ? json_tokener_parse(t->probe->b.p) : NULL;
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

/* ---- txns submitted by the caller (etcd_txn_submit) ---- */

/* r is done: off the thread's list, onto the caller's (etcd_txn_reap), the loop woken. */
static void req_finish(struct thr *t, struct etcd_req *r, int err)
{
	struct etcd *c = t->c;

	for (struct etcd_req **pp = &t->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	r->err = err;
	pthread_mutex_lock(&c->mu);
	r->next = c->reqs_done;
	c->reqs_done = r;
	pthread_mutex_unlock(&c->mu);
	wake_loop(c);
}

/* The next attempt of r: the current endpoint, a share of the budget (as call() does). */
static void req_attempt(struct thr *t, struct etcd_req *r, uint64_t now)
{
	struct etcd *c = t->c;
	long share = (long)(c->cfg.timeout_ms / c->cfg.n_endpoints);
	int ep, err;

	if (now >= r->deadline) {
		req_finish(t, r, r->err == -EIO || !r->err ? -ETIMEDOUT : r->err);
		return;
	}
	if (share < ATTEMPT_MIN_MS)
		share = ATTEMPT_MIN_MS;
	if ((long)(r->deadline - now) < share)
		share = (long)(r->deadline - now);
	pthread_mutex_lock(&c->mu);
	ep = c->endpoint;
	pthread_mutex_unlock(&c->mu);
	if (c->cfg.username[0] && !etcd_have_token(c)) {
		err = etcd_authenticate(c, t->auth, ep, share);
		if (err == -EACCES || err == -EPERM) {
			req_finish(t, r, err);
			return;
		}
		if (err) {
			r->err = err;
			etcd_failover(c, ep);
			return;
		}
	}
	r->x = xfer_new(t, ep, "/v3/kv/txn", strdup(r->body), share);
	if (!r->x)
		req_finish(t, r, -ENOMEM);
	else
		((struct xfer *)r->x)->ep = ep;
}

/* An attempt of r ended: its answer, or the next endpoint while the budget lasts. */
static void req_done(struct thr *t, struct etcd_req *r, CURLcode rc, uint64_t now)
{
	struct xfer *x = r->x;
	struct etcd *c = t->c;
	struct json_object *resp = NULL;
	long status = 0;
	int err = etcd_curl_errno(rc), ep = x->ep;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (!err) {
		resp = x->b.p ? json_tokener_parse(x->b.p) : NULL;
		err = resp ? etcd_json_error(resp, NULL, 0) : status >= 500 ? -ETIMEDOUT : -EINVAL;
	}
	if (!err)
		err = etcd_parse_txn(resp, &r->succeeded, &r->rev);
	json_object_put(resp);
	xfer_free(t, x);
	r->x = NULL;
	r->err = err;
	if (err == -EKEYEXPIRED && c->cfg.username[0] && !r->renewed) {
		pthread_mutex_lock(&c->mu);
		c->token[0] = '\0'; /* simple tokens expire: a new one, once */
		pthread_mutex_unlock(&c->mu);
		r->renewed = true;
		return;
	}
	if (err == -EKEYEXPIRED)
		err = -EACCES;
	if (!etcd_unavailable(err) && err != -EIO) {
		req_finish(t, r, err);
		return;
	}
	etcd_failover(c, ep);
	r->retry_at = now + RETRY_MIN_MS; /* a refused connection fails at once: not a spin */
}

/* Take what the caller submitted; start an attempt of every txn between attempts. */
static void reqs_step(struct thr *t, uint64_t now)
{
	struct etcd *c = t->c;
	struct etcd_req *r, *next;

	pthread_mutex_lock(&c->mu);
	r = c->reqs;
	c->reqs = NULL;
	pthread_mutex_unlock(&c->mu);
	for (; r; r = next) {
		next = r->next;
		r->next = t->reqs;
		t->reqs = r;
	}
	for (r = t->reqs; r; r = next) {
		next = r->next;
		if (!r->x && now >= r->retry_at)
			req_attempt(t, r, now);
	}
}

static void thr_step(struct thr *t)
{
	struct etcd *c = t->c;
	uint64_t now = etcd_now_ms(), gen;
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
	reqs_step(t, now);
	if (t->watch && !t->probe && now - t->last_data > WATCH_SILENT_MS)
		t->probe =
			xfer_new(t, t->watch->ep, "/v3/maintenance/status", strdup("{}"), PROBE_MS);
}

static void thr_done(struct thr *t, CURLMsg *msg)
{
	struct xfer *x = NULL;
	uint64_t now = etcd_now_ms();

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
	else
		for (struct etcd_req *r = t->reqs; r; r = r->next)
			if (r->x == x) {
				req_done(t, r, msg->data.result, now);
				break;
			}
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
	/* txns in flight: handed back unfinished, etcd_close tells their callers */
	while (t.reqs) {
		struct etcd_req *r = t.reqs;

		xfer_free(&t, r->x);
		r->x = NULL;
		t.reqs = r->next;
		r->err = -ESHUTDOWN;
		pthread_mutex_lock(&c->mu);
		r->next = c->reqs_done;
		c->reqs_done = r;
		pthread_mutex_unlock(&c->mu);
	}
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

int etcd_txn_submit(struct etcd *c, const struct etcd_cmp *cmp, size_t n_cmp,
		    const struct etcd_op *ops, size_t n_ops, etcd_txn_done_fn done, void *arg)
{
	struct etcd_req *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->body = etcd_txn_body(cmp, n_cmp, ops, n_ops);
	if (!r->body) {
		free(r);
		return -ENOMEM;
	}
	r->deadline = etcd_now_ms() + c->cfg.timeout_ms;
	r->done = done;
	r->arg = arg;
	err = thread_start(c);
	if (err) {
		etcd_reqs_free(r);
		return err;
	}
	pthread_mutex_lock(&c->mu);
	c->st.requests++;
	r->next = c->reqs;
	c->reqs = r;
	pthread_mutex_unlock(&c->mu);
	curl_multi_wakeup(c->multi);
	return 0;
}

void etcd_txn_reap(struct etcd *c)
{
	struct etcd_req *r, *prev = NULL, *next;

	pthread_mutex_lock(&c->mu);
	r = c->reqs_done;
	c->reqs_done = NULL;
	pthread_mutex_unlock(&c->mu);
	for (; r; r = next) { /* the list is newest first: in finishing order */
		next = r->next;
		r->next = prev;
		prev = r;
	}
	for (r = prev; r; r = next) {
		next = r->next;
		r->done(r->arg, r->err, r->succeeded, r->rev);
		free(r->body);
		free(r);
	}
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
