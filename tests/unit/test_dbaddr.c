// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The database destination as compiled for the host: the LOCAL class predicate both the
 * programs and user space use (include/caelum/connect.h), the key user space writes
 * (connect_key without host addresses), static resolution of literals and "localhost"
 * (RFC 6761), address-set comparison, and the "resolve_interval_s" field.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "caelum/connect.h"
#include "connect_user.h"
#include "dbspec.h"

static void addr16(const char *s, __u8 out[16])
{
	struct in_addr a4;

	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, &a4) == 1) {
		out[10] = out[11] = 0xff;
		memcpy(&out[12], &a4, 4);
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, out), 1);
	}
}

static void test_always_local(void **state)
{
	static const struct {
		const char *addr;
		int local;
	} cases[] = {
		{ "127.0.0.1", 1 },
		{ "127.0.0.2", 1 },
		{ "127.255.255.254", 1 },
		{ "0.0.0.0", 1 },
		{ "::1", 1 },
		{ "::", 1 },
		{ "::ffff:127.9.9.9", 1 },
		{ "::ffff:0.0.0.0", 1 },
		{ "128.0.0.1", 0 },
		{ "126.255.255.255", 0 },
		{ "10.0.0.5", 0 },
		{ "0.0.0.1", 0 },
		{ "::2", 0 },
		{ "::127.0.0.1", 0 },
		{ "fe80::1", 0 },
		{ "::fffe:127.0.0.1", 0 },
		{ "1::1", 0 },
		{ "fd00::2", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u8 a[16];

		addr16(cases[i].addr, a);
		if (caelum_addr_always_local(a) != cases[i].local)
			fail_msg("%s: expected %s", cases[i].addr,
				 cases[i].local ? "LOCAL" : "EXACT");
	}
}

static void db_addr_of(const char *ip, uint16_t port, struct db_addr *out)
{
	size_t n;

	assert_true(db_resolve_static(ip, port, out, 1, &n));
	assert_int_equal(n, 1);
}

static void test_key_normalised(void **state)
{
	struct caelum_db_addr_key k, local;
	struct db_addr a;

	(void)state;
	connect_local_key(5432, &local);
	assert_int_equal(local.scope, CAELUM_DB_SCOPE_LOCAL);
	for (const char *const *ip =
		     (const char *const[]){ "127.0.0.1", "127.3.2.1", "::1", "0.0.0.0",
					    "::", "::ffff:127.0.0.1", NULL };
	     *ip; ip++) {
		db_addr_of(*ip, 5432, &a);
		connect_key(NULL, &a, &k);
		if (memcmp(&k, &local, sizeof(k)))
			fail_msg("%s: not the LOCAL key of 5432", *ip);
	}
	db_addr_of("10.0.0.5", 5432, &a);
	connect_key(NULL, &a, &k);
	assert_int_equal(k.scope, CAELUM_DB_SCOPE_EXACT);
	assert_int_equal(k.port, 5432);
	assert_int_equal(k.addr[10], 0xff);
	assert_int_equal(k.addr[12], 10);
	assert_int_equal(k.addr[15], 5);
}

static void test_localhost_is_both_loopbacks(void **state)
{
	static const char *const names[] = { "localhost", "LOCALHOST", "localhost.", "db.localhost",
					     "a.b.localhost." };
	struct db_addr out[DB_MAX_ADDRS];
	char buf[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_true(db_resolve_static(names[i], 6379, out, DB_MAX_ADDRS, &n));
		assert_int_equal(n, 2);
		db_addr_fmt(&out[0], buf, sizeof(buf));
		assert_string_equal(buf, "127.0.0.1:6379");
		db_addr_fmt(&out[1], buf, sizeof(buf));
		assert_string_equal(buf, "[::1]:6379");
	}
	assert_false(db_resolve_static("notlocalhost", 1, out, DB_MAX_ADDRS, &n));
	assert_false(db_resolve_static("localhost.example", 1, out, DB_MAX_ADDRS, &n));
	assert_false(db_resolve_static("db.internal", 1, out, DB_MAX_ADDRS, &n));
}

static void test_addrs_same_is_a_set_compare(void **state)
{
	struct db_addr a[2], b[2], c[1];

	(void)state;
	db_addr_of("10.0.0.5", 1, &a[0]);
	db_addr_of("fd00::5", 1, &a[1]);
	b[0] = a[1];
	b[1] = a[0];
	db_addr_of("10.0.0.6", 1, &c[0]);
	assert_true(db_addrs_same(a, 2, b, 2));
	assert_false(db_addrs_same(a, 2, c, 1));
	assert_false(db_addrs_same(a, 1, c, 1));
	db_addr_of("10.0.0.5", 2, &c[0]);
	assert_false(db_addrs_same(a, 1, c, 1)); /* the port is part of it */
}

static int parse(const char *json, struct db_spec *d, struct verr *e)
{
	struct json_object *o = json_tokener_parse(json);
	int err;

	assert_non_null(o);
	err = dbspec_from_json(o, "db.json", d, e);
	json_object_put(o);
	return err;
}

static void test_resolve_interval_field(void **state)
{
	static const char *const bad[] = { "0", "86401", "-1", "\"10\"", "1.5" };
	struct db_spec d;
	struct verr e = {};
	char json[256];

	(void)state;
	assert_int_equal(parse("{\"name\":\"pg\",\"kind\":\"tcp\",\"address\":\"db:1\"}", &d, &e),
			 0);
	assert_int_equal(d.resolve_interval_s, 10);
	assert_int_equal(parse("{\"name\":\"pg\",\"kind\":\"tcp\",\"address\":\"db:1\","
			       "\"resolve_interval_s\":2}",
			       &d, &e),
			 0);
	assert_int_equal(d.resolve_interval_s, 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct verr e2 = {};

		snprintf(json, sizeof(json),
			 "{\"name\":\"pg\",\"kind\":\"tcp\",\"address\":\"db:1\",\"resolve_"
			 "interval_s\":%s}",
			 bad[i]);
		assert_int_equal(parse(json, &d, &e2), -EINVAL);
		assert_int_equal(e2.n, 1);
		if (!strstr(e2.msgs[0], "resolve_interval_s"))
			fail_msg("%s: message does not name the field: %s", bad[i], e2.msgs[0]);
		verr_free(&e2);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_always_local),
		cmocka_unit_test(test_key_normalised),
		cmocka_unit_test(test_localhost_is_both_loopbacks),
		cmocka_unit_test(test_addrs_same_is_a_set_compare),
		cmocka_unit_test(test_resolve_interval_field),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
