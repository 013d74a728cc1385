// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Connection admission (user/transport/connlimit.c): total, unauthenticated, per address. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "connlimit.h"

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };

	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

static int admit4(struct connlimit *cl, const char *ip, const void *key)
{
	struct sockaddr_in sa = v4(ip);
	int rc = connlimit_admit(cl, (struct sockaddr *)&sa, sizeof(sa));

	if (!rc)
		connlimit_bind(cl, key);
	return rc;
}

static void test_per_address_and_release(void **state)
{
	struct connlimit cl;
	static char keys[16];

	(void)state;
	assert_int_equal(connlimit_init(&cl, 16, 8, 3), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(admit4(&cl, "127.0.0.1", &keys[i]), 0);
	assert_int_equal(admit4(&cl, "127.0.0.1", &keys[3]), -(1 + CL_PER_ADDR));
	/* Another address is not affected; IPv4 and its v4-mapped IPv6 are one address. */
	assert_int_equal(admit4(&cl, "127.0.0.2", &keys[4]), 0);
	{
		struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };

		inet_pton(AF_INET6, "::ffff:127.0.0.1", &sa6.sin6_addr);
		assert_int_equal(connlimit_admit(&cl, (struct sockaddr *)&sa6, sizeof(sa6)),
				 -(1 + CL_PER_ADDR));
	}
	/* One goes away: room for one more. */
	connlimit_release(&cl, &keys[0]);
	assert_int_equal(admit4(&cl, "127.0.0.1", &keys[5]), 0);
	/* An authenticated connection no longer counts against the address. */
	connlimit_authenticated(&cl, &keys[1]);
	assert_int_equal(admit4(&cl, "127.0.0.1", &keys[6]), 0);
	assert_int_equal(cl.refused[CL_PER_ADDR], 2);
	/* Unknown keys are ignored; a release twice counts once. */
	connlimit_release(&cl, &keys[15]);
	connlimit_release(&cl, &keys[5]);
	connlimit_release(&cl, &keys[5]);
	assert_int_equal(cl.used, 4);
	connlimit_free(&cl);
}

static void test_unauth_and_total(void **state)
{
	struct connlimit cl;
	static char keys[16];
	char ip[32];

	(void)state;
	assert_int_equal(connlimit_init(&cl, 6, 4, 4), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(ip, sizeof(ip), "10.0.0.%d", i + 1);
		assert_int_equal(admit4(&cl, ip, &keys[i]), 0);
	}
	assert_int_equal(admit4(&cl, "10.0.0.9", &keys[4]), -(1 + CL_UNAUTH));
	connlimit_authenticated(&cl, &keys[0]);
	connlimit_authenticated(&cl, &keys[1]);
	assert_int_equal(admit4(&cl, "10.0.0.9", &keys[4]), 0);
	assert_int_equal(admit4(&cl, "10.0.0.9", &keys[5]), 0);
	/* Six held: the table is full whoever asks. */
	assert_int_equal(admit4(&cl, "10.0.0.10", &keys[6]), -(1 + CL_FULL));
	assert_int_equal(cl.refused[CL_FULL], 1);
	assert_int_equal(cl.refused[CL_UNAUTH], 1);
	connlimit_free(&cl);
}

static void test_pending_never_bound(void **state)
{
	struct connlimit cl;
	struct sockaddr_in sa = v4("127.0.0.1");

	(void)state;
	assert_int_equal(connlimit_init(&cl, 2, 2, 1), 0);
	/* Admitted, but the connection was never created: the next admission drops it. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(connlimit_admit(&cl, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(cl.used, 1);
	assert_string_equal(connlimit_reason_name(CL_PER_ADDR), "per_address");
	connlimit_free(&cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_address_and_release),
		cmocka_unit_test(test_unauth_and_total),
		cmocka_unit_test(test_pending_never_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
