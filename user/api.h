/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The HTTP API on the dashboard listener, run on caelumd's loop: routes /api/v1/... to the
 * shared handlers (handlers.c), renders /metrics (metrics.c), and feeds Server-Sent Event
 * streams of events. MCP requests (the other listener) go to mcp.c.
 */
#ifndef CAELUM_API_H
#define CAELUM_API_H

#include <stdint.h>

struct daemon;
struct http_request;

/* Start the listeners configured in d->cfg. 0, or a sysexits code (already reported). */
int api_start(struct daemon *d);
void api_stop(struct daemon *d);
/* Keep-alive comments on idle streams. */
void api_tick(struct daemon *d, uint64_t now_ns);
/* Status: listeners, ports, streams, drops. */
struct json_object *api_status_json(struct daemon *d);
/* Events not sent to a stream because the client fell behind. */
uint64_t api_sse_drops(const struct daemon *d);

#endif /* CAELUM_API_H */
