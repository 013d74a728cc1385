/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The MCP tools: their table (name, JSON Schemas of input and output, the handler method
 * they call), tools/list and tools/call. The same for both eras; the dispatcher (mcp.c) wraps
 * the results in its JSON-RPC responses.
 */
#ifndef CAELUM_MCP_TOOLS_H
#define CAELUM_MCP_TOOLS_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct handler_ctx;
struct mcp_tools;

/* Parse every tool's schemas; calls go to handlers_call(hx, ...) (hx borrowed).
 * 0, -ENOMEM, or -EINVAL when one does not parse (a bug). */
int mcp_tools_open(struct mcp_tools **out, const struct handler_ctx *hx);
void mcp_tools_close(struct mcp_tools *t);
/* The tools/list result ({"tools": [...]}, new reference). */
struct json_object *mcp_tools_list(const struct mcp_tools *t);
/* tools/call: 0 with *out the result (input and handler errors are results with isError,
 * as MCP asks), or a JSON-RPC error code with msg (-32602 unknown tool or no name, -32603 a
 * result that does not match the tool's outputSchema). */
int mcp_tools_call(struct mcp_tools *t, struct json_object *params, struct json_object **out,
		   char *msg, size_t msg_len);
void mcp_tools_counts(const struct mcp_tools *t, uint64_t *calls, uint64_t *errors);

#endif /* CAELUM_MCP_TOOLS_H */
