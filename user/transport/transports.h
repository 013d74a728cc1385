/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The table of transports (transport.h) and what caelumd does with all of them at once:
 * start, tick, status, stop. Also owns what the transports ride on: the MCP dispatcher
 * (mcp.c, shared by the control socket's stdio bridge and the MCP listener) and the HTTP
 * server (http.c: one libwebsockets thread for the dashboard and MCP listeners and the
 * connections to peers), whose requests it hands to the transport serving that listener.
 * Knows no transport by name: the table in transports.c is the one place that lists them.
 */
#ifndef CAELUM_TRANSPORTS_H
#define CAELUM_TRANSPORTS_H

#include <stdint.h>
#include <json-c/json.h>

#include "token.h"
#include "transport.h"

#define TRANSPORTS_MAX 8

struct transports {
	struct transport_env env;
	void *self[TRANSPORTS_MAX]; /* by table index; NULL: not started or off */
};

/*
 * Start the MCP dispatcher, then (when a listener or a peer is configured) load the API
 * token into token and start the HTTP server, then every transport in table order.
 * cfg, hx, ev, loop and token are borrowed until transports_stop. 0, or a sysexits code
 * (already reported).
 */
int transports_start(struct transports *t, const struct config *cfg, const struct handler_ctx *hx,
		     struct events *ev, struct loop *loop, char token[TOKEN_LEN + 1]);
/* Stop every transport (reverse order), the HTTP server and the dispatcher. Idempotent. */
void transports_stop(struct transports *t);
/* The dispatcher's deferred notifications and expiry, then every transport's tick. */
void transports_tick(struct transports *t, uint64_t now_ns);
/*
 * The transports' part of the status document, added to status: "http" (listeners, their
 * counters, MCP sessions and peers; {"enabled": false} without an HTTP server) and
 * "control_socket".
 */
void transports_status(struct transports *t, struct json_object *status);
/* The API token changed: the HTTP server checks the new one from now on. */
void transports_set_token(struct transports *t, const char *token);

#endif /* CAELUM_TRANSPORTS_H */
