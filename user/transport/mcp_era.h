/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * MCP protocol eras, at the edge of the one dispatcher (mcp.c).
 *
 * Legacy era (2025-11-25, 2025-06-18, 2025-03-26): an initialize handshake makes a session;
 * every later request belongs to it. Modern era (2026-07-28): stateless; every request
 * carries its own envelope in params._meta:
 *   "io.modelcontextprotocol/protocolVersion": "2026-07-28"      (required)
 *   "io.modelcontextprotocol/clientCapabilities": {...}         (required)
 *   "io.modelcontextprotocol/clientInfo": {"name":..,"version":..} (optional)
 * and every result carries "resultType": "complete" (list results also "ttlMs" and
 * "cacheScope"; every result "_meta": {"io.modelcontextprotocol/serverInfo": {...}}).
 *
 * Classification is body-primary (the envelope claim decides), with the Streamable HTTP
 * headers MCP-Protocol-Version, Mcp-Method and Mcp-Name as cross-checks (SEP-2243). The
 * order of the checks and their codes follow the reference implementation's validation
 * ladder (@modelcontextprotocol/server 2.4.0, inboundClassification.ts): an invalid
 * envelope is -32602, an unsupported revision -32022 with data {supported, requested}, a
 * header that is missing or disagrees -32020; all three are HTTP 400 on Streamable HTTP.
 * The 2026-07-28 specification text was not found in the reference library; the wire
 * format here is taken from the official v2 SDK's sources (client and server 2.4.0).
 */
#ifndef CAELUM_MCP_ERA_H
#define CAELUM_MCP_ERA_H

#include <stdbool.h>
#include <json-c/json.h>

#define MCP_MODERN_VERSION   "2026-07-28"
#define MCP_KEY_VERSION	     "io.modelcontextprotocol/protocolVersion"
#define MCP_KEY_CAPS	     "io.modelcontextprotocol/clientCapabilities"
#define MCP_KEY_CLIENT	     "io.modelcontextprotocol/clientInfo"
#define MCP_KEY_SERVER	     "io.modelcontextprotocol/serverInfo"
#define MCP_KEY_SUBSCRIPTION "io.modelcontextprotocol/subscriptionId"
#define MCP_KEY_LOG_LEVEL    "io.modelcontextprotocol/logLevel"

#define MCP_ERR_HEADER_MISMATCH	    -32020
#define MCP_ERR_UNSUPPORTED_VERSION -32022

enum mcp_era { MCP_ERA_LEGACY, MCP_ERA_MODERN };

/* The Streamable HTTP headers of one POST (NULL or "" when absent); all NULL elsewhere. */
struct mcp_edge {
	const char *version; /* MCP-Protocol-Version */
	const char *method;  /* Mcp-Method */
	const char *name;    /* Mcp-Name */
};

/* Which era msg (a JSON-RPC object) belongs to. 0 with *era set, or -1 with *err set to a
 * JSON-RPC error response (new reference) and *http_status to the HTTP status a Streamable
 * HTTP transport answers it with (400). edge may be NULL (WebSocket, stdio). */
int mcp_era_classify(struct json_object *msg, const struct mcp_edge *edge, enum mcp_era *era,
		     struct json_object **err, int *http_status);

/* Is the version a modern (>= 2026-07-28) revision, by ISO date order? */
bool mcp_era_is_modern(const char *version);

/* Decorate a modern result object in place for method: resultType, cache hints for lists
 * and reads, the server's identity in _meta. */
void mcp_era_result(struct json_object *res, const char *method);

/* A modern error code: ResourceNotFound (-32002) is InvalidParams (-32602) on 2026-07-28. */
int mcp_era_error_code(int code);

/* The server's identity ({"name":"caelumd","version":...}), new reference. */
struct json_object *mcp_era_server_info(void);

/* A JSON-RPC error response (new reference); id may be NULL. */
struct json_object *mcp_error(struct json_object *id, int code, const char *message);

#endif /* CAELUM_MCP_ERA_H */
