// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ip_local_reserved_ports (user/model/reserved_ports.c): the sysctl's list format both ways, and
 * the merge that keeps the admin's entries the admin's.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "reserved_ports.h"

static struct portset a, b, c, w, o;

static void set_of(const char *text, struct portset *s)
{
	assert_int_equal(portset_parse(text, s), 0);
}

static const char *fmt(const struct portset *s)
{
	static char buf[256];

	assert_true(portset_format(s, buf, sizeof(buf)) >= 0);
	return buf;
}

static void test_parse_format(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "", "" },
		{ "\n", "" },
		{ "8080\n", "8080" },
		{ "40010,40005", "40005,40010" },
		{ "1-3,5", "1-3,5" },
		{ "1,2,3,7-9,10\n", "1-3,7-10" },
		{ "0,65535", "0,65535" },
		{ "40000-40002, 40001", "40000-40002" },
	};
	static const char *const bad[] = { "x", "1-", "5-3", "65536", "1,,2", "-1", "1 2", "1;2" };

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		set_of(ok[i].in, &a);
		assert_string_equal(fmt(&a), ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (portset_parse(bad[i], &a) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
}

static void test_format_too_small(void **state)
{
	char buf[8];

	(void)state;
	set_of("40005", &a);
	assert_int_equal(portset_format(&a, buf, 5), -ENOSPC);
	assert_int_equal(portset_format(&a, buf, 6), 5);
}

static void test_merge(void **state)
{
	(void)state;
	/* First apply: everything in the sysctl is the admin's. */
	set_of("40010", &a);
	memset(&b, 0, sizeof(b));
	set_of("40005,45000", &c);
	reserved_ports_merge(&a, &b, &c, &w, &o);
	assert_string_equal(fmt(&w), "40005,40010,45000");
	assert_string_equal(fmt(&o), "40005,45000");
	/* 45000 released, the admin added 50000: ours shrink, theirs stay. */
	set_of("40005,40010,45000,50000", &a);
	b = o;
	set_of("40005", &c);
	reserved_ports_merge(&a, &b, &c, &w, &o);
	assert_string_equal(fmt(&w), "40005,40010,50000");
	assert_string_equal(fmt(&o), "40005");
	/* A reservation of a port the admin listed: never ours, so never removed by us. */
	set_of("40005,40010,50000", &a);
	b = o;
	set_of("40005,40010", &c);
	reserved_ports_merge(&a, &b, &c, &w, &o);
	assert_string_equal(fmt(&w), "40005,40010,50000");
	assert_string_equal(fmt(&o), "40005");
	/* Teardown: want nothing, the admin's list is what is left. */
	a = w;
	b = o;
	memset(&c, 0, sizeof(c));
	reserved_ports_merge(&a, &b, &c, &w, &o);
	assert_string_equal(fmt(&w), "40010,50000");
	assert_string_equal(fmt(&o), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_format_too_small),
		cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
