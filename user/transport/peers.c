// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "events.h"
#include "fsutil.h"
#include "handlers.h"
#include "http.h"
#include "log.h"
#include "mcp.h"
#include "mcp_era.h"
#include "peers.h"
#include "version.h"

#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	30000
#define STEP_TIMEOUT_NS (10ULL * 1000000000ULL)
#define AUTO_EVERY_NS	(1ULL * 1000000000ULL) /* "peers": "auto" re-reads the hosts this often */
#define HTTP_REPLY_MAX	(4U << 20)

enum pstate { P_IDLE, P_CONNECTING, P_INITIALIZING, P_READY, P_BACKOFF };

static const char *const state_names[] = { "idle", "connecting", "initializing", "ready",
					   "backoff" };

struct peer {
	struct peers *ps;
	struct peer_cfg cfg;
	struct peer_url u;
	pthread_mutex_t mu; /* everything below: the HTTP worker shares it */
	pthread_cond_t cv;
	char **q; /* serialized events, a ring */
	size_t head, count, inflight;
	uint64_t sent, dropped, refused, connects, failures, batches;
	char last_error[256];
	uint64_t last_ok_ns, connected_ns;
	enum pstate state;
	unsigned int backoff_ms;
	uint64_t next_try_ns, deadline_ns;
	/* The era the peer speaks: 2026-07-28 when its server/discover offers it (every
	 * request then carries the envelope, no session), else the legacy handshake. */
	bool modern, probing;
	/* WebSocket (loop thread) */
	uint64_t conn;
	int64_t next_id, init_id, batch_id;
	/* Streamable HTTP (worker thread) */
	pthread_t thread;
	bool thread_started, stop, exited;
	char session[128];
	/* "auto": the slot holds a peer (used), which is being stopped (retiring: its host
	 * left the machine registry; the slot is freed once its worker has exited). */
	bool used, retiring;
	char host[256];
};

struct peers {
	const struct config *cfg; /* host, peers */
	struct events *ev;
	struct http *http;
	const struct handler_ctx *hx; /* "auto": host.list */
	struct peer *v;
	size_t n; /* slots: the configured peers, or CONFIG_MAX_PEERS with "auto" */
	int sub_id;
	uint64_t next_auto_ns;
	uint64_t auto_added, auto_removed;
	char auto_error[256];
};

/* A slot that carries events: configured, or an "auto" peer whose host is still there. */
static bool peer_live(const struct peer *p)
{
	return p->used && !p->retiring;
}

static void auto_follow(struct peers *ps);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- the queue (under p->mu) ---- */

static void q_push(struct peer *p, const char *ev)
{
	char *dup;

	if (p->count == p->cfg.queue_max || !(dup = strdup(ev))) {
		p->dropped++;
		return;
	}
	p->q[(p->head + p->count) % p->cfg.queue_max] = dup;
	p->count++;
}

/* The per-request envelope of 2026-07-28 (a "_meta" member, for params). */
#define ENVELOPE                                                                                   \
	"\"_meta\":{\"" MCP_KEY_VERSION "\":\"" MCP_MODERN_VERSION "\",\"" MCP_KEY_CAPS            \
	"\":{},\"" MCP_KEY_CLIENT "\":{\"name\":\"caelumd\",\"version\":\"" CAELUM_VERSION "\"}}"

/* The first PEER_BATCH_MAX queued events as one tools/call ingest_events (malloc'd). */
static char *q_batch(struct peer *p, const char *host, int64_t id)
{
	size_t n = p->count < PEER_BATCH_MAX ? p->count : PEER_BATCH_MAX,
	       len = 256 + sizeof(ENVELOPE) + strlen(host);
	struct json_object *h = json_object_new_string(host);
	char *buf, *w;

	for (size_t i = 0; i < n; i++)
		len += strlen(p->q[(p->head + i) % p->cfg.queue_max]) + 1;
	buf = malloc(len);
	if (!buf) {
		json_object_put(h);
		return NULL;
	}
	w = buf + sprintf(buf,
			  "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\",\"params\":"
			  "{%s\"name\":\"ingest_events\",\"arguments\":{\"host\":%s,\"events\":[",
			  (long long)id, p->modern ? ENVELOPE "," : "",
			  json_object_to_json_string(h));
	for (size_t i = 0; i < n; i++)
		w += sprintf(w, "%s%s", i ? "," : "", p->q[(p->head + i) % p->cfg.queue_max]);
	strcpy(w, "]}}}");
	json_object_put(h);
	p->inflight = n;
	return buf;
}

/* The batch was answered: done with it (sent, or refused by the peer). */
static void q_done(struct peer *p, bool refused)
{
	for (size_t i = 0; i < p->inflight; i++) {
		free(p->q[p->head]);
		p->head = (p->head + 1) % p->cfg.queue_max;
	}
	p->count -= p->inflight;
	if (refused)
		p->refused += p->inflight;
	else
		p->sent += p->inflight;
	p->batches++;
	p->inflight = 0;
	p->last_ok_ns = time_now_ns();
}

static void set_error(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->last_error, sizeof(p->last_error), fmt, ap);
	va_end(ap);
}

/* Connection lost or refused: try again later. Under p->mu. */
static void backoff(struct peer *p)
{
	p->failures++;
	p->inflight = 0; /* sent again after reconnecting */
	p->state = P_BACKOFF;
	p->session[0] = '\0';
	p->next_try_ns = mono_ns() + (uint64_t)p->backoff_ms * 1000000ULL;
	p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void connected(struct peer *p)
{
	p->state = P_READY;
	p->connects++;
	p->connected_ns = time_now_ns();
	p->backoff_ms = BACKOFF_MIN_MS;
	p->last_error[0] = '\0';
}

static int read_token(struct peer *p, char *tok, size_t len)
{
	char *buf = NULL;
	size_t n;
	int err;

	tok[0] = '\0';
	if (!p->cfg.token_file[0])
		return 0;
	err = file_read_all(p->cfg.token_file, 4096, &buf, &n);
	if (err) {
		set_error(p, "token_file %s: %s", p->cfg.token_file, strerror(-err));
		return err;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	snprintf(tok, len, "%s", buf);
	free(buf);
	return 0;
}

static const char *initialize_msg(int64_t id, char *buf, size_t len)
{
	snprintf(buf, len,
		 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"initialize\",\"params\":"
		 "{\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":"
		 "{\"name\":\"caelumd\",\"version\":\"%s\"}}}",
		 (long long)id, MCP_LATEST_VERSION, CAELUM_VERSION);
	return buf;
}

static const char *discover_msg(int64_t id, char *buf, size_t len)
{
	snprintf(buf, len,
		 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"server/discover\",\"params\":"
		 "{" ENVELOPE "}}",
		 (long long)id);
	return buf;
}

/* Does a server/discover reply offer 2026-07-28? Anything else (an error, a legacy server's
 * refusal, a list without it) means the legacy handshake. */
static bool discover_modern(struct json_object *reply)
{
	struct json_object *res, *v;

	if (!reply || !json_object_object_get_ex(reply, "result", &res) ||
	    !json_object_object_get_ex(res, "supportedVersions", &v) ||
	    !json_object_is_type(v, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(v, i)),
			    MCP_MODERN_VERSION))
			return true;
	return false;
}

static const char initialized_msg[] =
	"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

/* Is this JSON-RPC reply a success? Else why (into why). A tool's isError counts as a
 * refusal: the peer saw the events and will not take them. */
static bool reply_ok(struct json_object *reply, char *why, size_t len, bool *refused)
{
	struct json_object *e, *res, *is_err, *content;

	*refused = false;
	if (json_object_object_get_ex(reply, "error", &e)) {
		snprintf(why, len, "peer error %d: %s",
			 json_object_get_int(json_object_object_get(e, "code")),
			 json_object_get_string(json_object_object_get(e, "message")));
		*refused = true;
		return false;
	}
	if (!json_object_object_get_ex(reply, "result", &res)) {
		snprintf(why, len, "malformed reply");
		return false;
	}
	if (json_object_object_get_ex(res, "isError", &is_err) && json_object_get_boolean(is_err)) {
		json_object_object_get_ex(res, "content", &content);
		snprintf(why, len, "peer refused the events: %s",
			 json_object_get_string(json_object_object_get(
				 json_object_array_get_idx(content, 0), "text")));
		*refused = true;
		return false;
	}
	return true;
}

/* ---- WebSocket peers (loop thread) ---- */

static void ws_pump(struct peers *ps, struct peer *p)
{
	char *msg;

	pthread_mutex_lock(&p->mu);
	if (p->state != P_READY || p->inflight || !p->count) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	p->batch_id = ++p->next_id;
	msg = q_batch(p, ps->cfg->host, p->batch_id);
	p->deadline_ns = mono_ns() + STEP_TIMEOUT_NS;
	pthread_mutex_unlock(&p->mu);
	if (msg && http_send(ps->http, p->conn, msg, strlen(msg)))
		http_end(ps->http, p->conn); /* its close brings the backoff */
	free(msg);
}

static void ws_connect(struct peers *ps, struct peer *p)
{
	char tok[512];
	int err;

	if (read_token(p, tok, sizeof(tok))) {
		pthread_mutex_lock(&p->mu);
		backoff(p);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	err = http_ws_connect(ps->http, p->u.host, p->u.port, p->u.path, p->u.tls, tok, &p->conn);
	pthread_mutex_lock(&p->mu);
	if (err) {
		set_error(p, "cannot connect: %s", strerror(-err));
		backoff(p);
	} else {
		p->state = P_CONNECTING;
		p->deadline_ns = mono_ns() + STEP_TIMEOUT_NS;
	}
	pthread_mutex_unlock(&p->mu);
}

static struct peer *peer_of_conn(struct peers *ps, uint64_t conn)
{
	for (size_t i = 0; i < ps->n; i++)
		if (peer_live(&ps->v[i]) && ps->v[i].u.ws && ps->v[i].conn == conn &&
		    ps->v[i].state != P_BACKOFF && ps->v[i].state != P_IDLE)
			return &ps->v[i];
	return NULL;
}

static void ws_message(struct peers *ps, struct peer *p, const struct http_request *r)
{
	struct json_object *msg = r->body ? json_tokener_parse(r->body) : NULL, *id;
	char why[256];
	bool refused;
	int64_t n;

	if (!msg || !json_object_object_get_ex(msg, "id", &id) ||
	    !json_object_is_type(id, json_type_int)) {
		json_object_put(msg); /* a notification from the peer: nothing to do */
		return;
	}
	n = json_object_get_int64(id);
	pthread_mutex_lock(&p->mu);
	if (n == p->init_id && p->state == P_INITIALIZING && p->probing) {
		char buf[512];

		p->probing = false;
		p->modern = discover_modern(msg);
		if (p->modern) {
			connected(p);
			pthread_mutex_unlock(&p->mu);
			p_info("peer %s: connected (MCP %s)", p->cfg.url, MCP_MODERN_VERSION);
			ws_pump(ps, p);
		} else {
			p->init_id = ++p->next_id;
			pthread_mutex_unlock(&p->mu);
			initialize_msg(p->init_id, buf, sizeof(buf));
			http_send(ps->http, p->conn, buf, strlen(buf));
		}
	} else if (n == p->init_id && p->state == P_INITIALIZING) {
		if (reply_ok(msg, why, sizeof(why), &refused)) {
			connected(p);
			pthread_mutex_unlock(&p->mu);
			http_send(ps->http, p->conn, initialized_msg, sizeof(initialized_msg) - 1);
			p_info("peer %s: connected", p->cfg.url);
			ws_pump(ps, p);
		} else {
			set_error(p, "initialize: %s", why);
			pthread_mutex_unlock(&p->mu);
			http_end(ps->http, p->conn);
		}
	} else if (n == p->batch_id && p->inflight) {
		bool ok = reply_ok(msg, why, sizeof(why), &refused);

		if (ok || refused) {
			if (!ok)
				set_error(p, "%s", why);
			q_done(p, !ok);
		}
		pthread_mutex_unlock(&p->mu);
		ws_pump(ps, p);
	} else {
		pthread_mutex_unlock(&p->mu);
	}
	json_object_put(msg);
}

void peers_ws_event(struct peers *ps, struct http_request *r)
{
	struct peer *p = ps ? peer_of_conn(ps, r->conn) : NULL;
	char buf[512];

	if (!p)
		return;
	switch (r->kind) {
	case HTTP_WS_OPEN:
		pthread_mutex_lock(&p->mu);
		p->state = P_INITIALIZING;
		p->init_id = ++p->next_id;
		p->probing = true;
		p->modern = false;
		p->deadline_ns = mono_ns() + STEP_TIMEOUT_NS;
		pthread_mutex_unlock(&p->mu);
		discover_msg(p->init_id, buf, sizeof(buf));
		http_send(ps->http, p->conn, buf, strlen(buf));
		break;
	case HTTP_WS_MESSAGE:
		ws_message(ps, p, r);
		break;
	case HTTP_CLOSED:
		pthread_mutex_lock(&p->mu);
		if (p->state == P_READY)
			p_warn("peer %s: disconnected (%s); %zu events queued", p->cfg.url,
			       r->body ? r->body : "closed", p->count);
		if (!p->last_error[0] || p->state == P_READY || p->state == P_CONNECTING)
			set_error(p, "%s", r->body ? r->body : "connection closed");
		backoff(p);
		pthread_mutex_unlock(&p->mu);
		break;
	default:
		break;
	}
}

/* ---- Streamable HTTP peers (one worker thread each) ---- */

struct reply {
	char *body;
	size_t len;
	char session[128];
	char ctype[128];
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct reply *r = ctx;
	size_t k = size * n;
	char *b;

	if (r->len + k > HTTP_REPLY_MAX || !(b = realloc(r->body, r->len + k + 1)))
		return 0;
	r->body = b;
	memcpy(r->body + r->len, data, k);
	r->len += k;
	r->body[r->len] = '\0';
	return k;
}

static void header_value(const char *line, size_t len, const char *name, char *dst, size_t dl)
{
	size_t nl = strlen(name);

	if (len > nl && !strncasecmp(line, name, nl)) {
		const char *v = line + nl;
		size_t vl = len - nl;

		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		snprintf(dst, dl, "%.*s", (int)vl, v);
	}
}

static size_t on_header(char *line, size_t size, size_t n, void *ctx)
{
	struct reply *r = ctx;

	header_value(line, size * n, "mcp-session-id:", r->session, sizeof(r->session));
	header_value(line, size * n, "content-type:", r->ctype, sizeof(r->ctype));
	return size * n;
}

/* The JSON-RPC message with this id in the reply (a JSON body, or an SSE stream). */
static struct json_object *reply_message(struct reply *r, int64_t id)
{
	struct json_object *m, *v;
	char *save = NULL;

	if (!r->body)
		return NULL;
	if (strncasecmp(r->ctype, "text/event-stream", 17))
		return json_tokener_parse(r->body);
	for (char *line = strtok_r(r->body, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "data:", 5))
			continue;
		m = json_tokener_parse(line + 5);
		if (m && json_object_object_get_ex(m, "id", &v) && json_object_get_int64(v) == id)
			return m;
		json_object_put(m);
	}
	return NULL;
}

/* POST one message; method names a 2026-07-28 request (its headers are sent: SEP-2243),
 * NULL a legacy one. The HTTP status, or -1 (transport error, in p->last_error). */
static long http_post(struct peer *p, const char *body, const char *token, struct reply *r,
		      const char *method)
{
	char auth[600], sess[200], mh[96];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	long status = -1;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	if (!c) {
		set_error(p, "libcurl: out of memory");
		return -1;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json, text/event-stream");
	if (method) {
		h = curl_slist_append(h, "MCP-Protocol-Version: " MCP_MODERN_VERSION);
		snprintf(mh, sizeof(mh), "Mcp-Method: %s", method);
		h = curl_slist_append(h, mh);
		if (!strcmp(method, "tools/call"))
			h = curl_slist_append(h, "Mcp-Name: ingest_events");
	} else {
		h = curl_slist_append(h, "MCP-Protocol-Version: " MCP_LATEST_VERSION);
	}
	if (token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (p->session[0]) {
		snprintf(sess, sizeof(sess), "Mcp-Session-Id: %s", p->session);
		h = curl_slist_append(h, sess);
	}
	curl_easy_setopt(c, CURLOPT_URL, p->cfg.url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		set_error(p, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static bool http_initialize(struct peer *p, const char *token)
{
	char buf[512], why[256];
	struct json_object *m;
	struct reply r;
	bool ok = false, refused;
	long st;

	p->session[0] = '\0';
	p->modern = false;
	st = http_post(p, discover_msg(1, buf, sizeof(buf)), token, &r, "server/discover");
	m = st == 200 ? reply_message(&r, 1) : NULL;
	free(r.body);
	p->modern = discover_modern(m);
	json_object_put(m);
	if (p->modern)
		return true;
	st = http_post(p, initialize_msg(1, buf, sizeof(buf)), token, &r, NULL);
	if (st == 200 && (m = reply_message(&r, 1))) {
		ok = reply_ok(m, why, sizeof(why), &refused);
		if (!ok)
			set_error(p, "initialize: %s", why);
		json_object_put(m);
	} else if (st >= 0) {
		set_error(p, "initialize: HTTP %ld", st);
	}
	if (ok) {
		snprintf(p->session, sizeof(p->session), "%s", r.session);
		free(r.body);
		st = http_post(p, initialized_msg, token, &r, NULL);
		if (st < 200 || st > 299) {
			set_error(p, "notifications/initialized: HTTP %ld", st);
			ok = false;
		}
	}
	free(r.body);
	return ok;
}

static void *http_worker(void *arg)
{
	struct peer *p = arg;
	char token[512] = "";
	bool ready = false;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		uint64_t now = mono_ns();

		if (!ready && now < p->next_try_ns) {
			struct timespec ts;
			uint64_t wait = p->next_try_ns - now;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(wait / 1000000000ULL);
			ts.tv_nsec += (long)(wait % 1000000000ULL);
			if (ts.tv_nsec >= 1000000000L)
				ts.tv_sec++, ts.tv_nsec -= 1000000000L;
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			continue;
		}
		if (ready && !p->count) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		if (!ready) {
			p->state = P_CONNECTING;
			pthread_mutex_unlock(&p->mu);
			ready = !read_token(p, token, sizeof(token)) && http_initialize(p, token);
			pthread_mutex_lock(&p->mu);
			if (ready) {
				connected(p);
				p_info("peer %s: connected (MCP %s)", p->cfg.url,
				       p->modern ? MCP_MODERN_VERSION : MCP_LATEST_VERSION);
			} else {
				backoff(p);
			}
			continue;
		} else {
			int64_t id = ++p->next_id;
			char *msg = q_batch(p, p->ps->cfg->host, id), why[256];
			struct json_object *m = NULL;
			struct reply r;
			bool refused;
			long st;

			pthread_mutex_unlock(&p->mu);
			st = msg ? http_post(p, msg, token, &r, p->modern ? "tools/call" : NULL)
				 : -1;
			free(msg);
			if (st == 200)
				m = reply_message(&r, id);
			free(r.body);
			pthread_mutex_lock(&p->mu);
			if (m && reply_ok(m, why, sizeof(why), &refused)) {
				q_done(p, false);
			} else if (m && refused) {
				set_error(p, "%s", why);
				q_done(p, true);
			} else {
				if (st == 404)
					set_error(p, "session ended by the peer");
				else if (st >= 0)
					set_error(p, "ingest_events: HTTP %ld", st);
				if (p->state == P_READY)
					p_warn("peer %s: %s; %zu events queued", p->cfg.url,
					       p->last_error, p->count);
				backoff(p);
				ready = false;
			}
			json_object_put(m);
		}
	}
	p->exited = true;
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- common ---- */

static void on_event(void *ctx, struct json_object *ev)
{
	struct peers *ps = ctx;
	struct json_object *host;
	const char *txt;

	/* Only this host's events: what came from peers stays here. */
	if (!json_object_object_get_ex(ev, "host", &host) ||
	    strcmp(json_object_get_string(host), ps->cfg->host))
		return;
	txt = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
	for (size_t i = 0; i < ps->n; i++) {
		struct peer *p = &ps->v[i];

		if (!peer_live(p))
			continue;
		pthread_mutex_lock(&p->mu);
		q_push(p, txt);
		if (!p->u.ws)
			pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (p->u.ws)
			ws_pump(ps, p);
	}
}

void peers_tick(struct peers *ps, uint64_t now_ns)
{
	uint64_t now = mono_ns();

	(void)now_ns;
	if (ps && ps->cfg->peers_auto && now >= ps->next_auto_ns) {
		ps->next_auto_ns = now + AUTO_EVERY_NS;
		auto_follow(ps);
	}
	for (size_t i = 0; ps && i < ps->n; i++) {
		struct peer *p = &ps->v[i];
		bool connect, stuck;

		if (!peer_live(p) || !p->u.ws)
			continue;
		pthread_mutex_lock(&p->mu);
		connect = (p->state == P_IDLE || p->state == P_BACKOFF) && now >= p->next_try_ns;
		stuck = ((p->state == P_CONNECTING || p->state == P_INITIALIZING) ||
			 (p->state == P_READY && p->inflight)) &&
			now > p->deadline_ns;
		if (stuck)
			set_error(p, "no answer from the peer in %llu s",
				  STEP_TIMEOUT_NS / 1000000000ULL);
		pthread_mutex_unlock(&p->mu);
		if (connect)
			ws_connect(ps, p);
		else if (stuck)
			http_end(ps->http, p->conn); /* the close brings the backoff */
	}
}

struct json_object *peers_status_json(struct peers *ps)
{
	struct json_object *arr = json_object_new_array();
	char ts[64];

	for (size_t i = 0; ps && i < ps->n; i++) {
		struct peer *p = &ps->v[i];
		struct json_object *o;

		if (!peer_live(p))
			continue;
		o = json_object_new_object();
		pthread_mutex_lock(&p->mu);
		json_object_object_add(o, "url", json_object_new_string(p->cfg.url));
		json_object_object_add(o, "host",
				       p->host[0] ? json_object_new_string(p->host) : NULL);
		json_object_object_add(o, "transport",
				       json_object_new_string(p->u.ws ? "websocket" : "http"));
		json_object_object_add(o, "state", json_object_new_string(state_names[p->state]));
		json_object_object_add(
			o, "protocol_version",
			p->state != P_READY
				? NULL
				: json_object_new_string(p->modern ? MCP_MODERN_VERSION
								   : MCP_LATEST_VERSION));
		json_object_object_add(o, "queued", json_object_new_uint64(p->count));
		json_object_object_add(o, "in_flight", json_object_new_uint64(p->inflight));
		json_object_object_add(o, "sent", json_object_new_uint64(p->sent));
		json_object_object_add(o, "dropped", json_object_new_uint64(p->dropped));
		json_object_object_add(o, "refused", json_object_new_uint64(p->refused));
		json_object_object_add(o, "batches", json_object_new_uint64(p->batches));
		json_object_object_add(o, "connects", json_object_new_uint64(p->connects));
		json_object_object_add(o, "failures", json_object_new_uint64(p->failures));
		json_object_object_add(o, "last_error",
				       p->last_error[0] ? json_object_new_string(p->last_error)
							: NULL);
		if (p->last_ok_ns)
			time_format_rfc3339(p->last_ok_ns, ts, sizeof(ts));
		json_object_object_add(o, "last_delivery",
				       p->last_ok_ns ? json_object_new_string(ts) : NULL);
		pthread_mutex_unlock(&p->mu);
		json_object_array_add(arr, o);
	}
	return arr;
}

/* Start the peer of slot p: its queue and, for Streamable HTTP, its worker. 0 or -errno. */
static int peer_start(struct peers *ps, struct peer *p, const struct peer_cfg *pc)
{
	pthread_condattr_t ca;
	char why[128];

	memset(p, 0, sizeof(*p));
	p->ps = ps;
	p->cfg = *pc;
	if (peer_url_parse(p->cfg.url, &p->u, why, sizeof(why)))
		return -EINVAL; /* configured ones were validated; "auto" ones are checked first */
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->backoff_ms = BACKOFF_MIN_MS;
	p->used = true;
	p->q = calloc(p->cfg.queue_max, sizeof(*p->q));
	if (!p->q)
		return -ENOMEM;
	if (!p->u.ws) {
		if (pthread_create(&p->thread, NULL, http_worker, p))
			return -EAGAIN;
		p->thread_started = true;
	}
	return 0;
}

/* Ask the peer of slot p to stop: its worker ends at its next wake-up (a request in flight
 * finishes first), a WebSocket is closed. */
static void peer_retire(struct peers *ps, struct peer *p)
{
	pthread_mutex_lock(&p->mu);
	p->retiring = true;
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->u.ws && p->conn && p->state != P_IDLE && p->state != P_BACKOFF)
		http_end(ps->http, p->conn);
}

/* Free slot p once nothing uses it; wait for its worker when wait is set. True when freed. */
static bool peer_free(struct peer *p, bool wait)
{
	bool exited;

	if (!p->used)
		return true;
	if (p->thread_started) {
		pthread_mutex_lock(&p->mu);
		exited = p->exited;
		pthread_mutex_unlock(&p->mu);
		if (!exited && !wait)
			return false;
		pthread_join(p->thread, NULL);
	}
	for (size_t k = 0; p->q && k < p->count; k++)
		free(p->q[(p->head + k) % p->cfg.queue_max]);
	free(p->q);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	memset(p, 0, sizeof(*p));
	return true;
}

/* ---- "peers": "auto": the other hosts of the machine registry ---- */

/* Why following the machine registry fails now; logged when it changes. */
static void auto_fail(struct peers *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void auto_fail(struct peers *ps, const char *fmt, ...)
{
	char why[sizeof(ps->auto_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (strcmp(why, ps->auto_error))
		p_warn("mcp.peers auto: %s", why);
	snprintf(ps->auto_error, sizeof(ps->auto_error), "%s", why);
}

static struct peer *peer_of_url(struct peers *ps, const char *url)
{
	for (size_t i = 0; i < ps->n; i++)
		if (peer_live(&ps->v[i]) && !strcmp(ps->v[i].cfg.url, url))
			return &ps->v[i];
	return NULL;
}

/* The mcp_url of every other host that is up, in hosts (host.list's answer). */
static bool auto_wanted(struct peers *ps, struct json_object *hosts, const char *url)
{
	for (size_t i = 0; i < json_object_array_length(hosts); i++) {
		struct json_object *h = json_object_array_get_idx(hosts, i), *x;

		if (json_object_object_get_ex(h, "mcp_url", &x) &&
		    !strcmp(json_object_get_string(x) ?: "", url) &&
		    json_object_object_get_ex(h, "state", &x) &&
		    !strcmp(json_object_get_string(x), "up") &&
		    json_object_object_get_ex(h, "name", &x) &&
		    strcmp(json_object_get_string(x), ps->cfg->host))
			return true;
	}
	return false;
}

static void auto_add(struct peers *ps, const char *host, const char *url)
{
	struct peer_cfg pc = { .queue_max = 10000 };
	struct peer *slot = NULL;
	struct peer_url u;
	char why[128];
	int err;

	if (strlen(url) >= sizeof(pc.url) || peer_url_parse(url, &u, why, sizeof(why))) {
		auto_fail(ps, "host %s: mcp_url \"%.200s\": %s", host, url,
			  strlen(url) >= sizeof(pc.url) ? "too long" : why);
		return;
	}
	for (size_t i = 0; i < ps->n && !slot; i++)
		if (!ps->v[i].used)
			slot = &ps->v[i];
	if (!slot) {
		auto_fail(ps, "host %s: more than %d peers; not followed", host, CONFIG_MAX_PEERS);
		return;
	}
	snprintf(pc.url, sizeof(pc.url), "%s", url);
	snprintf(pc.token_file, sizeof(pc.token_file), "%s", ps->cfg->peers_token_file);
	err = peer_start(ps, slot, &pc);
	if (err) {
		auto_fail(ps, "host %s: failed to start: %s", host, strerror(-err));
		peer_retire(ps, slot);
		peer_free(slot, true);
		return;
	}
	snprintf(slot->host, sizeof(slot->host), "%s", host);
	ps->auto_added++;
	p_info("mcp.peers auto: following host %s at %s", host, url);
}

/* Follow the machine registry: a peer per other host that is up, none for the rest. */
static void auto_follow(struct peers *ps)
{
	struct caller who = { .uid = (uid_t)-1, .transport = "peers" };
	struct json_object *hosts = NULL;
	struct herr err = {};

	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].retiring)
			peer_free(&ps->v[i], false);
	if (handlers_call(ps->hx, "host.list", NULL, &who, &hosts, &err, NULL)) {
		auto_fail(ps, "host.list: %s", err.message);
		return;
	}
	for (size_t i = 0; i < ps->n; i++) {
		struct peer *p = &ps->v[i];

		if (peer_live(p) && !auto_wanted(ps, hosts, p->cfg.url)) {
			p_info("mcp.peers auto: host %s left (%s)", p->host, p->cfg.url);
			peer_retire(ps, p);
			ps->auto_removed++;
		}
	}
	for (size_t i = 0; i < json_object_array_length(hosts); i++) {
		struct json_object *h = json_object_array_get_idx(hosts, i), *name, *url;

		if (json_object_object_get_ex(h, "mcp_url", &url) && json_object_get_string(url) &&
		    json_object_object_get_ex(h, "name", &name) &&
		    auto_wanted(ps, hosts, json_object_get_string(url)) &&
		    !peer_of_url(ps, json_object_get_string(url)))
			auto_add(ps, json_object_get_string(name), json_object_get_string(url));
	}
	json_object_put(hosts);
}

int peers_open(struct peers **out, const struct config *cfg, struct events *ev, struct http *http,
	       const struct handler_ctx *hx)
{
	size_t slots = cfg->peers_auto ? CONFIG_MAX_PEERS : cfg->n_peers;
	struct peers *ps;
	int err;

	*out = NULL;
	if (!slots)
		return 0;
	ps = calloc(1, sizeof(*ps));
	if (!ps || !(ps->v = calloc(slots, sizeof(*ps->v)))) {
		free(ps);
		return -ENOMEM;
	}
	ps->cfg = cfg;
	ps->ev = ev;
	ps->http = http;
	ps->hx = hx;
	ps->n = slots;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (size_t i = 0; !cfg->peers_auto && i < cfg->n_peers; i++) {
		err = peer_start(ps, &ps->v[i], &cfg->peers[i]);
		if (err) {
			peers_close(ps);
			return err;
		}
	}
	ps->sub_id = events_subscribe(ev, on_event, ps);
	if (ps->sub_id <= 0) {
		peers_close(ps);
		return -ENOSPC;
	}
	*out = ps;
	return 0;
}

void peers_close(struct peers *ps)
{
	if (!ps)
		return;
	if (ps->sub_id > 0)
		events_unsubscribe(ps->ev, ps->sub_id);
	for (size_t i = 0; i < ps->n; i++) {
		struct peer *p = &ps->v[i];

		if (p->thread_started) {
			pthread_mutex_lock(&p->mu);
			p->stop = true;
			pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
		peer_free(p, true);
	}
	free(ps->v);
	free(ps);
}

/* ---- the transport (transport.h) ---- */

static int peers_start(const struct transport_env *env, void **self)
{
	int err = peers_open((struct peers **)self, env->cfg, env->ev, env->http, env->hx);

	if (err)
		p_err("mcp.peers: failed to start: %s", strerror(-err));
	return err;
}

static void peers_stop(void *self)
{
	peers_close(self);
}

static void peers_tick_op(void *self, uint64_t now_ns)
{
	peers_tick(self, now_ns);
}

/* Status "http"."mcp"."peers": one object per peer. */
static struct json_object *peers_status(void *self)
{
	return peers_status_json(self);
}

static void peers_request(void *self, struct http_request *r)
{
	peers_ws_event(self, r);
}

const struct transport_ops peers_transport = {
	.name = "peers",
	.listener = HTTP_PEER,
	.start = peers_start,
	.stop = peers_stop,
	.tick = peers_tick_op,
	.status = peers_status,
	.request = peers_request,
};
