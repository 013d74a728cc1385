/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * MCP (Model Context Protocol, revision 2026-07-28, and the legacy era 2025-11-25,
 * 2025-06-18, 2025-03-26): one dispatcher for every transport and both eras (mcp_era.h says
 * how a message's era is told and what differs). A session is one client: a Streamable HTTP
 * session (Mcp-Session-Id, legacy), a subscriptions/listen stream (modern, HTTP), a
 * WebSocket, or a `caelumctl mcp` stdio bridge on the control socket.
 * Transports parse their framing and call mcp_handle(); what the server sends on its own
 * (notifications/resources/updated, notifications/message) goes through the session's
 * send function. Tools call the same handlers as the control socket and the HTTP API.
 */
#ifndef CAELUM_MCP_H
#define CAELUM_MCP_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "mcp_era.h"

struct events;
struct handler_ctx;
struct mcp;
struct mcp_session;
struct mcp_edge;

struct mcp_stats {
	uint64_t evicted_lru; /* idle legacy HTTP sessions evicted, least recently used first */
	uint64_t evicted_per_client; /* ... by a client at its own limit, among its own */
	uint64_t refused;	     /* new sessions refused: nothing was evictable */
	uint64_t modern_requests;    /* 2026-07-28 requests */
	uint64_t era_refused;	     /* refused by the era rules (envelope, version, headers) */
	uint64_t listens_opened;
	uint64_t sessions, notes_sent, notes_dropped;
};

#define MCP_LATEST_VERSION "2025-11-25"

/* Deliver one server-to-client message (borrowed). false: it could not be delivered. */
typedef bool (*mcp_send_fn)(void *ctx, struct json_object *msg);

/* The dispatcher: tools and resources call handlers_call(hx, ...); notifications follow the
 * events of ev. Both borrowed until mcp_close. 0 or -errno. */
int mcp_open(struct mcp **out, const struct handler_ctx *hx, struct events *ev);
void mcp_close(struct mcp *m);

struct mcp_session *mcp_session_new(struct mcp *m, const char *transport, mcp_send_fn send,
				    void *ctx);
void mcp_session_free(struct mcp *m, struct mcp_session *s);
/* A legacy Streamable HTTP session for the client at address peer. At the limits (256
 * sessions, 64 per address) the least recently used session that no stream serves is
 * evicted first, of the same address when that address is at its own limit; NULL when
 * nothing could be evicted (counted). */
struct mcp_session *mcp_session_new_http(struct mcp *m, const char *peer);
struct mcp_session *mcp_session_find(struct mcp *m, const char *id);
const char *mcp_session_id(const struct mcp_session *s);
/* The protocol version negotiated at initialize ("" before). */
const char *mcp_session_version(const struct mcp_session *s);
void mcp_session_set_sender(struct mcp_session *s, mcp_send_fn send, void *ctx);
void *mcp_session_sender_ctx(const struct mcp_session *s);

/* One incoming message. The response (new reference) for a request, NULL for a
 * notification or a response. */
struct json_object *mcp_handle(struct mcp *m, struct mcp_session *s, struct json_object *msg);
/* The same for a Streamable HTTP POST: edge holds its MCP headers; s NULL serves a stateless
 * (2026-07-28) request. *http_status: the status to answer with (200, 400 for requests the
 * era rules refuse, 202 for a refused notification). */
struct json_object *mcp_handle_edge(struct mcp *m, struct mcp_session *s, struct json_object *msg,
				    const struct mcp_edge *edge, int *http_status);
/* Is msg an initialize request? */
bool mcp_is_initialize(struct json_object *msg);
bool mcp_version_supported(const char *v);

/* Deferred resource notifications, idle HTTP sessions expired. */
void mcp_tick(struct mcp *m, uint64_t now_ns);
struct json_object *mcp_status_json(struct mcp *m);
void mcp_get_stats(struct mcp *m, struct mcp_stats *st);

#endif /* CAELUM_MCP_H */
