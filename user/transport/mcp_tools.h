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
struct hcall;
struct herr;
struct hreply;
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
/*
 * tools/call for a caller that can answer later: as mcp_tools_call (0 and *out, or a
 * JSON-RPC error code and msg), or MCP_TOOLS_PENDING: the tool's handler waits for its
 * commit; reply->fn gets the handler's outcome, which mcp_tools_finish(*tool) turns into
 * the tool's result. *pending names the call (handlers_cancel).
 */
#define MCP_TOOLS_PENDING 1
int mcp_tools_begin(struct mcp_tools *t, struct json_object *params, struct json_object **out,
		    char *msg, size_t msg_len, const struct hreply *reply, struct hcall **pending,
		    size_t *tool);
/* The result of tool from its handler's outcome (rc, res consumed, err->errors consumed):
 * 0 and *out, or a JSON-RPC error code and msg. */
int mcp_tools_finish(struct mcp_tools *t, size_t tool, int rc, struct json_object *res,
		     struct herr *err, struct json_object **out, char *msg, size_t msg_len);
void mcp_tools_counts(const struct mcp_tools *t, uint64_t *calls, uint64_t *errors);

#endif /* CAELUM_MCP_TOOLS_H */
