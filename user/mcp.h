/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * MCP (Model Context Protocol, revision 2025-11-25; 2025-06-18 and 2025-03-26 accepted):
 * one dispatcher for every transport. A session is one client: a Streamable HTTP session
 * (Mcp-Session-Id), a WebSocket, or a `caelumctl mcp` stdio bridge on the control socket.
 * Transports parse their framing and call mcp_handle(); what the server sends on its own
 * (notifications/resources/updated, notifications/message) goes through the session's
 * send function. Tools call the same handlers as the control socket and the HTTP API.
 */
#ifndef CAELUM_MCP_H
#define CAELUM_MCP_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

struct daemon;
struct mcp;
struct mcp_session;

#define MCP_LATEST_VERSION "2025-11-25"

/* Deliver one server-to-client message (borrowed). false: it could not be delivered. */
typedef bool (*mcp_send_fn)(void *ctx, struct json_object *msg);

int mcp_open(struct mcp **out, struct daemon *d);
void mcp_close(struct mcp *m);

struct mcp_session *mcp_session_new(struct mcp *m, const char *transport, mcp_send_fn send,
				    void *ctx);
void mcp_session_free(struct mcp *m, struct mcp_session *s);
struct mcp_session *mcp_session_find(struct mcp *m, const char *id);
const char *mcp_session_id(const struct mcp_session *s);
/* The protocol version negotiated at initialize ("" before). */
const char *mcp_session_version(const struct mcp_session *s);
void mcp_session_set_sender(struct mcp_session *s, mcp_send_fn send, void *ctx);
void *mcp_session_sender_ctx(const struct mcp_session *s);

/* One incoming message. The response (new reference) for a request, NULL for a
 * notification or a response. */
struct json_object *mcp_handle(struct mcp *m, struct mcp_session *s, struct json_object *msg);
/* A JSON-RPC error response (new reference); id may be NULL. */
struct json_object *mcp_error(struct json_object *id, int code, const char *message);
/* Is msg an initialize request? */
bool mcp_is_initialize(struct json_object *msg);
bool mcp_version_supported(const char *v);

/* Deferred resource notifications, idle HTTP sessions expired. */
void mcp_tick(struct mcp *m, uint64_t now_ns);
struct json_object *mcp_status_json(struct mcp *m);

#endif /* CAELUM_MCP_H */
