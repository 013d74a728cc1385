// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The MCP tools' input checking (user/transport/schema.c) and peer URLs (peer_url_parse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "schema.h"

static const char reserve[] =
	"{\"type\":\"object\",\"properties\":{"
	"\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535},"
	"\"proto\":{\"type\":\"string\",\"enum\":[\"tcp\",\"udp\"]},"
	"\"service\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8},"
	"\"events\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"object\"}}},"
	"\"required\":[\"port\",\"service\"],\"additionalProperties\":false}";

static void test_schema(void **state)
{
	static const struct {
		const char *value, *why; /* why NULL: valid */
	} cases[] = {
		{ "{\"port\":8100,\"service\":\"web\"}", NULL },
		{ "{\"port\":1,\"proto\":\"udp\",\"service\":\"a\",\"events\":[{},{}]}", NULL },
		{ "{\"service\":\"web\"}", "port: missing required property" },
		{ "{\"port\":8100}", "service: missing required property" },
		{ "{\"port\":\"8100\",\"service\":\"web\"}",
		  "port: expected integer, got string \"8100\"" },
		{ "{\"port\":8100.5,\"service\":\"web\"}",
		  "port: expected integer, got number 8100.5" },
		{ "{\"port\":0,\"service\":\"web\"}", "port: 0 is below the minimum 1" },
		{ "{\"port\":65536,\"service\":\"web\"}",
		  "port: 65536 is above the maximum 65535" },
		{ "{\"port\":80,\"service\":\"web\",\"proto\":\"sctp\"}",
		  "proto: \"sctp\" is not one of [\"tcp\",\"udp\"]" },
		{ "{\"port\":80,\"service\":\"\"}", "service: shorter than 1 characters" },
		{ "{\"port\":80,\"service\":\"waytoolong\"}", "service: longer than 8 characters" },
		{ "{\"port\":80,\"service\":\"web\",\"x\":1}", "x: unknown property" },
		{ "{\"port\":80,\"service\":\"web\",\"events\":[{},{},{}]}",
		  "events: 3 items, at most 2" },
		{ "{\"port\":80,\"service\":\"web\",\"events\":[{},1]}",
		  "events[1]: expected object, got integer 1" },
		{ "[]", "(arguments): expected object, got array [...]" },
	};
	struct json_object *schema = json_tokener_parse(reserve);
	char why[256];

	(void)state;
	assert_non_null(schema);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *v = json_tokener_parse(cases[i].value);
		bool ok;

		assert_non_null(v);
		why[0] = '\0';
		ok = schema_check(schema, v, "", why, sizeof(why));
		if (ok != !cases[i].why)
			fail_msg("%s: %s (%s)", cases[i].value, ok ? "accepted" : "refused", why);
		if (cases[i].why)
			assert_string_equal(why, cases[i].why);
		json_object_put(v);
	}
	json_object_put(schema);
}

static void test_peer_url(void **state)
{
	static const struct {
		const char *url, *host, *path;
		uint16_t port;
		bool tls, ws;
	} good[] = {
		{ "ws://host-b:8080/mcp", "host-b", "/mcp", 8080, false, true },
		{ "wss://host-b/mcp", "host-b", "/mcp", 443, true, true },
		{ "http://10.0.0.2:8080/mcp", "10.0.0.2", "/mcp", 8080, false, false },
		{ "https://b.example.com", "b.example.com", "/", 443, true, false },
		{ "ws://[::1]:9000/x/y", "::1", "/x/y", 9000, false, true },
	};
	static const char *const bad[] = {
		"ftp://h/x",   "ws:/h/x",     "ws://:80/x", "ws://h:0/x", "ws://h:70000/x",
		"ws://h:8a/x", "ws://[::1/x", "ws://h h/x", "h:80",	  "ws://h/x y",
	};
	struct peer_url u;
	char why[128];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (peer_url_parse(good[i].url, &u, why, sizeof(why)))
			fail_msg("%s: %s", good[i].url, why);
		assert_string_equal(u.host, good[i].host);
		assert_string_equal(u.path, good[i].path);
		assert_int_equal(u.port, good[i].port);
		assert_int_equal(u.tls, good[i].tls);
		assert_int_equal(u.ws, good[i].ws);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!peer_url_parse(bad[i], &u, why, sizeof(why)))
			fail_msg("%s accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_peer_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
