// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Who may do what over HTTP (user/transport/http_auth.c), the API token (user/transport/token.c)
 * and the listener syntax (listen_parse in user/model/config.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "http_auth.h"
#include "token.h"
#include "testutil.h"

#define TOK "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char origins[2][128] = { "https://dash.example.com", "http://10.0.0.5:9000" };

/* A loopback dashboard listener, GET /api/v1/status from 127.0.0.1, no headers. */
static struct http_access base(void)
{
	struct http_access a = {
		.listener_loopback = true,
		.method = "GET",
		.path = "/api/v1/status",
		.host = "127.0.0.1:8090",
		.peer_loopback = true,
		.token = TOK,
		.origins = origins,
		.n_origins = 2,
	};
	return a;
}

static int check(const struct http_access *a, bool *authenticated)
{
	struct http_verdict v;

	http_access_check(a, &v);
	if (authenticated)
		*authenticated = v.authenticated;
	if (v.status)
		assert_true(v.reason[0] != '\0');
	return v.status;
}

static void test_dashboard_reads(void **state)
{
	struct http_access a = base();
	bool au;

	(void)state;
	assert_int_equal(check(&a, &au), 0);
	assert_false(au);
	a.peer_loopback = false; /* a remote reader of the API needs the token */
	assert_int_equal(check(&a, NULL), 401);
	a.path = "/metrics";
	assert_int_equal(check(&a, NULL), 401);
	a.path = "/app.js"; /* the page's assets are public */
	assert_int_equal(check(&a, NULL), 0);
	a.path = "/api/v1/status";
	a.authorization = "Bearer " TOK;
	assert_int_equal(check(&a, &au), 0);
	assert_true(au);
}

static void test_mutations_need_token(void **state)
{
	static const char *const methods[] = { "POST", "DELETE", "PUT", "PATCH", "OPTIONS" };
	struct http_access a = base();

	(void)state;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		a.method = methods[i];
		a.authorization = NULL;
		assert_int_equal(check(&a, NULL), 401);
		a.authorization = "bearer " TOK; /* the scheme is case-insensitive */
		assert_int_equal(check(&a, NULL), 0);
	}
}

static void test_bad_tokens(void **state)
{
	static const char *const bad[] = {
		"Bearer " TOK "0",
		"Bearer " TOK " x",
		"Bearer 0123",
		"Bearer ",
		"Basic " TOK,
		"Bearer" TOK,
		"Token " TOK,
		"",
		"Bearer 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	};
	struct http_access a = base();

	(void)state;
	/* A wrong token is refused even where none is needed. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a.authorization = bad[i];
		assert_int_equal(check(&a, NULL), 401);
	}
}

static const char hosts[2][256];

static void test_host_and_origin(void **state)
{
	static const struct {
		const char *host, *origin;
		int status;
	} cases[] = {
		{ "127.0.0.1:8090", NULL, 0 },
		{ "localhost:8090", NULL, 0 },
		{ "LOCALHOST", NULL, 0 },
		{ "[::1]:8090", NULL, 0 },
		{ NULL, NULL, 403 },
		{ "evil.example.com", NULL, 403 }, /* DNS rebinding */
		{ "localhost.evil.com", NULL, 403 },
		{ "127.0.0.1:80x", NULL, 403 },
		{ "127.0.0.1:8090", "http://127.0.0.1:8090", 0 },
		{ "127.0.0.1:8090", "http://localhost:8090", 0 },
		{ "127.0.0.1:8090", "https://127.0.0.1:8090", 403 }, /* scheme differs */
		{ "127.0.0.1:8090", "http://evil.example.com", 403 },
		{ "127.0.0.1:8090", "http://127.0.0.1:8090/x", 403 },
		{ "127.0.0.1:8090", "null", 403 },
		{ "127.0.0.1:8090", "https://dash.example.com", 0 }, /* configured */
		{ "127.0.0.1:8090", "HTTP://10.0.0.5:9000", 0 },
	};
	struct http_access a = base();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a.host = cases[i].host;
		a.origin = cases[i].origin;
		if (check(&a, NULL) != cases[i].status)
			fail_msg("Host %s Origin %s: expected %d", cases[i].host ?: "(none)",
				 cases[i].origin ?: "(none)", cases[i].status);
	}
	/* On a public listener too the Host must name this server (DNS rebinding). */
	a.listener_loopback = false;
	a.local_addr = "10.1.2.3";
	a.hostname = "node-a";
	a.host = "node-a.example.com:8090";
	a.origin = NULL;
	assert_int_equal(check(&a, NULL), 403);
	a.hosts = hosts;
	a.n_hosts = 2;
	assert_int_equal(check(&a, NULL), 0);
	a.origin = "http://node-a.example.com:8090";
	assert_int_equal(check(&a, NULL), 0);
	a.origin = "http://localhost:8090";
	assert_int_equal(check(&a, NULL), 403);
}

static const char hosts[2][256] = { "node-a.example.com", "*.corp.example" };

/* The rebinding attack of issue 13: a public listener, a loopback peer, Host evil.example. */
static void test_host_public_listener(void **state)
{
	static const struct {
		const char *host;
		int status;
	} cases[] = {
		{ "evil.example:8090", 403 },
		{ "evil.example", 403 },
		{ "127.0.0.1:8090", 0 },
		{ "127.9.9.9", 0 },
		{ "localhost", 0 },
		{ "app.localhost:8090", 0 },
		{ "localhost.evil.com", 403 },
		{ "10.1.2.3:8090", 0 }, /* the address it was reached on */
		{ "10.1.2.4:8090", 403 },
		{ "node-a", 0 }, /* the machine's name */
		{ "NODE-A:8090", 0 },
		{ "node-ab", 403 },
		{ "node-a.example.com", 0 }, /* configured */
		{ "x.node-a.example.com", 403 },
		{ "db.corp.example:443", 0 },
		{ "a.b.corp.example", 0 },
		{ "corp.example", 403 },
		{ "xcorp.example", 403 },
		{ "evil.com.corp.example.evil.com", 403 },
		{ "10.1.2.3:", 403 },
		{ "10.1.2.3:123456", 403 },
		{ "10.1.2.3:80a", 403 },
		{ "[::1]:8090", 0 },
		{ "[::1", 403 },
		{ "[::1]x", 403 },
		{ "", 403 },
		{ NULL, 403 },
	};
	struct http_access a = base();

	(void)state;
	a.listener_loopback = false;
	a.local_addr = "10.1.2.3";
	a.hostname = "node-a";
	a.hosts = hosts;
	a.n_hosts = 2;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a.host = cases[i].host;
		if (check(&a, NULL) != cases[i].status)
			fail_msg("Host %s: expected %d", cases[i].host ?: "(none)",
				 cases[i].status);
	}
	/* Refused before anything else: with the token, for MCP, for the page. */
	a.host = "evil.example";
	a.authorization = "Bearer " TOK;
	assert_int_equal(check(&a, NULL), 403);
	a.mcp = true;
	a.path = "/mcp";
	assert_int_equal(check(&a, NULL), 403);
	a.mcp = false;
	a.authorization = NULL;
	a.path = "/";
	assert_int_equal(check(&a, NULL), 403);
	/* An IPv6 listener address is written in brackets. */
	a.local_addr = "fe80::1";
	a.host = "[FE80::1]:8090";
	assert_int_equal(check(&a, NULL), 0);
	a.host = "fe80::1";
	assert_int_equal(check(&a, NULL), 403);
}

static void test_host_name_check(void **state)
{
	static const char *const good[] = { "dash.example.com", "node-a",    "*.corp.example",
					    "10.0.0.5",		"[fe80::1]", "x1.y-2.z" };
	static const char *const bad[] = { "",
					   "http://dash.example.com",
					   "dash.example.com:8090",
					   "dash.example.com/",
					   "*.com",
					   "*",
					   "a..b",
					   "-a.b",
					   "a-.b",
					   "a.b.",
					   "[zz]",
					   "[::1",
					   "a b",
					   "*.*.example.com" };
	char why[128];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (host_name_check(good[i], why, sizeof(why)))
			fail_msg("\"%s\" refused: %s", good[i], why);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (!host_name_check(bad[i], why, sizeof(why)))
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(why[0] != '\0');
	}
}

static void test_mcp(void **state)
{
	struct http_access a = base();
	bool au;

	(void)state;
	a.mcp = true;
	a.path = "/mcp";
	assert_int_equal(check(&a, NULL), 401); /* reads too */
	a.authorization = "Bearer " TOK;
	assert_int_equal(check(&a, &au), 0);
	assert_true(au);
	a.authorization = NULL;
	a.mcp_auth_none = true;
	assert_int_equal(check(&a, &au), 0);
	assert_false(au);
	a.authorization = "Bearer nope"; /* still refused when presented wrong */
	assert_int_equal(check(&a, NULL), 401);
	a.authorization = NULL;
	a.origin = "http://evil.example.com";
	assert_int_equal(check(&a, NULL), 403);
}

static void test_token_file(void **state)
{
	char *dir = tmpdir_new("token"), path[512], t1[TOKEN_LEN + 1], t2[TOKEN_LEN + 1];
	struct stat st;
	const char *tok;
	size_t len;

	(void)state;
	assert_int_equal(token_load(dir, t1), 0);
	assert_int_equal(strlen(t1), TOKEN_LEN);
	assert_int_equal(strspn(t1, "0123456789abcdef"), TOKEN_LEN);
	snprintf(path, sizeof(path), "%s/%s", dir, TOKEN_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(token_load(dir, t2), 0); /* the same token again */
	assert_string_equal(t1, t2);
	assert_int_equal(token_rotate(dir, t2), 0);
	assert_string_not_equal(t1, t2);
	assert_int_equal(token_load(dir, t1), 0);
	assert_string_equal(t1, t2);
	/* A readable-by-others file is made private again. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(token_load(dir, t1), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Not a token: refused, not replaced. */
	write_text(dir, TOKEN_FILE, "short\n", path);
	assert_int_equal(token_load(dir, t1), -EINVAL);
	assert_true(token_equal(t2, TOKEN_LEN, t2));
	assert_false(token_equal(t2, TOKEN_LEN - 1, t2));
	assert_true(token_from_bearer("Bearer   abc", &tok, &len));
	assert_int_equal(len, 3);
	assert_false(token_from_bearer("Bearer abc def", &tok, &len));
	assert_int_equal(tmpdir_remove(dir), 0);
}

static void test_listen_parse(void **state)
{
	static const struct {
		const char *spec, *addr;
		uint16_t port;
		bool loopback, enabled;
	} good[] = {
		{ "127.0.0.1:8090", "127.0.0.1", 8090, true, true },
		{ "localhost:8080", "127.0.0.1", 8080, true, true },
		{ "127.1.2.3:0", "127.1.2.3", 0, true, true },
		{ "[::1]:8090", "::1", 8090, true, true },
		{ "0.0.0.0:8090", "0.0.0.0", 8090, false, true },
		{ "[::]:80", "::", 80, false, true },
		{ "10.1.2.3:65535", "10.1.2.3", 65535, false, true },
		{ "off", "", 0, false, false },
	};
	static const char *const bad[] = {
		"8090",
		":8090",
		"127.0.0.1",
		"127.0.0.1:",
		"127.0.0.1:65536",
		"127.0.0.1:-1",
		"127.0.0.1:80a",
		"example.com:80",
		"[::1:80",
		"[::1]80",
		"::1:80",
		"ON",
		"",
	};
	char why[128];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct listen_cfg l = {};

		if (listen_parse(good[i].spec, &l, why, sizeof(why)))
			fail_msg("%s: refused: %s", good[i].spec, why);
		assert_int_equal(l.enabled, good[i].enabled);
		if (!l.enabled)
			continue;
		assert_string_equal(l.addr, good[i].addr);
		assert_int_equal(l.port, good[i].port);
		assert_int_equal(l.loopback, good[i].loopback);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct listen_cfg l = {};

		why[0] = '\0';
		if (!listen_parse(bad[i], &l, why, sizeof(why)))
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(why[0] != '\0');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dashboard_reads),
		cmocka_unit_test(test_mutations_need_token),
		cmocka_unit_test(test_bad_tokens),
		cmocka_unit_test(test_host_and_origin),
		cmocka_unit_test(test_host_public_listener),
		cmocka_unit_test(test_host_name_check),
		cmocka_unit_test(test_mcp),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_listen_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
