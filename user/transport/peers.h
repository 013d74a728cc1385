/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * MCP peers: for each configured peer caelumd is an MCP client that initializes, then
 * calls ingest_events with batches of this host's events (registry changes, denials,
 * health, verification; not the events it got from peers). A bounded queue per peer holds
 * what is not sent yet; when it is full new events are dropped and counted. Connections
 * are retried with exponential backoff; a batch whose answer was lost is sent again (the
 * receiver skips the events it already has by their origin id).
 *   ws:// wss://     a WebSocket (subprotocol "mcp") made by the HTTP server's thread
 *   http:// https:// Streamable HTTP with libcurl, in a thread of the peer's own
 */
#ifndef CAELUM_PEERS_H
#define CAELUM_PEERS_H

#include <stdint.h>
#include <json-c/json.h>

#include "transport.h"

struct config;
struct events;
struct http;
struct http_request;
struct peers;

#define PEER_BATCH_MAX 100

/* The transport: starts peers_open() with its env; off (self NULL) without peers. */
extern const struct transport_ops peers_transport;

/* One client per cfg->peers[] (cfg read for the host name while it runs), fed by ev, its
 * WebSockets made by http. With cfg->peers_auto the peers are the other hosts of the
 * machine registry that are up (host.list through hx, re-read every second on the tick): a
 * peer is started when a host appears and stopped when it is lost or gone. *out NULL when
 * none is configured. 0 or -errno. */
struct handler_ctx;
int peers_open(struct peers **out, const struct config *cfg, struct events *ev, struct http *http,
	       const struct handler_ctx *hx);
void peers_close(struct peers *p);
/* A WebSocket open, message or close of a peer connection (listener HTTP_PEER). */
void peers_ws_event(struct peers *p, struct http_request *r);
/* Reconnects and timeouts. */
void peers_tick(struct peers *p, uint64_t now_ns);
struct json_object *peers_status_json(struct peers *p);

#endif /* CAELUM_PEERS_H */
