// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * MCP's network transports on the MCP listener, both at /mcp, for both eras (mcp_era.h):
 *  - Streamable HTTP, 2026-07-28: a POST whose message carries the per-request envelope is
 *    stateless: answered with application/json (no session); subscriptions/listen is
 *    answered with a text/event-stream that stays open (the acknowledgement first, then the
 *    changes the filter asked for) until the client closes it. The era's refusals (envelope,
 *    version, headers) are HTTP 400 with the JSON-RPC error.
 *  - Streamable HTTP, legacy: POST carries one JSON-RPC message (a request is answered with
 *    application/json, a notification or response with 202); initialize creates a session
 *    named by the Mcp-Session-Id response header, which every later request must carry
 *    (400 without, 404 when unknown or ended); GET opens a text/event-stream on which the
 *    server's own messages go (each on one stream: the newest open one); DELETE ends the
 *    session.
 *  - WebSocket, subprotocol "mcp": one JSON-RPC message per text message, one session per
 *    connection.
 * Access (token, Origin, Host) was decided by the server thread before this runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http.h"
#include "jsonv.h"
#include "log.h"
#include "mcp.h"
#include "mcp_era.h"
#include "mcp_http.h"

#define MAX_LINKS 512

/* A GET stream, a listen stream or a WebSocket, and the session it serves. */
struct link {
	uint64_t conn;
	struct mcp_session *s;
	bool ws;
	bool listen;		     /* a subscriptions/listen stream: its session ends with it */
	struct json_object *pending; /* messages before the stream began (listen) */
	uint64_t next_id;	     /* SSE event ids of a GET stream */
	struct mcp_http *t;
};

#define KEEPALIVE_NS (15ULL * 1000000000ULL)

struct mcp_http {
	struct http *http;
	struct mcp *mcp;
	uint64_t last_keepalive_ns;
	struct link *links[MAX_LINKS];
	size_t n_links;
};

static const struct http_header json_hdr[] = { { "Cache-Control", "no-store" } };

static void reply_msg(struct mcp_http *t, uint64_t conn, int status, struct json_object *msg,
		      const char *session)
{
	struct http_header h[2] = { { "Cache-Control", "no-store" },
				    { "Mcp-Session-Id", session } };

	http_reply_json(t->http, conn, status, msg, h, session ? 2 : 1);
}

/* An HTTP-level refusal with a JSON-RPC error body (id null). */
static void refuse(struct mcp_http *t, uint64_t conn, int status, int code, const char *msg)
{
	struct json_object *e = mcp_error(NULL, code, msg);

	http_reply_json(t->http, conn, status, e, json_hdr, 1);
	json_object_put(e);
}

static bool link_send(void *ctx, struct json_object *msg)
{
	struct link *l = ctx;
	size_t len;
	const char *txt = json_object_to_json_string_length(
		msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	char *buf;
	int n, err;

	if (l->pending)
		return json_object_array_add(l->pending, json_object_get(msg)) == 0;
	if (l->ws)
		return http_send(l->t->http, l->conn, txt, len) == 0;
	buf = malloc(len + 64);
	if (!buf)
		return false;
	n = snprintf(buf, len + 64, "event: message\nid: %llu\ndata: %s\n\n",
		     (unsigned long long)++l->next_id, txt);
	err = http_send(l->t->http, l->conn, buf, (size_t)n);
	free(buf);
	return err == 0;
}

static struct link *link_add(struct mcp_http *t, uint64_t conn, struct mcp_session *s, bool ws)
{
	struct link *l;

	if (t->n_links == MAX_LINKS || !(l = calloc(1, sizeof(*l))))
		return NULL;
	l->conn = conn;
	l->s = s;
	l->ws = ws;
	l->t = t;
	t->links[t->n_links++] = l;
	return l;
}

static struct link *link_find(struct mcp_http *t, uint64_t conn, size_t *idx)
{
	for (size_t i = 0; i < t->n_links; i++)
		if (t->links[i]->conn == conn) {
			if (idx)
				*idx = i;
			return t->links[i];
		}
	return NULL;
}

/* A connection went away: a WebSocket's session ends with it; a GET stream hands the
 * session's messages to the session's next newest stream. */
static void link_closed(struct mcp_http *t, uint64_t conn)
{
	struct link *l;
	size_t i;

	if (!(l = link_find(t, conn, &i)))
		return;
	json_object_put(l->pending);
	t->links[i] = t->links[--t->n_links];
	if (l->ws || l->listen) {
		mcp_session_free(t->mcp, l->s);
	} else if (mcp_session_sender_ctx(l->s) == l) {
		struct link *next = NULL;

		for (size_t k = 0; k < t->n_links; k++)
			if (t->links[k]->s == l->s && !t->links[k]->ws)
				next = t->links[k];
		mcp_session_set_sender(l->s, next ? link_send : NULL, next);
	}
	free(l);
}

/* Streams of a session that is ending. */
static void session_end(struct mcp_http *t, struct mcp_session *s)
{
	for (size_t i = 0; i < t->n_links;) {
		struct link *l = t->links[i];

		if (l->s != s) {
			i++;
			continue;
		}
		http_end(t->http, l->conn);
		t->links[i] = t->links[--t->n_links];
		json_object_put(l->pending);
		free(l);
	}
	mcp_session_free(t->mcp, s);
}

static bool accepts(const char *accept, const char *type)
{
	return !accept[0] || strcasestr(accept, type) || strstr(accept, "*/*");
}

static struct mcp_session *session_of(struct mcp_http *t, const struct http_request *r)
{
	struct mcp_session *s;

	if (!r->session[0]) {
		refuse(t, r->conn, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
		return NULL;
	}
	s = mcp_session_find(t->mcp, r->session);
	if (!s) {
		refuse(t, r->conn, 404, -32001, "Session not found");
		return NULL;
	}
	return s;
}

/* A tools/call that waited for its commit: the POST it came in is answered now (http.c
 * drops the answer to a connection that went away meanwhile). */
static void post_later(void *ctx, uint64_t conn, struct json_object *response)
{
	reply_msg(ctx, conn, 200, response, NULL);
}

/* ... or the WebSocket it came on, when it is still open. */
static void ws_later(void *ctx, uint64_t conn, struct json_object *response)
{
	struct link *l = link_find(ctx, conn, NULL);

	if (l)
		link_send(l, response);
}

/* subscriptions/listen: a stream of its own session, begun once the request is accepted
 * (the acknowledgement waits in the link until then); a refusal is a plain JSON reply. */
static void on_listen(struct mcp_http *t, const struct http_request *r, struct json_object *msg,
		      const struct mcp_edge *edge)
{
	struct mcp_session *s = mcp_session_new(t->mcp, "listen", NULL, NULL);
	struct link *l = s ? link_add(t, r->conn, s, false) : NULL;
	struct json_object *reply, *pending;
	int status;

	if (!l) {
		if (s)
			mcp_session_free(t->mcp, s);
		refuse(t, r->conn, 503, -32603, "too many MCP streams");
		return;
	}
	l->listen = true;
	l->pending = json_object_new_array();
	mcp_session_set_sender(s, link_send, l);
	reply = mcp_handle_edge(t->mcp, s, msg, edge, &status);
	if (reply && json_object_object_get_ex(reply, "error", NULL)) {
		reply_msg(t, r->conn, status, reply, NULL);
		json_object_put(reply);
		link_closed(t, r->conn);
		return;
	}
	pending = l->pending;
	l->pending = NULL;
	if (http_stream_begin(t->http, r->conn, NULL, 0)) {
		json_object_put(pending);
		json_object_put(reply);
		link_closed(t, r->conn);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(pending); i++)
		link_send(l, json_object_array_get_idx(pending, i));
	json_object_put(pending);
	/* Nothing of the filter can be delivered: the graceful end, at once. */
	if (reply) {
		link_send(l, reply);
		json_object_put(reply);
		http_end(t->http, r->conn);
	}
}

/* A 2026-07-28 request: no session; its own answer. */
static void on_modern(struct mcp_http *t, const struct http_request *r, struct json_object *msg,
		      const struct mcp_edge *edge)
{
	struct json_object *m, *reply;
	bool pending;
	int status;

	if (json_object_object_get_ex(msg, "id", NULL) &&
	    json_object_object_get_ex(msg, "method", &m) &&
	    !strcmp(json_object_get_string(m), "subscriptions/listen")) {
		on_listen(t, r, msg, edge);
		return;
	}
	reply = mcp_handle_edge_later(t->mcp, NULL, msg, edge, &status,
				      &(struct mcp_later){ post_later, t, r->conn }, &pending);
	if (pending)
		return;
	if (!reply) {
		http_reply(t->http, r->conn, 202, NULL, json_hdr, 1, NULL, 0);
		return;
	}
	reply_msg(t, r->conn, status, reply, NULL);
	json_object_put(reply);
}

static void on_post(struct mcp_http *t, const struct http_request *r)
{
	const struct mcp_edge edge = { r->protocol_version, r->mcp_method, r->mcp_name };
	struct json_object *msg = NULL, *reply;
	struct mcp_session *s;
	struct verr e = {};
	enum mcp_era era;
	bool pending;
	int status;

	if (!accepts(r->accept, "application/json")) {
		refuse(t, r->conn, 406, -32600,
		       "Not Acceptable: Accept must include application/json and "
		       "text/event-stream");
		return;
	}
	if (r->content_type[0] && strncasecmp(r->content_type, "application/json", 16)) {
		refuse(t, r->conn, 415, -32600, "Unsupported Media Type: use application/json");
		return;
	}
	if (!r->body_len || jv_parse_string("body", r->body, r->body_len, &msg, &e)) {
		verr_free(&e);
		json_object_put(msg);
		refuse(t, r->conn, 400, -32700, "Parse error");
		return;
	}
	if (json_object_is_type(msg, json_type_array)) {
		json_object_put(msg);
		refuse(t, r->conn, 400, -32600, "Invalid Request: batches are not supported");
		return;
	}
	if (json_object_is_type(msg, json_type_object) &&
	    mcp_era_classify(msg, &edge, &era, &reply, &status)) {
		reply_msg(t, r->conn, status, reply, NULL);
		json_object_put(reply);
		json_object_put(msg);
		return;
	}
	if (json_object_is_type(msg, json_type_object) && era == MCP_ERA_MODERN) {
		on_modern(t, r, msg, &edge);
		json_object_put(msg);
		return;
	}
	if (mcp_is_initialize(msg)) {
		s = mcp_session_new_http(t->mcp, r->peer);
		if (!s) {
			json_object_put(msg);
			refuse(t, r->conn, 503, -32603, "too many MCP sessions");
			return;
		}
		reply = mcp_handle(t->mcp, s, msg);
		/* A failed initialize leaves no session behind. */
		if (json_object_object_get_ex(reply, "error", NULL)) {
			reply_msg(t, r->conn, 200, reply, NULL);
			mcp_session_free(t->mcp, s);
		} else {
			reply_msg(t, r->conn, 200, reply, mcp_session_id(s));
		}
		json_object_put(reply);
		json_object_put(msg);
		return;
	}
	if (r->protocol_version[0] && !mcp_version_supported(r->protocol_version)) {
		char m[128];

		snprintf(m, sizeof(m), "Bad Request: unsupported MCP-Protocol-Version %.32s",
			 r->protocol_version);
		json_object_put(msg);
		refuse(t, r->conn, 400, -32600, m);
		return;
	}
	s = session_of(t, r);
	if (!s) {
		json_object_put(msg);
		return;
	}
	reply = mcp_handle_later(t->mcp, s, msg, &(struct mcp_later){ post_later, t, r->conn },
				 &pending);
	json_object_put(msg);
	if (pending)
		return;
	if (!reply) {
		http_reply(t->http, r->conn, 202, NULL, json_hdr, 1, NULL, 0);
		return;
	}
	reply_msg(t, r->conn, 200, reply, NULL);
	json_object_put(reply);
}

static void on_get(struct mcp_http *t, const struct http_request *r)
{
	struct http_header h[1];
	struct mcp_session *s;
	struct link *l;

	if (!strcasestr(r->accept, "text/event-stream")) {
		refuse(t, r->conn, 406, -32600, "Not Acceptable: GET /mcp needs text/event-stream");
		return;
	}
	if (r->protocol_version[0] && !mcp_version_supported(r->protocol_version)) {
		refuse(t, r->conn, 400, -32600, "Bad Request: unsupported MCP-Protocol-Version");
		return;
	}
	if (!(s = session_of(t, r)))
		return;
	l = link_add(t, r->conn, s, false);
	if (!l) {
		refuse(t, r->conn, 503, -32603, "too many MCP streams");
		return;
	}
	h[0].name = "Mcp-Session-Id";
	h[0].value = mcp_session_id(s);
	if (http_stream_begin(t->http, r->conn, h, 1)) {
		link_closed(t, r->conn);
		return;
	}
	/* The newest stream carries the session's messages. */
	mcp_session_set_sender(s, link_send, l);
}

static void on_delete(struct mcp_http *t, const struct http_request *r)
{
	struct mcp_session *s = session_of(t, r);

	if (!s)
		return;
	session_end(t, s);
	http_reply(t->http, r->conn, 204, NULL, json_hdr, 1, NULL, 0);
}

static void on_ws_open(struct mcp_http *t, const struct http_request *r)
{
	struct mcp_session *s = mcp_session_new(t->mcp, "ws", NULL, NULL);
	struct link *l = s ? link_add(t, r->conn, s, true) : NULL;

	if (!l) {
		if (s)
			mcp_session_free(t->mcp, s);
		http_end(t->http, r->conn);
		return;
	}
	mcp_session_set_sender(s, link_send, l);
}

static void on_ws_message(struct mcp_http *t, const struct http_request *r)
{
	struct link *l = link_find(t, r->conn, NULL);
	struct json_object *msg = NULL, *reply;
	struct verr e = {};

	if (!l)
		return;
	if (jv_parse_string("message", r->body ? r->body : "", r->body_len, &msg, &e)) {
		verr_free(&e);
		reply = mcp_error(NULL, -32700, "Parse error");
	} else {
		reply = mcp_handle_later(t->mcp, l->s, msg,
					 &(struct mcp_later){ ws_later, t, r->conn }, NULL);
	}
	json_object_put(msg);
	if (reply) {
		link_send(l, reply);
		json_object_put(reply);
	}
}

void mcp_http_request(struct mcp_http *t, struct http_request *r)
{
	switch (r->kind) {
	case HTTP_REQUEST:
		if (strcmp(r->path, "/mcp")) {
			refuse(t, r->conn, 404, -32600, "not found: the MCP endpoint is /mcp");
		} else if (!strcmp(r->method, "POST")) {
			on_post(t, r);
		} else if (!strcmp(r->method, "GET")) {
			on_get(t, r);
		} else if (!strcmp(r->method, "DELETE")) {
			on_delete(t, r);
		} else {
			static const struct http_header allow[] = { { "Allow",
								      "GET, HEAD, POST, DELETE" } };
			struct json_object *e = mcp_error(NULL, -32600, "Method Not Allowed");

			http_reply_json(t->http, r->conn, 405, e, allow, 1);
			json_object_put(e);
		}
		break;
	case HTTP_WS_OPEN:
		on_ws_open(t, r);
		break;
	case HTTP_WS_MESSAGE:
		on_ws_message(t, r);
		break;
	case HTTP_CLOSED:
		link_closed(t, r->conn);
		break;
	}
}

/* Off when the HTTP server or mcp.listen is off. */
static int mcp_http_start(const struct transport_env *env, void **self)
{
	const struct listen_cfg *l = &env->cfg->mcp;
	struct mcp_http *t;

	*self = NULL;
	if (!env->http || !l->enabled)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->http = env->http;
	t->mcp = env->mcp;
	p_info("MCP on http%s://%s%s%s:%u/mcp (Streamable HTTP, WebSocket \"mcp\")%s",
	       l->cert[0] ? "s" : "", strchr(l->addr, ':') ? "[" : "", l->addr,
	       strchr(l->addr, ':') ? "]" : "", http_port(t->http, HTTP_MCP),
	       env->cfg->mcp_auth_none ? ", without a token (auth none)" : "");
	*self = t;
	return 0;
}

static void mcp_http_stop(void *self)
{
	struct mcp_http *t = self;

	mcp_cancel(t->mcp, t);
	for (size_t i = 0; i < t->n_links; i++) {
		json_object_put(t->links[i]->pending);
		free(t->links[i]);
	}
	free(t);
}

/* Comments on open GET streams, so that idle ones stay open through proxies. */
static void mcp_http_tick(void *self, uint64_t now)
{
	struct mcp_http *t = self;

	if (now - t->last_keepalive_ns < KEEPALIVE_NS)
		return;
	t->last_keepalive_ns = now;
	for (size_t i = 0; i < t->n_links; i++)
		if (!t->links[i]->ws)
			http_send(t->http, t->links[i]->conn, ":\n\n", 3);
}

/* Its part of status "http"."mcp": the streams and WebSockets it serves. */
static struct json_object *mcp_http_status(void *self)
{
	struct mcp_http *t = self;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "links", json_object_new_uint64(t->n_links));
	return o;
}

static void mcp_http_request_op(void *self, struct http_request *r)
{
	mcp_http_request(self, r);
}

const struct transport_ops mcp_http_transport = {
	.name = "mcp",
	.listener = HTTP_MCP,
	.start = mcp_http_start,
	.stop = mcp_http_stop,
	.tick = mcp_http_tick,
	.status = mcp_http_status,
	.request = mcp_http_request_op,
};
