/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The embedded HTTP server (libwebsockets): the dashboard/API listener and the MCP
 * listener. libwebsockets runs in a thread of its own and only moves bytes: it parses
 * requests, applies the access rules (http_auth.c), serves the embedded static assets,
 * and hands every other request to caelumd's event loop, where api.c and mcp.c answer it
 * through the shared handlers. Replies go back through a mutex-protected queue per
 * connection; lws_cancel_service() wakes the server thread, an eventfd wakes the loop.
 *
 * A connection handle (uint64_t) names one request, SSE stream or WebSocket; a handle
 * whose connection has gone is refused with -ENOTCONN, never delivered elsewhere.
 */
#ifndef CAELUM_HTTP_H
#define CAELUM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"

enum http_listener { HTTP_DASH, HTTP_MCP, HTTP_LISTENERS, HTTP_PEER = HTTP_LISTENERS };
enum http_kind { HTTP_REQUEST, HTTP_WS_OPEN, HTTP_WS_MESSAGE, HTTP_CLOSED };

#define HTTP_BODY_MAX	      (1U << 20) /* request bodies and WebSocket messages */
#define HTTP_STREAM_QUEUE_MAX (1U << 20) /* unsent bytes per stream before dropping */
/* A connection must complete its request headers within HTTP_HEADER_TIMEOUT_S of being
 * accepted (or of its previous request), and a request's body within HTTP_BODY_TIMEOUT_S
 * of its headers (with no gap of more than HTTP_HEADER_TIMEOUT_S), or it is closed. */
#define HTTP_HEADER_TIMEOUT_S 10
#define HTTP_BODY_TIMEOUT_S   20

struct http_request {
	enum http_kind kind;
	uint64_t conn;
	int listener;	  /* enum http_listener */
	char method[8];	  /* a HEAD request arrives as "GET" with head set */
	bool head;	  /* HEAD: answered as GET, http.c sends the headers only */
	char path[512];	  /* without the query */
	char query[1024]; /* raw, still percent-encoded */
	char accept[256];
	char last_event_id[32];
	char session[128];	   /* Mcp-Session-Id */
	char protocol_version[32]; /* MCP-Protocol-Version */
	char mcp_method[64];	   /* Mcp-Method (MCP 2026-07-28) */
	char mcp_name[384];	   /* Mcp-Name (MCP 2026-07-28) */
	char content_type[128];
	char peer[64];
	bool authenticated; /* presented the API token */
	bool loopback_peer;
	char *body; /* NUL-terminated; NULL when empty (HTTP_CLOSED of a peer: why) */
	size_t body_len;
	struct http_request *next;
};

struct http_header {
	const char *name; /* "Mcp-Session-Id" */
	const char *value;
};

struct http_opts {
	const struct listen_cfg *listen[HTTP_LISTENERS]; /* NULL or !enabled: not served */
	bool mcp_auth_none; /* MCP without a token (loopback listener only) */
	bool client;	    /* connections to peers (http_ws_connect) */
	const char *token;
	void (*on_request)(void *ctx, struct http_request *r); /* takes ownership of r */
	void *ctx;
};

struct http_stats {
	uint64_t requests[HTTP_LISTENERS];
	uint64_t responses[6];		     /* by status class: [2] = 2xx ... [5] = 5xx */
	uint64_t denied_auth, denied_origin; /* 401s and 403s given by the access rules */
	uint64_t stream_drops; /* messages not queued because a stream was too far behind */
	uint64_t bytes_out;
	uint64_t refused[3];	  /* connections closed at accept, by enum connlimit_reason */
	uint64_t evicted[3];	  /* idle ones closed to admit a newcomer, by the same */
	uint64_t body_incomplete; /* connections closed before a request's body was in (a
				   * timeout, too slow a body, or the peer went away) */
	unsigned int connections, streams, websockets;
	unsigned int conn_slots, conn_unauth_max, conn_per_addr_max; /* the limits in force */
	unsigned long fd_limit;					     /* soft RLIMIT_NOFILE */
};

struct http;

/* Bind the listeners (errors name the listener) and start the server thread. */
int http_start(struct http **out, struct loop *l, const struct http_opts *o);
void http_stop(struct http *h);
/* The port a listener actually got (0 when it is not served). */
uint16_t http_port(const struct http *h, int listener);
void http_set_token(struct http *h, const char *token);
void http_get_stats(struct http *h, struct http_stats *s);
void http_request_free(struct http_request *r);

/* A complete response; the connection then takes its next request. To a HEAD request
 * (r->head) only the status and headers go, Content-Length the length of body (RFC 9110
 * section 9.3.2: HEAD is GET without the content). */
int http_reply(struct http *h, uint64_t conn, int status, const char *ctype,
	       const struct http_header *hdrs, size_t n_hdrs, const void *body, size_t len);
/* A JSON response: the object's text (o is not consumed). */
struct json_object;
int http_reply_json(struct http *h, uint64_t conn, int status, struct json_object *o,
		    const struct http_header *hdrs, size_t n_hdrs);
/* Start a streaming response (text/event-stream): headers now, data with http_send().
 * 0 on success, -ENOTCONN/-ENOMEM; 1 for a HEAD request: the stream's headers went and the
 * response is complete, no stream follows (the caller keeps nothing for it). */
int http_stream_begin(struct http *h, uint64_t conn, const struct http_header *hdrs, size_t n_hdrs);
/* Queue bytes on a stream, or one text message on a WebSocket. -ENOBUFS when more than
 * HTTP_STREAM_QUEUE_MAX is already waiting (nothing queued, counted), -ENOTCONN when the
 * connection is gone. */
int http_send(struct http *h, uint64_t conn, const void *data, size_t len);
/* End a stream or close a WebSocket once what is queued has been sent. */
void http_end(struct http *h, uint64_t conn);

/* A WebSocket client connection (subprotocol "mcp") to a peer, made by the server thread.
 * Its opening, messages and close come back like a server WebSocket's, with listener
 * HTTP_PEER; a failed connection comes back as HTTP_CLOSED with the reason in body. */
int http_ws_connect(struct http *h, const char *host, uint16_t port, const char *path, bool tls,
		    const char *token, uint64_t *conn);

#endif /* CAELUM_HTTP_H */
