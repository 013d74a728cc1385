/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* MCP over Streamable HTTP and WebSocket at /mcp (see mcp_http.c). */
#ifndef CAELUM_MCP_HTTP_H
#define CAELUM_MCP_HTTP_H

struct daemon;
struct http_request;
struct mcp_http;

int mcp_http_open(struct mcp_http **out, struct daemon *d);
void mcp_http_close(struct mcp_http *t);
/* A request, WebSocket message or close on the MCP listener (r stays the caller's). */
void mcp_http_request(struct mcp_http *t, struct http_request *r);
/* Comments on open GET streams, so that idle ones stay open through proxies. */
void mcp_http_keepalive(struct mcp_http *t);

#endif /* CAELUM_MCP_HTTP_H */
