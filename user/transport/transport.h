/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A transport: a way in for requests and a way out for events, with no logic of its own.
 * caelumd holds one table of them (transports.c) and treats every entry alike: start after
 * the daemon's state is up, tick on the loop's timer, status, stop at exit. Adding a
 * transport = user/enforce/<name>.c implementing struct transport_ops + one line in transports.c.
 *
 *   control   the control socket, JSON-RPC lines (rpc.c); `caelumctl mcp` upgrades a
 *             connection to MCP with "mcp.connect" (the stdio bridge)
 *   api       the dashboard listener: /api/v1/... , Server-Sent Events, /metrics (api.c)
 *   mcp       MCP over Streamable HTTP and WebSocket at /mcp (mcp_http.c)
 *   peers     this host's events pushed to MCP peers (peers.c)
 *
 * How a transport calls a handler: it parses its framing into (method, params), calls
 * handlers_call(env->hx, ...) (handlers.h) and renders the result or the error. MCP
 * messages go through the one MCP dispatcher (env->mcp, mcp.h), which calls
 * handlers_call() for every tool and resource. A transport sees only struct transport_env,
 * never the daemon.
 */
#ifndef CAELUM_TRANSPORT_H
#define CAELUM_TRANSPORT_H

#include <stdint.h>
#include <json-c/json.h>

struct config;
struct events;
struct handler_ctx;
struct http;
struct http_request;
struct loop;
struct mcp;

/* What a transport may use: borrowed, valid from start to stop. */
struct transport_env {
	const struct config *cfg;     /* listeners, socket path, peers, host */
	const struct handler_ctx *hx; /* handlers_call()'s context (handlers.h) */
	struct events *ev;	      /* events_subscribe() for streams and peers */
	struct loop *loop;	      /* the daemon's loop: every callback runs on it */
	struct mcp *mcp;	      /* the MCP dispatcher (mcp.h) */
	struct http *http;	      /* the HTTP server (http.h), NULL when none runs */
};

struct transport_ops {
	/* Its name; transports_status() puts its status object in the status document
	 * (control: "control_socket"; api: merged into "http"; mcp: into "http"."mcp";
	 * peers: "http"."mcp"."peers"). */
	const char *name;
	/* The HTTP server's listener it serves (enum http_listener), or -1: requests for that
	 * listener reach its request op. */
	int listener;
	/* Start; *self = its state (NULL when its configuration leaves it off: not an error).
	 * 0 or -errno (already reported with the reason). */
	int (*start)(const struct transport_env *env, void **self);
	/* Stop, close every connection and free self. */
	void (*stop)(void *self);
	/* Periodic work on the loop's timer (keep-alives, reconnects, expiry); optional. */
	void (*tick)(void *self, uint64_t now_ns);
	/* Its status object (new reference), or NULL when it has nothing to say; optional. */
	struct json_object *(*status)(void *self);
	/* One HTTP request, WebSocket message or close on its listener; r stays the caller's. */
	void (*request)(void *self, struct http_request *r);
};

#endif /* CAELUM_TRANSPORT_H */
