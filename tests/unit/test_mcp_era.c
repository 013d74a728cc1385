// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* How a message's MCP era is told, and what the 2026-07-28 edge refuses (user/transport/mcp_era.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mcp_era.h"

#define ENV(v) "\"_meta\":{\"" MCP_KEY_VERSION "\":\"" v "\",\"" MCP_KEY_CAPS "\":{}}"

static const struct mcp_edge http_ok = { MCP_MODERN_VERSION, "tools/call", "list_ports" };

static void test_classify(void **state)
{
	static const struct {
		const char *msg;
		const struct mcp_edge *edge;
		int era, code;	     /* code 0: accepted */
		const char *message; /* the start of the error message */
	} cases[] = {
		/* legacy: no claim, no modern header */
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", NULL, MCP_ERA_LEGACY,
		  0, NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", NULL,
		  MCP_ERA_LEGACY, 0, NULL },
		/* modern: the envelope decides, on any transport */
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" ENV(
			  "2026-07-28") "}}",
		  NULL, MCP_ERA_MODERN, 0, NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		  "\"list_ports\"," ENV("2026-07-28") "}}",
		  &http_ok, MCP_ERA_MODERN, 0, NULL },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" ENV(
			  "2099-01-01") "}}",
		  NULL, MCP_ERA_MODERN, MCP_ERR_UNSUPPORTED_VERSION,
		  "Unsupported protocol version: 2099-01-01" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
		  "list\",\"params\":{\"_meta\":{\"" MCP_KEY_VERSION "\":\"2026-07-28\"}}}",
		  NULL, MCP_ERA_MODERN, -32602,
		  "Invalid _meta envelope for protocol revision 2026-07-28: "
		  "io.modelcontextprotocol/clientCapabilities: missing" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
		  "list\",\"params\":{\"_meta\":{\"" MCP_KEY_VERSION "\":7,\"" MCP_KEY_CAPS
		  "\":{}}}}",
		  NULL, MCP_ERA_MODERN, -32602,
		  "Invalid _meta envelope for protocol revision 2026-07-28: "
		  "io.modelcontextprotocol/protocolVersion: expected a protocol version string" },
		/* HTTP: the headers must agree with the body */
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		  "\"get_status\"," ENV("2026-07-28") "}}",
		  &http_ok, MCP_ERA_MODERN, MCP_ERR_HEADER_MISMATCH,
		  "Bad Request: header mismatch: Mcp-Name names \"list_ports\" but the body" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}",
		  &http_ok, MCP_ERA_MODERN, -32602,
		  "Invalid params: MCP-Protocol-Version names protocol revision 2026-07-28" },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}",
		  &http_ok, MCP_ERA_LEGACY, MCP_ERR_HEADER_MISMATCH,
		  "Bad Request: header mismatch: an initialize request" },
		/* a notification is never refused for its version */
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{" ENV(
			  "2099-01-01") "}}",
		  NULL, MCP_ERA_MODERN, 0, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *msg = json_tokener_parse(cases[i].msg), *err = NULL, *e, *v;
		enum mcp_era era;
		int status = 0, rc;

		assert_non_null(msg);
		rc = mcp_era_classify(msg, cases[i].edge, &era, &err, &status);
		if (!cases[i].code) {
			if (rc)
				fail_msg("case %zu refused: %s", i,
					 json_object_to_json_string(err));
			assert_int_equal(era, cases[i].era);
		} else {
			if (!rc)
				fail_msg("case %zu accepted", i);
			assert_int_equal(status, 400);
			assert_true(json_object_object_get_ex(err, "error", &e));
			assert_true(json_object_object_get_ex(e, "code", &v));
			assert_int_equal(json_object_get_int(v), cases[i].code);
			assert_true(json_object_object_get_ex(e, "message", &v));
			if (strncmp(json_object_get_string(v), cases[i].message,
				    strlen(cases[i].message)))
				fail_msg("case %zu: %s", i, json_object_get_string(v));
		}
		json_object_put(err);
		json_object_put(msg);
	}
}

static void test_unsupported_data(void **state)
{
	struct json_object *msg = json_tokener_parse(
		"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"server/discover\",\"params\":{" ENV(
			"2027-01-01") "}}");
	struct json_object *err = NULL, *e, *data;
	enum mcp_era era;
	int status;

	(void)state;
	assert_int_equal(mcp_era_classify(msg, NULL, &era, &err, &status), -1);
	assert_true(json_object_object_get_ex(err, "error", &e));
	assert_true(json_object_object_get_ex(e, "data", &data));
	assert_string_equal(json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN),
			    "{\"supported\":[\"2026-07-28\"],\"requested\":\"2027-01-01\"}");
	assert_string_equal(json_object_get_string(json_object_object_get(err, "id")), "x");
	json_object_put(err);
	json_object_put(msg);
}

static void test_headers_whitespace_and_base64(void **state)
{
	static const char body[] =
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\","
		"\"params\":{\"uri\":\"caelum://status\"," ENV("2026-07-28") "}}";
	const struct mcp_edge ows = { " 2026-07-28\t", "resources/read ", " caelum://status " };
	const struct mcp_edge b64 = { "2026-07-28", "resources/read",
				      "=?base64?Y2FlbHVtOi8vc3RhdHVz?=" };
	const struct mcp_edge bad = { "2026-07-28", "resources/read", "=?base64?Y2FlbHVt?=" };
	struct json_object *msg = json_tokener_parse(body), *err = NULL;
	enum mcp_era era;
	int status;

	(void)state;
	assert_int_equal(mcp_era_classify(msg, &ows, &era, &err, &status), 0);
	assert_int_equal(mcp_era_classify(msg, &b64, &era, &err, &status), 0);
	assert_int_equal(mcp_era_classify(msg, &bad, &era, &err, &status), -1);
	json_object_put(err);
	json_object_put(msg);
}

static void test_result_shape(void **state)
{
	struct json_object *res = json_object_new_object(), *v;

	(void)state;
	mcp_era_result(res, "tools/list");
	assert_string_equal(json_object_get_string(json_object_object_get(res, "resultType")),
			    "complete");
	assert_int_equal(json_object_get_int(json_object_object_get(res, "ttlMs")), 60000);
	assert_true(json_object_object_get_ex(res, "_meta", &v));
	assert_true(json_object_object_get_ex(v, MCP_KEY_SERVER, &v));
	json_object_put(res);
	res = json_object_new_object();
	mcp_era_result(res, "tools/call");
	assert_false(json_object_object_get_ex(res, "ttlMs", NULL));
	json_object_put(res);
	assert_int_equal(mcp_era_error_code(-32002), -32602);
	assert_true(mcp_era_is_modern("2026-07-28"));
	assert_true(mcp_era_is_modern("2027-03-01"));
	assert_false(mcp_era_is_modern("2025-11-25"));
	assert_false(mcp_era_is_modern("2026-07-28x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_unsupported_data),
		cmocka_unit_test(test_headers_whitespace_and_base64),
		cmocka_unit_test(test_result_shape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
