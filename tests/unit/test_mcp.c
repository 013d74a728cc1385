// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The MCP dispatcher (user/transport/mcp.c, mcp_tools.c) as JSON in, JSON out, on both eras: the
 * legacy one (initialize, then requests in a session) and 2026-07-28 (every request carries
 * its envelope, no initialize). Tools call the real handlers over a file-backend registry
 * (hxfix.h); a session's server messages are collected by its send function.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "hxfix.h"
#include "mcp.h"

#define ENV "\"_meta\":{\"" MCP_KEY_VERSION "\":\"2026-07-28\",\"" MCP_KEY_CAPS "\":{}}"

struct fx {
	struct hxfix *f;
	struct mcp *m;
	struct mcp_session *s;
	size_t sent; /* server messages the session's sender got */
	char last_method[64];
};

static bool sink(void *ctx, struct json_object *msg)
{
	struct fx *x = ctx;
	struct json_object *m;

	x->sent++;
	snprintf(x->last_method, sizeof(x->last_method), "%s",
		 json_object_object_get_ex(msg, "method", &m) ? json_object_get_string(m) : "");
	return true;
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->f = hxfix_new();
	assert_int_equal(mcp_open(&x->m, &x->f->hx, x->f->ev), 0);
	x->s = mcp_session_new(x->m, "stdio", sink, x);
	assert_non_null(x->s);
	json_object_put(hxfix_ok(x->f, "service.apply",
				 "{\"spec\":{\"name\":\"web\",\"ports\":[\"47010/tcp\"]}}"));
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	int err;

	mcp_close(x->m);
	err = hxfix_free(x->f);
	free(x);
	return err;
}

/* One message in (JSON text); the response out (new reference, NULL for none). */
static struct json_object *rpc(struct fx *x, const char *in)
{
	struct json_object *msg = json_tokener_parse(in), *r;

	if (!msg)
		fail_msg("not JSON: %s", in);
	r = mcp_handle(x->m, x->s, msg);
	json_object_put(msg);
	return r;
}

static struct json_object *result_of(struct json_object *r)
{
	struct json_object *res;

	if (!r || !json_object_object_get_ex(r, "result", &res))
		fail_msg("no result in %s", r ? json_object_to_json_string(r) : "(nothing)");
	return res;
}

static int error_code(struct json_object *r)
{
	struct json_object *e, *c;

	if (!r || !json_object_object_get_ex(r, "error", &e) ||
	    !json_object_object_get_ex(e, "code", &c))
		fail_msg("no error in %s", r ? json_object_to_json_string(r) : "(nothing)");
	return json_object_get_int(c);
}

static struct json_object *tool(struct json_object *tools, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(tools); i++) {
		struct json_object *t = json_object_array_get_idx(tools, i);

		if (!strcmp(hxfix_str(t, "name"), name))
			return t;
	}
	fail_msg("no tool %s", name);
	return NULL;
}

static void test_legacy(void **state)
{
	struct fx *x = *state;
	struct json_object *r, *res, *v, *sc;

	/* Before initialize only initialize and ping. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	assert_int_equal(error_code(r), -32600);
	json_object_put(r);
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
		   "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
		   "\"clientInfo\":{\"name\":\"unit\",\"version\":\"1\"}}}");
	res = result_of(r);
	assert_int_equal(json_object_get_int(json_object_object_get(r, "id")), 2);
	assert_string_equal(hxfix_str(res, "protocolVersion"), "2025-06-18");
	v = json_object_object_get(res, "serverInfo");
	assert_string_equal(hxfix_str(v, "name"), "caelumd");
	v = json_object_object_get(res, "capabilities");
	assert_true(json_object_object_get_ex(v, "logging", NULL));
	assert_true(json_object_object_get_ex(v, "tools", NULL));
	json_object_put(r);
	/* An unknown version is answered with the latest. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{"
		   "\"protocolVersion\":\"1999-01-01\",\"capabilities\":{}}}");
	assert_string_equal(hxfix_str(result_of(r), "protocolVersion"), MCP_LATEST_VERSION);
	json_object_put(r);

	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}");
	res = result_of(r);
	assert_false(json_object_object_get_ex(res, "resultType", NULL)); /* a 2026 field */
	v = tool(json_object_object_get(res, "tools"), "reserve_port");
	assert_true(json_object_object_get_ex(v, "inputSchema", NULL));
	assert_true(json_object_object_get_ex(v, "outputSchema", NULL));
	json_object_put(r);

	/* tools/call reaches the handler: the reservation is in the registry. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
		   "\"name\":\"reserve_port\","
		   "\"arguments\":{\"port\":47040,\"service\":\"web\"}}}");
	res = result_of(r);
	assert_false(json_object_get_boolean(json_object_object_get(res, "isError")));
	sc = json_object_object_get(res, "structuredContent");
	assert_int_equal(hxfix_int(sc, "port"), 47040);
	assert_string_equal(registry_owner(x->f->reg, 47040, IPPROTO_TCP, NULL), "web");
	json_object_put(r);

	/* Input that breaks the schema, and a handler's refusal, are results with isError. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{"
		   "\"name\":\"reserve_port\",\"arguments\":{\"port\":0,\"service\":\"web\"}}}");
	res = result_of(r);
	assert_true(json_object_get_boolean(json_object_object_get(res, "isError")));
	v = json_object_array_get_idx(json_object_object_get(res, "content"), 0);
	assert_string_equal(hxfix_str(v, "text"), "params: port: 0 out of range 1-65535");
	json_object_put(r);
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{"
		   "\"name\":\"release_port\",\"arguments\":{\"port\":47999}}}");
	res = result_of(r);
	assert_true(json_object_get_boolean(json_object_object_get(res, "isError")));
	json_object_put(r);
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{"
		   "\"name\":\"steal_port\"}}");
	assert_int_equal(error_code(r), -32602);
	json_object_put(r);
	/* A notification has no response. */
	assert_null(rpc(x, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
}

/* A tool's refusal is the handler's, word for word: what caelumctl and the API say for the
 * same call (they print err.message). Among the arguments, some that break the tool's
 * inputSchema: the handler refuses each of them as well (so that inputSchema is never the
 * only guard). */
static void test_tool_errors_are_the_handlers(void **state)
{
	static const struct {
		const char *tool, *method, *args;
	} cases[] = {
		{ "reserve_port", "port.reserve", "{\"port\":70000,\"service\":\"web\"}" },
		{ "reserve_port", "port.reserve", "{\"port\":0,\"service\":\"web\"}" },
		{ "reserve_port", "port.reserve", "{\"port\":\"80\",\"service\":\"web\"}" },
		{ "reserve_port", "port.reserve", "{\"service\":\"web\"}" },
		{ "reserve_port", "port.reserve", "{\"port\":47011}" },
		{ "reserve_port", "port.reserve",
		  "{\"port\":47011,\"proto\":\"sctp\",\"service\":\"web\"}" },
		{ "reserve_port", "port.reserve", "{\"port\":47011,\"service\":\"web\",\"x\":1}" },
		{ "reserve_port", "port.reserve", "{\"port\":47011,\"service\":\"\"}" },
		{ "reserve_port", "port.reserve", "{\"port\":47011,\"service\":\"ghost\"}" },
		{ "reserve_port", "port.reserve", "{\"port\":47010,\"service\":\"db\"}" },
		{ "reserve_port", "port.reserve",
		  "{\"port\":47011,\"service\":\"web\",\"host\":\"a_b\"}" },
		{ "release_port", "port.release", "{\"port\":47999}" },
		{ "release_port", "port.release", "{}" },
		{ "allocate_port", "port.alloc", "{\"service\":\"ghost\"}" },
		{ "allocate_port", "port.alloc", "{\"service\":\"web\",\"proto\":\"icmp\"}" },
		{ "get_service", "service.show", "{\"name\":\"ghost\"}" },
		{ "get_service", "service.show", "{\"name\":\"\"}" },
		{ "get_service", "service.show", "{}" },
		{ "get_service", "service.show", "{\"name\":5}" },
		{ "list_services", "service.list", "{\"x\":1}" },
		{ "list_ports", "port.list", "{\"x\":1}" },
		{ "list_databases", "db.list", "{\"x\":1}" },
		{ "get_status", "status", "{\"x\":1}" },
		{ "get_resources", "resources", "{\"x\":1}" },
		{ "verify_enforcement", "verify", "{\"x\":1}" },
		{ "list_hosts", "host.list", "{}" },
		{ "find_service", "service.where", "{\"name\":\"web\"}" },
		{ "check_service", "run.check", "{\"name\":\"ghost\"}" },
		{ "resolve_database", "db.resolve", "{\"name\":\"nope\"}" },
		{ "recent_events", "events.list", "{\"limit\":0}" },
		{ "recent_events", "events.list", "{\"limit\":20000}" },
		{ "recent_events", "events.list", "{\"since\":-1}" },
		{ "recent_events", "events.list", "{\"type\":\"Bind\"}" },
		{ "recent_events", "events.list", "{\"service\":\"../x\"}" },
		{ "ingest_events", "events.ingest", "{\"host\":\"unit-host\",\"events\":[]}" },
		{ "ingest_events", "events.ingest", "{\"host\":\"peer\"}" },
		{ "ingest_events", "events.ingest", "{\"host\":\"peer\",\"events\":[5]}" },
	};
	struct fx *x = *state;
	struct json_object *r;
	char in[1024];

	json_object_put(hxfix_ok(x->f, "service.apply", "{\"spec\":{\"name\":\"db\"}}"));
	json_object_put(rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
			       "\"params\":{\"protocolVersion\":\"2025-11-25\","
			       "\"capabilities\":{}}}"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *res, *text, *hres = NULL;
		struct herr err;
		const char *t;
		size_t n;

		if (hxfix_call(x->f, cases[i].method, cases[i].args, "socket", &hres, &err) != -1)
			fail_msg("%s %s: the handler took it", cases[i].method, cases[i].args);
		json_object_put(err.errors);
		snprintf(in, sizeof(in),
			 "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"tools/call\",\"params\":{"
			 "\"name\":\"%s\",\"arguments\":%s}}",
			 i + 10, cases[i].tool, cases[i].args);
		r = rpc(x, in);
		res = result_of(r);
		assert_true(json_object_get_boolean(json_object_object_get(res, "isError")));
		text = json_object_object_get(
			json_object_array_get_idx(json_object_object_get(res, "content"), 0),
			"text");
		t = json_object_get_string(text);
		n = strcspn(t, "\n"); /* further lines: the rest of err.errors */
		if (strlen(err.message) != n || strncmp(t, err.message, n))
			fail_msg("%s %s: MCP says \"%s\", the handler \"%s\"", cases[i].tool,
				 cases[i].args, t, err.message);
		json_object_put(r);
	}
	/* A resource the handler cannot give: its words in the protocol error. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"resources/read\","
		   "\"params\":{\"uri\":\"caelum://status\"}}");
	assert_int_equal(error_code(r), -32603);
	assert_string_equal(json_object_get_string(json_object_object_get(
				    json_object_object_get(r, "error"), "message")),
			    "status is not available here");
	json_object_put(r);
}

static void test_legacy_subscription(void **state)
{
	struct fx *x = *state;

	json_object_put(rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
			       "\"params\":{\"protocolVersion\":\"2025-11-25\","
			       "\"capabilities\":{}}}"));
	json_object_put(rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/subscribe\","
			       "\"params\":{\"uri\":\"caelum://registry/ports\"}}"));
	x->sent = 0;
	json_object_put(hxfix_ok(x->f, "port.reserve", "{\"port\":47041,\"service\":\"web\"}"));
	assert_int_equal(x->sent, 1);
	assert_string_equal(x->last_method, "notifications/resources/updated");
}

static void test_modern(void **state)
{
	struct fx *x = *state;
	struct json_object *r, *res, *v;

	/* No initialize: the envelope says the era. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" ENV
		   "}}");
	res = result_of(r);
	v = json_object_object_get(res, "supportedVersions");
	assert_string_equal(json_object_get_string(
				    json_object_array_get_idx(v, json_object_array_length(v) - 1)),
			    MCP_MODERN_VERSION);
	assert_string_equal(hxfix_str(res, "resultType"), "complete");
	json_object_put(r);

	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{" ENV "}}");
	res = result_of(r);
	assert_string_equal(hxfix_str(res, "resultType"), "complete");
	assert_true(json_object_object_get_ex(res, "ttlMs", NULL));
	v = json_object_object_get(res, "_meta");
	assert_true(json_object_object_get_ex(v, MCP_KEY_SERVER, NULL));
	tool(json_object_object_get(res, "tools"), "list_ports");
	json_object_put(r);

	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{"
		   "\"name\":\"list_ports\",\"arguments\":{}," ENV "}}");
	res = result_of(r);
	assert_false(json_object_get_boolean(json_object_object_get(res, "isError")));
	v = json_object_object_get(json_object_object_get(res, "structuredContent"), "ports");
	assert_int_equal(json_object_array_length(v), 1);
	assert_int_equal(hxfix_int(json_object_array_get_idx(v, 0), "port"), 47010);
	assert_string_equal(hxfix_str(res, "resultType"), "complete");
	json_object_put(r);

	/* Legacy-only methods do not exist in this era; an unsupported version is refused. */
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":{"
		   "\"level\":\"info\"," ENV "}}");
	assert_int_equal(error_code(r), -32601);
	json_object_put(r);
	r = rpc(x, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
		   "\"" MCP_KEY_VERSION "\":\"2099-01-01\",\"" MCP_KEY_CAPS "\":{}}}}");
	assert_int_equal(error_code(r), MCP_ERR_UNSUPPORTED_VERSION);
	json_object_put(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_legacy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_errors_are_the_handlers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_subscription, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modern, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
