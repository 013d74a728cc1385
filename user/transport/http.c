// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Threads: the server thread owns the lws context and every struct lws; the loop thread
 * (caelumd's) owns the daemon. They share only the slot table, the inbox, the token and
 * the counters, all under h->mu. See http.h for the flow.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "assets.h"
#include "connlimit.h"
#include "http.h"
#include "http_auth.h"
#include "log.h"
#include "token.h"

#define MAX_SLOTS      1024
#define SLOT_BITS      10
#define WRITE_PIECE    (32U * 1024)
#define WS_PENDING_MAX 64 /* WebSocket messages waiting for the loop, per connection */

enum slot_kind { SLOT_FREE, SLOT_HTTP, SLOT_STREAM, SLOT_WS };

struct chunk {
	struct chunk *next;
	size_t len, off;
	const unsigned char *borrowed; /* static data (assets), else data[] */
	unsigned char data[];
};

struct slot {
	enum slot_kind kind;
	uint32_t gen;	 /* bumped for every request and at close: stale handles miss */
	struct lws *wsi; /* server thread only */
	int listener;
	bool busy;	/* a request is with the loop thread */
	bool head_only; /* the request is a HEAD: headers only (RFC 9110 section 9.3.2) */
	/* Response, filled by either thread under mu, written by the server thread. */
	bool hdr_pending;
	int status;
	char ctype[64];
	int64_t content_len; /* -1: a stream */
	char *hdrs;	     /* "name:\0value\0" pairs, NUL-NUL terminated */
	struct chunk *head, *tail;
	size_t queued;
	bool end;  /* finish once the queue is empty */
	bool wake; /* needs lws_callback_on_writable */
	bool gzip;
	unsigned int ws_pending;
	uint64_t body_deadline_ns; /* a request body must be in by then */
	/* Request being read (server thread only). */
	struct http_request *req;
	size_t body_cap;
	/* A client connection not made yet (http_ws_connect). */
	struct client_req *connect;
	char *token; /* its Authorization, for the handshake */
};

struct client_req {
	char host[256], path[256];
	uint16_t port;
	bool tls;
};

struct http {
	pthread_mutex_t mu;
	struct slot slots[MAX_SLOTS];
	struct http_request *inbox, *inbox_tail;
	bool lws_wake_pending;
	struct http_stats st;
	char token[TOKEN_LEN + 1];
	char hostname[256]; /* gethostname(): a Host the listeners answer to */
	struct http_opts opts;
	struct listen_cfg listen[HTTP_LISTENERS];
	bool serving[HTTP_LISTENERS];
	uint16_t port[HTTP_LISTENERS];
	struct lws_context *ctx;
	struct lws_vhost *vh[HTTP_LISTENERS];
	struct lws_vhost *client_vh; /* connections to peers */
	bool connects_pending;
	struct connlimit cl; /* server thread only */
	pthread_t thread;
	bool thread_started;
	volatile bool stop;
	int efd;
	struct loop *loop;
	unsigned char wbuf[LWS_PRE + WRITE_PIECE];
};

struct pss {
	int slot; /* index + 1; 0 = none */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t handle_of(const struct http *h, int i)
{
	return ((uint64_t)h->slots[i].gen << SLOT_BITS) | (uint64_t)i;
}

/* The slot a handle names, or NULL when it is stale. Under mu. */
static struct slot *slot_of(struct http *h, uint64_t conn)
{
	uint64_t i = conn & (MAX_SLOTS - 1);
	struct slot *s = &h->slots[i];

	if (s->kind == SLOT_FREE || s->gen != (uint32_t)(conn >> SLOT_BITS))
		return NULL;
	return s;
}

static void chunks_free(struct slot *s)
{
	while (s->head) {
		struct chunk *c = s->head;

		s->head = c->next;
		free(c);
	}
	s->tail = NULL;
	s->queued = 0;
}

static void response_reset(struct slot *s)
{
	chunks_free(s);
	free(s->hdrs);
	s->hdrs = NULL;
	s->hdr_pending = false;
	s->end = false;
	s->gzip = false;
}

/* Wake the server thread so that it asks for a writable callback. Under mu. */
static void wake_locked(struct http *h, struct slot *s)
{
	s->wake = true;
	if (!h->lws_wake_pending && h->ctx) {
		h->lws_wake_pending = true;
		lws_cancel_service(h->ctx);
	}
}

static int chunk_add(struct slot *s, const void *data, size_t len, bool borrow)
{
	struct chunk *c = malloc(sizeof(*c) + (borrow ? 0 : len));

	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->len = len;
	c->off = 0;
	c->borrowed = borrow ? data : NULL;
	if (!borrow && len)
		memcpy(c->data, data, len);
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	s->queued += len;
	return 0;
}

static char *headers_pack(const struct http_header *hdrs, size_t n)
{
	size_t len = 1;
	char *buf, *p;

	for (size_t i = 0; i < n; i++)
		len += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 3;
	buf = malloc(len);
	if (!buf)
		return NULL;
	p = buf;
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s:", hdrs[i].name) + 1, p += sprintf(p, "%s", hdrs[i].value) + 1;
	*p = '\0';
	return buf;
}

/* Set a whole response on s. Under mu. To a HEAD request, the same status and headers
 * (Content-Length that of the body) and no body; a stream's headers, then the end. */
static int respond_locked(struct http *h, struct slot *s, int status, const char *ctype,
			  const struct http_header *hdrs, size_t n_hdrs, const void *body,
			  size_t len, bool borrow, bool stream)
{
	response_reset(s);
	s->status = status;
	snprintf(s->ctype, sizeof(s->ctype), "%s", ctype ? ctype : "");
	s->content_len = stream ? -1 : (int64_t)len;
	if (n_hdrs && !(s->hdrs = headers_pack(hdrs, n_hdrs)))
		return -ENOMEM;
	if (len && !s->head_only && chunk_add(s, body, len, borrow))
		return -ENOMEM;
	s->hdr_pending = true;
	s->end = !stream || s->head_only;
	s->busy = false;
	if (stream && !s->head_only) {
		s->kind = SLOT_STREAM;
		h->st.streams++;
	}
	if (status >= 100 && status < 600)
		h->st.responses[status / 100]++;
	wake_locked(h, s);
	return 0;
}

int http_reply(struct http *h, uint64_t conn, int status, const char *ctype,
	       const struct http_header *hdrs, size_t n_hdrs, const void *body, size_t len)
{
	struct slot *s;
	int err = -ENOTCONN;

	pthread_mutex_lock(&h->mu);
	s = slot_of(h, conn);
	if (s && s->kind == SLOT_HTTP && s->busy)
		err = respond_locked(h, s, status, ctype, hdrs, n_hdrs, body, len, false, false);
	pthread_mutex_unlock(&h->mu);
	return err;
}

int http_reply_json(struct http *h, uint64_t conn, int status, struct json_object *o,
		    const struct http_header *hdrs, size_t n_hdrs)
{
	size_t len;
	const char *txt = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	char *body = malloc(len + 1);
	int err;

	if (!body)
		return -ENOMEM;
	memcpy(body, txt, len);
	body[len] = '\n';
	err = http_reply(h, conn, status, "application/json", hdrs, n_hdrs, body, len + 1);
	free(body);
	return err;
}

int http_stream_begin(struct http *h, uint64_t conn, const struct http_header *hdrs, size_t n_hdrs)
{
	struct slot *s;
	int err = -ENOTCONN;

	pthread_mutex_lock(&h->mu);
	s = slot_of(h, conn);
	if (s && s->kind == SLOT_HTTP && s->busy)
		err = respond_locked(h, s, 200, "text/event-stream", hdrs, n_hdrs, NULL, 0, false,
				     true);
	if (!err && s->head_only)
		err = 1; /* headers only: no stream follows */
	pthread_mutex_unlock(&h->mu);
	return err;
}

int http_send(struct http *h, uint64_t conn, const void *data, size_t len)
{
	struct slot *s;
	int err = -ENOTCONN;

	pthread_mutex_lock(&h->mu);
	s = slot_of(h, conn);
	if (s && (s->kind == SLOT_STREAM || s->kind == SLOT_WS) && !s->end) {
		if (s->queued + len > HTTP_STREAM_QUEUE_MAX) {
			h->st.stream_drops++;
			err = -ENOBUFS;
		} else {
			err = chunk_add(s, data, len, false);
			if (!err)
				wake_locked(h, s);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return err;
}

void http_end(struct http *h, uint64_t conn)
{
	struct slot *s;

	pthread_mutex_lock(&h->mu);
	s = slot_of(h, conn);
	if (s && (s->kind == SLOT_STREAM || s->kind == SLOT_WS)) {
		s->end = true;
		wake_locked(h, s);
	}
	pthread_mutex_unlock(&h->mu);
}

void http_request_free(struct http_request *r)
{
	if (!r)
		return;
	free(r->body);
	free(r);
}

/* ---- server thread ---- */

/* Hand r to the loop thread. Under mu. */
static void post_locked(struct http *h, struct http_request *r)
{
	bool was_empty = !h->inbox;
	uint64_t one = 1;

	r->next = NULL;
	if (h->inbox_tail)
		h->inbox_tail->next = r;
	else
		h->inbox = r;
	h->inbox_tail = r;
	if (was_empty && write(h->efd, &one, sizeof(one)) < 0)
		p_warn("http: failed to wake the event loop: %s", strerror(errno));
}

static int slot_alloc(struct http *h, struct lws *wsi, enum slot_kind kind, int listener)
{
	for (int i = 0; i < MAX_SLOTS; i++) {
		struct slot *s = &h->slots[i];

		if (s->kind != SLOT_FREE)
			continue;
		s->kind = kind;
		s->gen++;
		s->wsi = wsi;
		s->listener = listener;
		s->busy = false;
		s->head_only = false;
		s->ws_pending = 0;
		s->wake = false;
		h->st.connections++;
		if (kind == SLOT_WS)
			h->st.websockets++;
		return i;
	}
	return -1;
}

/* The connection is gone: free its slot, tell the loop if it knew of it. Under mu. */
static void slot_release_why(struct http *h, int i, const char *why)
{
	struct slot *s = &h->slots[i];
	bool known = s->busy || s->kind == SLOT_STREAM || s->kind == SLOT_WS;
	struct http_request *r;

	if (s->kind == SLOT_FREE)
		return;
	if (known && (r = calloc(1, sizeof(*r)))) {
		r->kind = HTTP_CLOSED;
		r->conn = handle_of(h, i);
		r->listener = s->listener;
		if (why && (r->body = strdup(why)))
			r->body_len = strlen(why);
		post_locked(h, r);
	}
	free(s->connect);
	s->connect = NULL;
	free(s->token);
	s->token = NULL;
	h->st.connections--;
	if (s->kind == SLOT_STREAM)
		h->st.streams--;
	if (s->kind == SLOT_WS)
		h->st.websockets--;
	response_reset(s);
	if (s->req && s->kind == SLOT_HTTP)
		h->st.body_incomplete++;
	http_request_free(s->req);
	s->req = NULL;
	s->kind = SLOT_FREE;
	s->gen++;
	s->wsi = NULL;
	s->busy = false;
	s->head_only = false;
}

static void slot_release(struct http *h, int i)
{
	slot_release_why(h, i, NULL);
}

static int listener_of(struct http *h, struct lws *wsi)
{
	struct lws_vhost *vh = lws_get_vhost(wsi);

	for (int i = 0; i < HTTP_LISTENERS; i++)
		if (h->vh[i] == vh)
			return i;
	return HTTP_DASH;
}

static void hdr_copy(struct lws *wsi, enum lws_token_indexes t, char *dst, size_t len)
{
	dst[0] = '\0';
	if (lws_hdr_total_length(wsi, t) > 0 && lws_hdr_copy(wsi, dst, (int)len, t) < 0)
		dst[0] = '\0';
}

static void custom_copy(struct lws *wsi, const char *name, char *dst, size_t len)
{
	int n = (int)strlen(name);

	dst[0] = '\0';
	if (lws_hdr_custom_length(wsi, name, n) > 0 &&
	    lws_hdr_custom_copy(wsi, dst, (int)len, name, n) < 0)
		dst[0] = '\0';
}

/* lws keeps each "k=v" argument as a fragment (decoded): joined back with '&'. */
static void query_copy(struct lws *wsi, char *dst, size_t len)
{
	char frag[512];
	size_t used = 0;

	dst[0] = '\0';
	for (int i = 0;
	     lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
		int n = snprintf(dst + used, len - used, "%s%s", used ? "&" : "", frag);

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

static bool peer_is_loopback(const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, ip, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, ip, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* The address the connection was accepted on, numeric ("10.0.0.5", "fe80::1"). */
static void local_addr_of(struct lws *wsi, char *dst, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = lws_get_socket_fd(wsi);

	dst[0] = '\0';
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl))
		return;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, dst, (socklen_t)len);
	} else if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], dst, (socklen_t)len);
		else
			inet_ntop(AF_INET6, a, dst, (socklen_t)len);
	}
}

static const char *method_of(struct lws *wsi, char *uri, size_t len)
{
	static const struct {
		enum lws_token_indexes t;
		const char *name;
	} m[] = {
		{ WSI_TOKEN_GET_URI, "GET" },	    { WSI_TOKEN_POST_URI, "POST" },
		{ WSI_TOKEN_DELETE_URI, "DELETE" }, { WSI_TOKEN_PUT_URI, "PUT" },
		{ WSI_TOKEN_PATCH_URI, "PATCH" },   { WSI_TOKEN_OPTIONS_URI, "OPTIONS" },
		{ WSI_TOKEN_HEAD_URI, "HEAD" },
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (lws_hdr_total_length(wsi, m[i].t) > 0) {
			hdr_copy(wsi, m[i].t, uri, len);
			return m[i].name;
		}
	return NULL;
}

/* Fill the request and decide access: 0 to go on, else the status to refuse with. */
static int request_read(struct http *h, struct lws *wsi, int listener, struct http_request *r,
			char *reason, size_t reason_len)
{
	char uri[1024], host[256], origin[256], authz[512], local[INET6_ADDRSTRLEN];
	const struct listen_cfg *l = &h->listen[listener];
	struct http_access a = {};
	struct http_verdict v;
	const char *m;
	char *q;

	m = method_of(wsi, uri, sizeof(uri));
	r->listener = listener;
	snprintf(r->method, sizeof(r->method), "%s", m ? m : "GET");
	/* lws has already percent-decoded the path and split off the arguments. */
	q = strchr(uri, '?');
	if (q)
		*q = '\0';
	snprintf(r->path, sizeof(r->path), "%s", uri);
	query_copy(wsi, r->query, sizeof(r->query));
	hdr_copy(wsi, WSI_TOKEN_HTTP_ACCEPT, r->accept, sizeof(r->accept));
	hdr_copy(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, r->content_type, sizeof(r->content_type));
	custom_copy(wsi, "last-event-id:", r->last_event_id, sizeof(r->last_event_id));
	custom_copy(wsi, "mcp-session-id:", r->session, sizeof(r->session));
	custom_copy(wsi, "mcp-protocol-version:", r->protocol_version, sizeof(r->protocol_version));
	custom_copy(wsi, "mcp-method:", r->mcp_method, sizeof(r->mcp_method));
	custom_copy(wsi, "mcp-name:", r->mcp_name, sizeof(r->mcp_name));
	hdr_copy(wsi, WSI_TOKEN_HOST, host, sizeof(host));
	hdr_copy(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
	hdr_copy(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof(authz));
	lws_get_peer_simple(wsi, r->peer, sizeof(r->peer));
	r->loopback_peer = peer_is_loopback(r->peer);
	if (!m)
		return snprintf(reason, reason_len, "unsupported method"), 405;

	a.mcp = listener == HTTP_MCP;
	a.listener_loopback = l->loopback;
	a.tls = l->cert[0] != '\0';
	a.mcp_auth_none = h->opts.mcp_auth_none;
	a.method = r->method;
	a.path = r->path;
	a.host = host[0] ? host : NULL;
	local_addr_of(wsi, local, sizeof(local));
	a.local_addr = local;
	a.hostname = h->hostname[0] ? h->hostname : NULL;
	a.hosts = (const char(*)[256])l->hosts;
	a.n_hosts = l->n_hosts;
	a.origin = origin[0] ? origin : NULL;
	a.authorization = authz[0] ? authz : NULL;
	a.peer_loopback = r->loopback_peer;
	a.token = h->token; /* under mu: see the caller */
	a.origins = (const char(*)[128])l->origins;
	a.n_origins = l->n_origins;
	http_access_check(&a, &v);
	r->authenticated = v.authenticated;
	snprintf(reason, reason_len, "%s", v.reason);
	if (v.status == 401)
		h->st.denied_auth++;
	else if (v.status == 403)
		h->st.denied_origin++;
	return v.status;
}

/* {"error": {"status": N, "message": "..."}}: the API's error shape (api.c). */
static struct json_object *error_json(int status, const char *reason)
{
	struct json_object *o = json_object_new_object(), *err = json_object_new_object();

	json_object_object_add(err, "status", json_object_new_int(status));
	/* The sysexits code, as the API's own errors carry: not permitted, usage. */
	json_object_object_add(err, "code",
			       json_object_new_int(status == 401 || status == 403 ? 77 : 2));
	json_object_object_add(err, "message", json_object_new_string(reason));
	json_object_object_add(o, "error", err);
	return o;
}

/* A refusal of the access rules or of the request's framing: a 401 says how to
 * authenticate, a 405 (a method lws does not know) which methods the listener has at all
 * (RFC 9110 section 15.5.6: a 405 carries Allow). */
static void refuse_locked(struct http *h, struct slot *s, int status, const char *reason)
{
	static const struct http_header www[] = { { "WWW-Authenticate",
						    "Bearer realm=\"caelum\"" } };
	static const struct http_header allow[] = { { "Allow", "GET, HEAD, POST, DELETE" } };
	struct json_object *o = error_json(status, reason);
	const char *txt;

	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	respond_locked(h, s, status, "application/json", status == 405 ? allow : www,
		       status == 401 || status == 405 ? 1 : 0, txt, strlen(txt), false, false);
	json_object_put(o);
}

static bool accepts_gzip(struct lws *wsi)
{
	char ae[256];

	hdr_copy(wsi, WSI_TOKEN_HTTP_ACCEPT_ENCODING, ae, sizeof(ae));
	return strstr(ae, "gzip") != NULL;
}

/* A page asset: answered here, from the embedded copy. Under mu. */
static void serve_asset(struct http *h, struct lws *wsi, struct slot *s, const struct asset *a)
{
	struct http_header hd[3] = {
		{ "ETag", a->etag },
		{ "Cache-Control", "no-cache" },
		{ "Content-Encoding", "gzip" },
	};
	bool gz = a->gz && accepts_gzip(wsi);
	char inm[64];

	hdr_copy(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH, inm, sizeof(inm));
	if (inm[0] && !strcmp(inm, a->etag)) {
		respond_locked(h, s, 304, NULL, hd, 2, NULL, 0, true, false);
		return;
	}
	respond_locked(h, s, 200, a->ctype, hd, gz ? 3 : 2, gz ? a->gz : a->data,
		       gz ? a->gz_len : a->len, true, false);
}

/* The connection of p is gone: its slot back to the pool. */
static void slot_drop(struct http *h, struct pss *p)
{
	if (!p || !p->slot)
		return;
	pthread_mutex_lock(&h->mu);
	slot_release(h, p->slot - 1);
	pthread_mutex_unlock(&h->mu);
	p->slot = 0;
}

static bool method_has_body(struct lws *wsi)
{
	char cl[32];

	hdr_copy(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof(cl));
	return cl[0] && strtoull(cl, NULL, 10) > 0;
}

static int on_http(struct http *h, struct lws *wsi, struct pss *p)
{
	int listener = listener_of(h, wsi), i, status;
	struct http_request *r = calloc(1, sizeof(*r));
	char reason[160], cl[32];
	const struct asset *a;
	struct slot *s;

	if (!r)
		return -1;
	pthread_mutex_lock(&h->mu);
	if (!p->slot) {
		i = slot_alloc(h, wsi, SLOT_HTTP, listener);
		if (i < 0) {
			pthread_mutex_unlock(&h->mu);
			free(r);
			lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
					       "too many connections");
			return -1;
		}
		p->slot = i + 1;
	}
	i = p->slot - 1;
	s = &h->slots[i];
	s->gen++; /* a new transaction on this connection */
	h->st.requests[listener]++;
	status = request_read(h, wsi, listener, r, reason, sizeof(reason));
	/* HEAD is GET without the content (RFC 9110 section 9.3.2): the loop answers it as
	 * GET, respond_locked() leaves the body out. Every GET resource has it so. */
	s->head_only = r->head = !strcmp(r->method, "HEAD");
	if (r->head)
		snprintf(r->method, sizeof(r->method), "GET");
	if (r->authenticated)
		connlimit_authenticated(&h->cl, wsi);
	/* Busy until its answer is out, except while its body is still to come. */
	connlimit_busy(&h->cl, wsi, true);
	r->conn = handle_of(h, i);
	r->kind = HTTP_REQUEST;
	if (!status) {
		char te[32];

		/* A body comes with its length (RFC 9110 section 15.5.12): a chunked one would
		 * be read as no body at all and the request answered as if it had none. */
		hdr_copy(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, te, sizeof(te));
		hdr_copy(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof(cl));
		if (te[0]) {
			status = 411;
			snprintf(reason, sizeof(reason),
				 "Transfer-Encoding %s: send the body with a Content-Length", te);
		} else if (cl[0] && strtoull(cl, NULL, 10) > HTTP_BODY_MAX) {
			status = 413;
			snprintf(reason, sizeof(reason), "request body of %s bytes, at most %u", cl,
				 HTTP_BODY_MAX);
		}
	}
	if (status) {
		refuse_locked(h, s, status, reason);
		http_request_free(r);
		pthread_mutex_unlock(&h->mu);
		return 0;
	}
	if (listener == HTTP_DASH && !http_path_is_api(r->path) && !strcmp(r->method, "GET") &&
	    (a = asset_find(r->path))) {
		serve_asset(h, wsi, s, a);
		http_request_free(r);
		pthread_mutex_unlock(&h->mu);
		return 0;
	}
	if (method_has_body(wsi)) {
		/* The body must follow: lws re-arms this after every piece, on_body() bounds
		 * the whole. A client that stalls is closed (slowloris). */
		lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_HEADER_TIMEOUT_S);
		connlimit_busy(&h->cl, wsi, false);
		s->body_deadline_ns = mono_ns() + HTTP_BODY_TIMEOUT_S * 1000000000ULL;
		s->req = r; /* completed by the body callbacks */
		s->body_cap = 0;
	} else {
		/* The loop answers; it may take longer than lws's timeouts. */
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		s->busy = true;
		post_locked(h, r);
	}
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static int on_body(struct http *h, struct pss *p, const void *in, size_t len)
{
	struct slot *s;
	struct http_request *r;
	int rc = 0;

	if (!p->slot)
		return -1;
	pthread_mutex_lock(&h->mu);
	s = &h->slots[p->slot - 1];
	r = s->req;
	if (r && r->body_len + len > HTTP_BODY_MAX) {
		rc = -1; /* a body longer than its Content-Length said */
	} else if (r && mono_ns() > s->body_deadline_ns) {
		rc = -1; /* trickled in too slowly */
	} else if (r) {
		if (r->body_len + len + 1 > s->body_cap) {
			size_t cap = (r->body_len + len + 1) * 2;
			char *b =
				realloc(r->body, cap > HTTP_BODY_MAX + 1 ? HTTP_BODY_MAX + 1 : cap);

			if (!b) {
				pthread_mutex_unlock(&h->mu);
				return -1;
			}
			r->body = b;
			s->body_cap = cap > HTTP_BODY_MAX + 1 ? HTTP_BODY_MAX + 1 : cap;
		}
		memcpy(r->body + r->body_len, in, len);
		r->body_len += len;
		r->body[r->body_len] = '\0';
	}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

static int on_body_done(struct http *h, struct lws *wsi, struct pss *p)
{
	struct slot *s;

	if (!p->slot)
		return -1;
	connlimit_busy(&h->cl, wsi, true);
	pthread_mutex_lock(&h->mu);
	s = &h->slots[p->slot - 1];
	if (s->req) {
		s->busy = true;
		post_locked(h, s->req);
		s->req = NULL;
	}
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static int write_headers(struct http *h, struct lws *wsi, struct slot *s)
{
	unsigned char *start = h->wbuf + LWS_PRE, *p = start, *end = h->wbuf + sizeof(h->wbuf);
	unsigned long long clen;
	bool stream, sse_headers;

	pthread_mutex_lock(&h->mu);
	sse_headers = s->content_len < 0; /* a stream, or a HEAD's answer of one */
	stream = sse_headers && !s->head_only;
	clen = sse_headers ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (unsigned long long)s->content_len;
	if (lws_add_http_common_headers(wsi, (unsigned int)s->status, s->ctype[0] ? s->ctype : NULL,
					clen, &p, end))
		goto fail;
	for (const char *hp = s->hdrs; hp && *hp;) {
		const char *val = hp + strlen(hp) + 1;
		char name[64];

		snprintf(name, sizeof(name), "%s", hp);
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
						(const unsigned char *)val, (int)strlen(val), &p,
						end))
			goto fail;
		hp = val + strlen(val) + 1;
	}
	if (sse_headers &&
	    (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					 (const unsigned char *)"no-store", 8, &p, end)))
		goto fail;
	s->hdr_pending = false;
	pthread_mutex_unlock(&h->mu);
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (stream)
		lws_http_mark_sse(wsi);
	return 0;
fail:
	pthread_mutex_unlock(&h->mu);
	return -1;
}

/* Write one piece of what is queued. -1 closes the connection. */
static int on_writable(struct http *h, struct lws *wsi, struct pss *p)
{
	enum lws_write_protocol wp;
	struct slot *s;
	size_t n = 0;
	bool last = false, done = false, ws, http_done;
	int rc;

	if (!p->slot)
		return 0;
	s = &h->slots[p->slot - 1];
	ws = s->kind == SLOT_WS;
	if (!ws && s->hdr_pending) {
		if (write_headers(h, wsi, s))
			return -1;
		lws_callback_on_writable(wsi);
		return 0;
	}
	pthread_mutex_lock(&h->mu);
	if (s->head) {
		struct chunk *c = s->head;
		const unsigned char *src = c->borrowed ? c->borrowed : c->data;

		n = c->len - c->off;
		if (ws && n > WRITE_PIECE) {
			/* A long WebSocket message: lws keeps what the socket did not take. */
			unsigned char *buf = malloc(LWS_PRE + n);

			if (!buf) {
				pthread_mutex_unlock(&h->mu);
				return -1;
			}
			memcpy(buf + LWS_PRE, src + c->off, n);
			s->head = c->next;
			if (!s->head)
				s->tail = NULL;
			s->queued -= c->len;
			free(c);
			done = !s->head && s->end;
			pthread_mutex_unlock(&h->mu);
			rc = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
			free(buf);
			if (rc < (int)n)
				return -1;
			goto more;
		}
		if (ws) {
			memcpy(h->wbuf + LWS_PRE, src + c->off, n);
			s->queued -= n;
			s->head = c->next;
			if (!s->head)
				s->tail = NULL;
			free(c);
		} else {
			n = 0;
			/* HTTP: as many queued chunks as fit, in one write. */
			while ((c = s->head) && n < WRITE_PIECE) {
				size_t k = c->len - c->off;

				src = c->borrowed ? c->borrowed : c->data;
				if (k > WRITE_PIECE - n)
					k = WRITE_PIECE - n;
				memcpy(h->wbuf + LWS_PRE + n, src + c->off, k);
				n += k;
				c->off += k;
				s->queued -= k;
				if (c->off < c->len)
					break;
				s->head = c->next;
				if (!s->head)
					s->tail = NULL;
				free(c);
			}
		}
	}
	last = !s->head && s->end;
	h->st.bytes_out += n;
	http_done = last && s->kind == SLOT_HTTP;
	pthread_mutex_unlock(&h->mu);

	if (n) {
		wp = ws ? LWS_WRITE_TEXT : (http_done ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
		rc = lws_write(wsi, h->wbuf + LWS_PRE, n, wp);
		if (rc < (int)n)
			return -1;
	}
	done = last;
more:
	if (done) {
		if (ws) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		if (s->kind == SLOT_STREAM)
			return -1;
		pthread_mutex_lock(&h->mu);
		s->end = false;
		pthread_mutex_unlock(&h->mu);
		connlimit_busy(&h->cl, wsi, false); /* between two requests */
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	pthread_mutex_lock(&h->mu);
	if (s->head)
		lws_callback_on_writable(wsi);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static void start_connects(struct http *h);

static void on_wake(struct http *h)
{
	if (h->connects_pending)
		start_connects(h);
	pthread_mutex_lock(&h->mu);
	h->lws_wake_pending = false;
	for (int i = 0; i < MAX_SLOTS; i++) {
		struct slot *s = &h->slots[i];

		if (s->wake && s->kind != SLOT_FREE && s->wsi) {
			s->wake = false;
			lws_callback_on_writable(s->wsi);
		}
	}
	pthread_mutex_unlock(&h->mu);
}

static int confirm_upgrade(struct http *h, struct lws *wsi, const char *upgrade);

/* A connection was accepted (nothing read yet): within the limits (connlimit.h)? At a
 * limit, the idle connection that made room for it is closed. */
static int on_accept(struct http *h, void *user)
{
	const struct lws_filter_network_conn_args *f = user;
	const void *evict;
	int rc = connlimit_admit(&h->cl, (const struct sockaddr *)&f->cli_addr, f->clilen, &evict);

	if (evict) {
		/* Closed at the next turn of the loop. A request of it read before then (its
		 * bytes may be in already) is refused by evicted() and closes it. */
		lws_set_timeout((struct lws *)evict, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		pthread_mutex_lock(&h->mu);
		for (int i = 0; i < CL_REASONS; i++)
			h->st.evicted[i] = h->cl.evicted[i];
		pthread_mutex_unlock(&h->mu);
	}
	if (!rc)
		return 0;
	pthread_mutex_lock(&h->mu);
	h->st.refused[-rc - 1]++;
	pthread_mutex_unlock(&h->mu);
	/* Said once per 1000 refusals: a flood must not flood the log too. */
	if (h->cl.refused[-rc - 1] % 1000 == 1)
		p_warn("http: refusing connections (%s limit reached; %llu so far)",
		       connlimit_reason_name(-rc - 1), (unsigned long long)h->cl.refused[-rc - 1]);
	return -1;
}

/* Was wsi closed to admit a newcomer (its close still to come)? Every connection of the
 * listeners is admitted, and an evicted one is no longer known to connlimit. */
static bool evicted(struct http *h, struct lws *wsi)
{
	return !connlimit_known(&h->cl, wsi);
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	struct http *h = lws_context_user(lws_get_context(wsi));
	struct pss *p = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		return on_accept(h, user);
	case LWS_CALLBACK_WSI_CREATE:
		connlimit_bind(&h->cl, wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		connlimit_release(&h->cl, wsi);
		return 0;
	case LWS_CALLBACK_HTTP:
		return evicted(h, wsi) ? -1 : on_http(h, wsi, p);
	case LWS_CALLBACK_HTTP_BODY:
		return evicted(h, wsi) ? -1 : on_body(h, p, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return evicted(h, wsi) ? -1 : on_body_done(h, wsi, p);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_writable(h, wsi, p);
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return evicted(h, wsi) ? -1 : confirm_upgrade(h, wsi, in);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		slot_drop(h, p);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		on_wake(h);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* A refusal written at once (upgrade requests, which never reach the loop). */
static int refuse_now(struct http *h, struct lws *wsi, int status, const char *reason)
{
	unsigned char *start = h->wbuf + LWS_PRE, *p = start, *end = h->wbuf + sizeof(h->wbuf);
	static const char www[] = "Bearer realm=\"caelum\"";
	struct json_object *o = error_json(status, reason);
	char body[512];
	int n = snprintf(body, sizeof(body), "%s\n",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));

	json_object_put(o);
	if (n >= (int)sizeof(body))
		return -1;

	if (lws_add_http_common_headers(wsi, (unsigned int)status, "application/json",
					(lws_filepos_t)n, &p, end) ||
	    (status == 401 &&
	     lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
					 (const unsigned char *)www, (int)strlen(www), &p, end)) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	memcpy(start, body, (size_t)n);
	if (lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP_FINAL) < n)
		return -1;
	return 1;
}

/* WebSocket (subprotocol "mcp"): the same rules as any request, decided before the
 * upgrade so that a refusal is a proper 401/403/404 answer. */
/* Does Sec-WebSocket-Protocol offer "mcp"? */
static bool subprotocol_mcp(struct lws *wsi)
{
	char list[256], *save = NULL;

	hdr_copy(wsi, WSI_TOKEN_PROTOCOL, list, sizeof(list));
	for (char *t = strtok_r(list, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
		if (!strcmp(t, "mcp"))
			return true;
	return false;
}

static int confirm_upgrade(struct http *h, struct lws *wsi, const char *upgrade)
{
	struct http_request r = {};
	char reason[160];
	int status;

	pthread_mutex_lock(&h->mu);
	status = request_read(h, wsi, listener_of(h, wsi), &r, reason, sizeof(reason));
	if (r.authenticated)
		connlimit_authenticated(&h->cl, wsi);
	connlimit_busy(&h->cl, wsi, true); /* a WebSocket, or the refusal being written */
	if (!status && (r.listener != HTTP_MCP || strcmp(r.path, "/mcp"))) {
		status = 404;
		snprintf(reason, sizeof(reason), "no WebSocket endpoint at %s", r.path);
	} else if (!status && !subprotocol_mcp(wsi)) {
		status = 400;
		snprintf(reason, sizeof(reason), "WebSocket subprotocol must be \"mcp\"");
	}
	pthread_mutex_unlock(&h->mu);
	if (!status)
		return 0;
	p_debug("http: %s upgrade from %s refused (%d): %s", upgrade ? upgrade : "?", r.peer,
		status, reason);
	return refuse_now(h, wsi, status, reason);
}

static int ws_received(struct http *h, struct lws *wsi, struct pss *p, const void *in, size_t len)
{
	struct slot *s;
	struct http_request *r;
	int rc = 0;

	if (!p->slot)
		return -1;
	pthread_mutex_lock(&h->mu);
	s = &h->slots[p->slot - 1];
	if (!s->req && !(s->req = calloc(1, sizeof(*s->req)))) {
		rc = -1;
		goto out;
	}
	r = s->req;
	if (r->body_len + len > HTTP_BODY_MAX || lws_frame_is_binary(wsi)) {
		lws_close_reason(wsi,
				 lws_frame_is_binary(wsi) ? LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE
							  : LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 NULL, 0);
		rc = -1;
		goto out;
	}
	if (!(r->body = realloc(r->body, r->body_len + len + 1))) {
		rc = -1;
		goto out;
	}
	memcpy(r->body + r->body_len, in, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
		if (++s->ws_pending > WS_PENDING_MAX) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
			rc = -1;
			goto out;
		}
		r->kind = HTTP_WS_MESSAGE;
		r->conn = handle_of(h, p->slot - 1);
		r->listener = s->listener;
		snprintf(r->method, sizeof(r->method), "WS");
		post_locked(h, r);
		s->req = NULL;
	}
out:
	pthread_mutex_unlock(&h->mu);
	return rc;
}

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		 size_t len)
{
	struct http *h = lws_context_user(lws_get_context(wsi));
	struct pss *p = user;
	struct http_request *r;
	int i;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		if (!(r = calloc(1, sizeof(*r))))
			return -1;
		pthread_mutex_lock(&h->mu);
		/* The upgrade passed ws_filter: the same rules, authenticated or auth none. */
		i = slot_alloc(h, wsi, SLOT_WS, listener_of(h, wsi));
		if (i < 0) {
			pthread_mutex_unlock(&h->mu);
			free(r);
			return -1;
		}
		p->slot = i + 1;
		r->kind = HTTP_WS_OPEN;
		r->conn = handle_of(h, i);
		r->listener = h->slots[i].listener;
		lws_get_peer_simple(wsi, r->peer, sizeof(r->peer));
		r->loopback_peer = peer_is_loopback(r->peer);
		r->authenticated = true;
		snprintf(r->method, sizeof(r->method), "WS");
		snprintf(r->path, sizeof(r->path), "/mcp");
		post_locked(h, r);
		pthread_mutex_unlock(&h->mu);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return ws_received(h, wsi, p, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writable(h, wsi, p);
	case LWS_CALLBACK_CLOSED:
		slot_drop(h, p);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		on_wake(h);
		return 0;
	default:
		return 0;
	}
}

/* ---- client connections to peers ---- */

int http_ws_connect(struct http *h, const char *host, uint16_t port, const char *path, bool tls,
		    const char *token, uint64_t *conn)
{
	struct client_req *c = calloc(1, sizeof(*c));
	int i;

	if (!c)
		return -ENOMEM;
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->port = port;
	c->tls = tls;
	pthread_mutex_lock(&h->mu);
	i = h->client_vh ? slot_alloc(h, NULL, SLOT_WS, HTTP_PEER) : -1;
	if (i < 0) {
		pthread_mutex_unlock(&h->mu);
		free(c);
		return h->client_vh ? -EMFILE : -ENOTSUP;
	}
	h->slots[i].connect = c;
	h->slots[i].token = token && *token ? strdup(token) : NULL;
	*conn = handle_of(h, i);
	h->connects_pending = true;
	if (!h->lws_wake_pending) {
		h->lws_wake_pending = true;
		lws_cancel_service(h->ctx);
	}
	pthread_mutex_unlock(&h->mu);
	return 0;
}

/* Server thread: make the connections asked for. lws may call back (an error) from inside
 * lws_client_connect_via_info(), so mu is not held then. */
static void start_connects(struct http *h)
{
	for (int i = 0; i < MAX_SLOTS; i++) {
		struct lws_client_connect_info ci = {};
		struct client_req *c;
		char host_hdr[300];

		pthread_mutex_lock(&h->mu);
		c = h->slots[i].kind == SLOT_WS ? h->slots[i].connect : NULL;
		h->slots[i].connect = c ? NULL : h->slots[i].connect;
		pthread_mutex_unlock(&h->mu);
		if (!c)
			continue;
		snprintf(host_hdr, sizeof(host_hdr), "%s%s%s:%u", strchr(c->host, ':') ? "[" : "",
			 c->host, strchr(c->host, ':') ? "]" : "", c->port);
		ci.context = h->ctx;
		ci.vhost = h->client_vh;
		ci.address = c->host;
		ci.port = c->port;
		ci.path = c->path;
		ci.host = host_hdr;
		ci.origin = NULL;
		ci.protocol = "mcp";
		ci.local_protocol_name = "mcp-client";
		ci.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
		ci.opaque_user_data = (void *)(intptr_t)(i + 1);
		ci.ietf_version_or_minus_one = -1;
		if (!lws_client_connect_via_info(&ci)) {
			pthread_mutex_lock(&h->mu);
			/* Unless the error callback already released it. */
			if (h->slots[i].kind == SLOT_WS && !h->slots[i].wsi)
				slot_release_why(h, i, "connection could not be started");
			pthread_mutex_unlock(&h->mu);
		}
		free(c);
	}
	pthread_mutex_lock(&h->mu);
	h->connects_pending = false;
	for (int i = 0; i < MAX_SLOTS; i++)
		if (h->slots[i].connect)
			h->connects_pending = true;
	pthread_mutex_unlock(&h->mu);
}

static int cb_client(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len)
{
	struct http *h = lws_context_user(lws_get_context(wsi));
	intptr_t tag = (intptr_t)lws_get_opaque_user_data(wsi);
	struct pss p = { .slot = (int)tag };
	struct http_request *r;
	char why[160];
	struct slot *s;

	(void)user;
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		on_wake(h);
		return 0;
	}
	if (tag <= 0 || tag > MAX_SLOTS)
		return 0;
	s = &h->slots[tag - 1];
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **pp = (unsigned char **)in, *end = *pp + len;
		char auth[TOKEN_LEN + 16];
		int rc = 0;

		pthread_mutex_lock(&h->mu);
		if (s->token) {
			snprintf(auth, sizeof(auth), "Bearer %s", s->token);
			rc = lws_add_http_header_by_name(
				wsi, (const unsigned char *)"authorization:",
				(const unsigned char *)auth, (int)strlen(auth), pp, end);
		}
		pthread_mutex_unlock(&h->mu);
		return rc ? -1 : 0;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!(r = calloc(1, sizeof(*r))))
			return -1;
		pthread_mutex_lock(&h->mu);
		s->wsi = wsi;
		r->kind = HTTP_WS_OPEN;
		r->conn = handle_of(h, (int)tag - 1);
		r->listener = HTTP_PEER;
		post_locked(h, r);
		pthread_mutex_unlock(&h->mu);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return ws_received(h, wsi, &p, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writable(h, wsi, &p);
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(why, sizeof(why), "%.*s", in ? (int)len : 0, in ? (const char *)in : "");
		pthread_mutex_lock(&h->mu);
		slot_release_why(h, (int)tag - 1, why[0] ? why : "connection failed");
		pthread_mutex_unlock(&h->mu);
		lws_set_opaque_user_data(wsi, NULL);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		pthread_mutex_lock(&h->mu);
		slot_release_why(h, (int)tag - 1, "connection closed");
		pthread_mutex_unlock(&h->mu);
		lws_set_opaque_user_data(wsi, NULL);
		return 0;
	default:
		return 0;
	}
}

/* The loop thread took messages from a WebSocket: let more in. Under mu. */
static void ws_consumed_locked(struct http *h, const struct http_request *r)
{
	struct slot *s = slot_of(h, r->conn);

	if (s && s->kind == SLOT_WS && s->ws_pending)
		s->ws_pending--;
}

static void on_efd(void *ctx, uint32_t events)
{
	struct http *h = ctx;
	struct http_request *list, *r;
	uint64_t v;

	(void)events;
	if (read(h->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		p_warn("http: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&h->mu);
	list = h->inbox;
	h->inbox = h->inbox_tail = NULL;
	for (r = list; r; r = r->next)
		if (r->kind == HTTP_WS_MESSAGE)
			ws_consumed_locked(h, r);
	pthread_mutex_unlock(&h->mu);
	while ((r = list)) {
		list = r->next;
		r->next = NULL;
		h->opts.on_request(h->opts.ctx, r);
	}
}

static void *server_main(void *arg)
{
	struct http *h = arg;

	while (!h->stop)
		if (lws_service(h->ctx, 0) < 0)
			break;
	return NULL;
}

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	/* lws_http_mark_sse() on HTTP/1.1 warns that the stream is not an h2 one: it is not
	 * meant to be, the call only takes the stream off lws's timeouts. */
	if ((level & LLL_ERR) && !strstr(line, "not h2 substream"))
		p_warn("libwebsockets: %.*s", (int)n, line);
	else
		p_debug("libwebsockets: %.*s", (int)n, line);
}

static const struct lws_protocols protocols_dash[] = {
	{ "http", cb_http, sizeof(struct pss), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_protocols protocols_mcp[] = {
	{ "http", cb_http, sizeof(struct pss), 0, 0, NULL, 0 },
	{ "mcp", cb_ws, sizeof(struct pss), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_protocols protocols_client[] = {
	{ "mcp-client", cb_client, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const char *const listener_names[] = { "http", "mcp" };

static int vhost_create(struct http *h, int i)
{
	const struct listen_cfg *l = &h->listen[i];
	struct lws_context_creation_info vi = {};

	vi.vhost_name = listener_names[i];
	vi.iface = l->addr;
	vi.port = l->port;
	vi.protocols = i == HTTP_MCP ? protocols_mcp : protocols_dash;
	vi.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
		     LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	if (strchr(l->addr, ':') == NULL)
		vi.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	vi.keepalive_timeout = 30;
	vi.timeout_secs = 30;
	vi.alpn = "http/1.1";
	vi.server_string = "caelumd";
	if (l->cert[0]) {
		vi.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		vi.ssl_cert_filepath = l->cert;
		vi.ssl_private_key_filepath = l->key;
	}
	h->vh[i] = lws_create_vhost(h->ctx, &vi);
	if (!h->vh[i]) {
		p_err("%s: cannot listen on %s (port %u in use, address not local, or TLS files "
		      "unusable)",
		      listener_names[i], l->spec, l->port);
		return -EADDRINUSE;
	}
	h->port[i] = (uint16_t)lws_get_vhost_listen_port(h->vh[i]);
	h->serving[i] = true;
	return 0;
}

/* How many connections the listeners may hold: what the descriptor limit leaves after the
 * reserve, at most the slot table (less room for peers). */
static int limits_init(struct http *h)
{
	unsigned long fds = fd_limit_get();
	size_t slots = fds > CONNLIMIT_RESERVE_FDS + 64 ? fds - CONNLIMIT_RESERVE_FDS : 64;
	size_t unauth;

	if (slots > MAX_SLOTS - 64)
		slots = MAX_SLOTS - 64;
	unauth = slots < CONNLIMIT_UNAUTH_MAX ? slots : CONNLIMIT_UNAUTH_MAX;
	h->st.fd_limit = fds;
	h->st.conn_slots = (unsigned int)slots;
	h->st.conn_unauth_max = (unsigned int)unauth;
	h->st.conn_per_addr_max =
		(unsigned int)(unauth < CONNLIMIT_PER_ADDR_MAX ? unauth : CONNLIMIT_PER_ADDR_MAX);
	return connlimit_init(&h->cl, slots, unauth, h->st.conn_per_addr_max);
}

static bool tls_configured(const struct http *h)
{
	for (int i = 0; i < HTTP_LISTENERS; i++)
		if (h->listen[i].enabled && h->listen[i].cert[0])
			return true;
	return false;
}

int http_start(struct http **out, struct loop *l, const struct http_opts *o)
{
	struct lws_context_creation_info ci = {};
	struct http *h = calloc(1, sizeof(*h));
	int err;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	h->opts = *o;
	h->loop = l;
	h->efd = -1;
	snprintf(h->token, sizeof(h->token), "%s", o->token);
	if (gethostname(h->hostname, sizeof(h->hostname) - 1))
		h->hostname[0] = '\0';
	for (int i = 0; i < HTTP_LISTENERS; i++)
		if (o->listen[i])
			h->listen[i] = *o->listen[i];
	err = assets_init();
	if (err)
		goto fail;
	lws_set_log_level(LLL_ERR | LLL_WARN | (log_verbose() ? LLL_NOTICE : 0), lws_log);
	err = limits_init(h);
	if (err)
		goto fail;
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	/* OpenSSL's global init costs ~1.7 MiB of resident libcrypto pages: only when a
	 * listener serves TLS or peers may be reached (over wss). */
	if (o->client || tls_configured(h))
		ci.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.user = h;
	/* Listeners, peers and lws's own pipes come on top of the clients' connections. */
	ci.fd_limit_per_thread = (unsigned int)h->cl.slots + 64;
	ci.timeout_secs = HTTP_HEADER_TIMEOUT_S;
	h->ctx = lws_create_context(&ci);
	if (!h->ctx) {
		p_err("http: failed to create the libwebsockets context");
		err = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < HTTP_LISTENERS; i++)
		if (h->listen[i].enabled && (err = vhost_create(h, i)))
			goto fail;
	if (o->client) {
		struct lws_context_creation_info vi = {};

		vi.vhost_name = "peers";
		vi.port = CONTEXT_PORT_NO_LISTEN;
		vi.protocols = protocols_client;
		vi.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		h->client_vh = lws_create_vhost(h->ctx, &vi);
		if (!h->client_vh) {
			p_err("http: failed to set up the client side (peers)");
			err = -ENOMEM;
			goto fail;
		}
	}
	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->efd < 0 || loop_add(l, h->efd, EPOLLIN, on_efd, h)) {
		err = -errno;
		goto fail;
	}
	err = -pthread_create(&h->thread, NULL, server_main, h);
	if (err)
		goto fail;
	h->thread_started = true;
	*out = h;
	return 0;
fail:
	http_stop(h);
	return err;
}

void http_stop(struct http *h)
{
	struct http_request *r;

	if (!h)
		return;
	if (h->thread_started) {
		h->stop = true;
		lws_cancel_service(h->ctx);
		pthread_join(h->thread, NULL);
	}
	if (h->ctx)
		lws_context_destroy(h->ctx);
	if (h->efd >= 0) {
		loop_del(h->loop, h->efd);
		close(h->efd);
	}
	for (int i = 0; i < MAX_SLOTS; i++) {
		response_reset(&h->slots[i]);
		http_request_free(h->slots[i].req);
	}
	while ((r = h->inbox)) {
		h->inbox = r->next;
		http_request_free(r);
	}
	assets_free();
	connlimit_free(&h->cl);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

uint16_t http_port(const struct http *h, int listener)
{
	return h && listener >= 0 && listener < HTTP_LISTENERS && h->serving[listener]
		       ? h->port[listener]
		       : 0;
}

void http_set_token(struct http *h, const char *token)
{
	pthread_mutex_lock(&h->mu);
	snprintf(h->token, sizeof(h->token), "%s", token);
	pthread_mutex_unlock(&h->mu);
}

void http_get_stats(struct http *h, struct http_stats *s)
{
	pthread_mutex_lock(&h->mu);
	*s = h->st;
	pthread_mutex_unlock(&h->mu);
}
