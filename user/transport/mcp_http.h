/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* MCP over Streamable HTTP and WebSocket at /mcp (see mcp_http.c), a transport
 * (transport.h) on the MCP listener: every message goes to the MCP dispatcher (mcp.h). */
#ifndef CAELUM_MCP_HTTP_H
#define CAELUM_MCP_HTTP_H

#include "transport.h"

struct http_request;
struct mcp_http;

/* Serves listener HTTP_MCP; off when the HTTP server or mcp.listen is off. */
extern const struct transport_ops mcp_http_transport;

/* A request, WebSocket message or close on the MCP listener (r stays the caller's). */
void mcp_http_request(struct mcp_http *t, struct http_request *r);

#endif /* CAELUM_MCP_HTTP_H */
