// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "log.h"
#include "mcp_tools.h"
#include "schema.h"

#define OBJ_OUT(props, req)                                                                        \
	"{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "]}"
#define STR "{\"type\":\"string\"}"
#define ARR "{\"type\":\"array\",\"items\":{\"type\":\"object\"}}"
#define NAME_IN                                                                                    \
	"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,"      \
	"\"maxLength\":64}},\"required\":[\"name\"],\"additionalProperties\":false}"
#define NONE_IN "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}"
#define PORT_P	"\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535}"
#define PROTO_P "\"proto\":{\"type\":\"string\",\"enum\":[\"tcp\",\"udp\"]}"
#define SVC_P	"\"service\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64}"
#define HOST_P                                                                                     \
	"\"host\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":253,\"description\":"         \
	"\"this host only (absent: every host)\"}"
#define PORT_OUT                                                                                   \
	OBJ_OUT("\"port\":{\"type\":\"integer\"},\"proto\":" STR ",\"service\":" STR               \
		",\"host\":" STR,                                                                  \
		"\"port\",\"proto\"")

static const struct tool {
	const char *name, *title, *description, *input, *output, *method, *wrap;
	bool read_only, destructive;
} tools[] = {
	{ "list_services", "List services", "Every registered service: ports, state, databases.",
	  NONE_IN, OBJ_OUT("\"services\":" ARR, "\"services\""), "service.list", "services", true,
	  false },
	{ "get_service", "Get a service",
	  "One service: ports, state, health, resources, recent denials, processes.", NAME_IN,
	  OBJ_OUT("\"name\":" STR ",\"state\":" STR, "\"name\""), "service.show", NULL, true,
	  false },
	{ "list_ports", "List port reservations",
	  "Every reservation: port, protocol, owning service, origin, managed range, and the host "
	  "of a host-only one.",
	  NONE_IN, OBJ_OUT("\"ports\":" ARR, "\"ports\""), "port.list", "ports", true, false },
	{ "reserve_port", "Reserve a port",
	  "Reserve PORT/PROTO for SERVICE; from then on the kernel denies its bind() to every "
	  "other cgroup; with HOST on that host only. Refused when another service owns it or a "
	  "foreign process holds it.",
	  "{\"type\":\"object\",\"properties\":{" PORT_P "," PROTO_P "," SVC_P "," HOST_P "},"
	  "\"required\":[\"port\",\"service\"],\"additionalProperties\":false}",
	  PORT_OUT, "port.reserve", NULL, false, false },
	{ "release_port", "Release a port",
	  "Release a runtime reservation of PORT/PROTO (with HOST: that host's).",
	  "{\"type\":\"object\",\"properties\":{" PORT_P "," PROTO_P "," HOST_P "},"
	  "\"required\":[\"port\"],\"additionalProperties\":false}",
	  PORT_OUT, "port.release", NULL, false, true },
	{ "allocate_port", "Allocate a port",
	  "Reserve the first free port of the managed ranges for SERVICE.",
	  "{\"type\":\"object\",\"properties\":{" SVC_P "," PROTO_P "},"
	  "\"required\":[\"service\"],\"additionalProperties\":false}",
	  PORT_OUT, "port.alloc", NULL, false, false },
	{ "check_service", "Validate a service",
	  "The mandatory startup validation of caelumctl run, without starting anything: "
	  "ports free, credentials, environment, databases. failures lists what would stop it.",
	  NAME_IN,
	  OBJ_OUT("\"name\":" STR ",\"failures\":{\"type\":\"array\"}", "\"name\",\"failures\""),
	  "run.check", NULL, true, false },
	{ "list_databases", "List databases",
	  "Every registered database: address, engine, reachability, connection counts.", NONE_IN,
	  OBJ_OUT("\"databases\":" ARR, "\"databases\""), "db.list", "databases", true, false },
	{ "resolve_database", "Resolve a database's name",
	  "Look the database's host name up again now instead of at its next resolve_interval_s; "
	  "a different answer swaps its kernel rules and emits db_address_changed. The answer "
	  "arrives after the call: list_databases shows it once resolutions passes the one "
	  "returned.",
	  NAME_IN,
	  OBJ_OUT("\"name\":" STR ",\"resolutions\":{\"type\":\"integer\"}",
		  "\"name\",\"resolutions\""),
	  "db.resolve", NULL, false, false },
	{ "get_resources", "Get resources",
	  "Host capacity, allocation and use per dimension (cpus, memory_mb, gpus, tasks, "
	  "egress_mbit, ingress_mbit) and per service (bandwidth: reservation and measured rate).",
	  NONE_IN,
	  OBJ_OUT("\"dimensions\":{\"type\":\"object\"},\"services\":" ARR,
		  "\"dimensions\",\"services\""),
	  "resources", NULL, true, false },
	{ "recent_events", "Recent events",
	  "Events, oldest first: denials (bind_denied, db_connect_denied, device_denied, "
	  "task_budget_exceeded, ...), registry changes, health, verification; peers' events "
	  "carry their host.",
	  "{\"type\":\"object\",\"properties\":{"
	  "\"type\":{\"type\":\"string\",\"maxLength\":63},"
	  "\"service\":{\"type\":\"string\",\"maxLength\":63},"
	  "\"host\":{\"type\":\"string\",\"maxLength\":253},"
	  "\"since\":{\"type\":\"integer\",\"minimum\":0},"
	  "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":16384}},"
	  "\"additionalProperties\":false}",
	  OBJ_OUT("\"events\":" ARR, "\"events\""), "events.list", "events", true, false },
	{ "get_status", "Get status",
	  "Components (mode, kernel-verified attachment), last self-verification, policy, "
	  "event counters, registry.",
	  NONE_IN, OBJ_OUT("\"host\":" STR ",\"components\":" ARR, "\"host\",\"components\""),
	  "status", NULL, true, false },
	{ "verify_enforcement", "Verify enforcement",
	  "Prove every enabled component in the kernel now: canary binds, connects, device "
	  "opens and forks that must be denied.",
	  NONE_IN,
	  OBJ_OUT("\"ok\":{\"type\":\"boolean\"},\"components\":{\"type\":\"object\"}",
		  "\"ok\",\"components\""),
	  "verify", NULL, true, false },
	{ "list_hosts", "List hosts",
	  "The machine registry (etcd backend): every Caelum host sharing this registry, up or "
	  "lost (its lease expired), with addresses, dashboard and MCP URLs, capacity, usage, "
	  "health and last_seen.",
	  NONE_IN, OBJ_OUT("\"hosts\":" ARR, "\"hosts\""), "host.list", "hosts", true, false },
	{ "find_service", "Find where a service runs",
	  "The hosts whose caelumd runs service NAME (etcd backend), with its ports and health "
	  "there and whether the host is up or lost.",
	  NAME_IN, OBJ_OUT("\"hosts\":" ARR, "\"hosts\""), "service.where", "hosts", true, false },
	{ "ingest_events", "Ingest a peer's events",
	  "For Caelum peers: store events from HOST (at most 1,000 per call); re-sent events "
	  "(origin id already seen) are skipped.",
	  "{\"type\":\"object\",\"properties\":{"
	  "\"host\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":253},"
	  "\"events\":{\"type\":\"array\",\"maxItems\":1000,\"items\":{\"type\":\"object\"}}},"
	  "\"required\":[\"host\",\"events\"],\"additionalProperties\":false}",
	  OBJ_OUT("\"host\":" STR ",\"stored\":{\"type\":\"integer\"},"
		  "\"duplicates\":{\"type\":\"integer\"}",
		  "\"host\",\"stored\",\"duplicates\""),
	  "events.ingest", NULL, false, false },
};
#define N_TOOLS (sizeof(tools) / sizeof(tools[0]))

struct mcp_tools {
	const struct handler_ctx *hx;
	struct json_object *in_schema[N_TOOLS], *out_schema[N_TOOLS];
	uint64_t calls, errors;
};

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) &&
			       json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

struct json_object *mcp_tools_list(const struct mcp_tools *m)
{
	struct json_object *arr = json_object_new_array(), *res = json_object_new_object();

	for (size_t i = 0; i < N_TOOLS; i++) {
		struct json_object *t = json_object_new_object(), *ann = json_object_new_object();

		json_object_object_add(t, "name", json_object_new_string(tools[i].name));
		json_object_object_add(t, "title", json_object_new_string(tools[i].title));
		json_object_object_add(t, "description",
				       json_object_new_string(tools[i].description));
		json_object_object_add(t, "inputSchema", json_object_get(m->in_schema[i]));
		json_object_object_add(t, "outputSchema", json_object_get(m->out_schema[i]));
		json_object_object_add(ann, "readOnlyHint",
				       json_object_new_boolean(tools[i].read_only));
		json_object_object_add(ann, "destructiveHint",
				       json_object_new_boolean(tools[i].destructive));
		json_object_object_add(ann, "openWorldHint", json_object_new_boolean(false));
		json_object_object_add(t, "annotations", ann);
		json_object_array_add(arr, t);
	}
	json_object_object_add(res, "tools", arr);
	return res;
}

static struct json_object *tool_result(struct json_object *structured, const char *text,
				       bool is_error)
{
	struct json_object *res = json_object_new_object(), *content = json_object_new_array();
	struct json_object *t = json_object_new_object();

	json_object_object_add(t, "type", json_object_new_string("text"));
	json_object_object_add(
		t, "text",
		json_object_new_string(
			text ? text
			     : json_object_to_json_string_ext(
				       structured,
				       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)));
	json_object_array_add(content, t);
	json_object_object_add(res, "content", content);
	if (structured)
		json_object_object_add(res, "structuredContent", structured);
	json_object_object_add(res, "isError", json_object_new_boolean(is_error));
	return res;
}

static struct json_object *tool_error(struct mcp_tools *m, const char *msg,
				      struct json_object *errors)
{
	char buf[2048];
	size_t off;

	m->errors++;
	off = (size_t)snprintf(buf, sizeof(buf), "%s", msg);
	for (size_t i = 0; errors && i < json_object_array_length(errors) && off < sizeof(buf);
	     i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(errors, i));

		if (i == 0 && !strcmp(e, msg))
			continue;
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\n%s", e);
	}
	return tool_result(NULL, buf, true);
}

int mcp_tools_finish(struct mcp_tools *m, size_t i, int rc, struct json_object *res,
		     struct herr *err, struct json_object **out, char *msg, size_t msg_len)
{
	char why[512];

	*out = NULL;
	if (rc) {
		*out = tool_error(m, err->message, err->errors);
		json_object_put(err->errors);
		err->errors = NULL;
		return 0;
	}
	if (tools[i].wrap) {
		struct json_object *w = json_object_new_object();

		json_object_object_add(w, tools[i].wrap, res);
		res = w;
	}
	if (!schema_check(m->out_schema[i], res, "", why, sizeof(why))) {
		p_warn("mcp: %s: result does not match its outputSchema: %s", tools[i].name, why);
		json_object_put(res);
		snprintf(msg, msg_len, "internal error: result does not match outputSchema");
		return -32603;
	}
	*out = tool_result(res, NULL, false);
	return 0;
}

int mcp_tools_begin(struct mcp_tools *m, struct json_object *params, struct json_object **out,
		    char *msg, size_t msg_len, const struct hreply *reply, struct hcall **pending,
		    size_t *tool)
{
	struct caller who = { .uid = (uid_t)-1, .transport = "mcp" };
	const char *name = str_of(params, "name");
	struct json_object *args = NULL, *res = NULL;
	struct herr err;
	size_t i;
	int rc;

	*out = NULL;
	if (!name) {
		snprintf(msg, msg_len, "tools/call: params.name must be a string");
		return -32602;
	}
	for (i = 0; i < N_TOOLS && strcmp(tools[i].name, name); i++)
		;
	if (i == N_TOOLS) {
		snprintf(msg, msg_len, "Unknown tool: %.64s", name);
		return -32602;
	}
	m->calls++;
	json_object_object_get_ex(params, "arguments", &args);
	if (!args) {
		args = json_object_new_object();
	} else {
		json_object_get(args);
	}
	/* The handler validates the arguments, as it does the API's and the control socket's:
	 * a refusal reads the same on every transport ("params: port: 70000 out of range
	 * 1-65535"), and is the tool's (isError, so that the caller can correct itself; MCP
	 * 2025-11-25 "Error Handling"). inputSchema describes, the handler decides: every
	 * argument its schema refuses, the handler refuses too (test_mcp.c). */
	rc = handlers_call_async(m->hx, tools[i].method, args, &who, &res, &err, NULL, reply,
				 pending);
	json_object_put(args);
	*tool = i;
	if (rc == HANDLERS_PENDING)
		return MCP_TOOLS_PENDING;
	return mcp_tools_finish(m, i, rc, res, &err, out, msg, msg_len);
}

int mcp_tools_call(struct mcp_tools *m, struct json_object *params, struct json_object **out,
		   char *msg, size_t msg_len)
{
	size_t tool;

	return mcp_tools_begin(m, params, out, msg, msg_len, NULL, NULL, &tool);
}

void mcp_tools_counts(const struct mcp_tools *t, uint64_t *calls, uint64_t *errors)
{
	*calls = t->calls;
	*errors = t->errors;
}

int mcp_tools_open(struct mcp_tools **out, const struct handler_ctx *hx)
{
	struct mcp_tools *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->hx = hx;
	for (size_t i = 0; i < N_TOOLS; i++) {
		m->in_schema[i] = json_tokener_parse(tools[i].input);
		m->out_schema[i] = json_tokener_parse(tools[i].output);
		if (!m->in_schema[i] || !m->out_schema[i]) {
			p_err("mcp: the schema of tool %s does not parse", tools[i].name);
			mcp_tools_close(m);
			return -EINVAL;
		}
	}
	*out = m;
	return 0;
}

void mcp_tools_close(struct mcp_tools *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < N_TOOLS; i++) {
		json_object_put(m->in_schema[i]);
		json_object_put(m->out_schema[i]);
	}
	free(m);
}
