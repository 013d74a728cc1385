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

/* Admit a connection from ip as key; idle or busy (a request with caelumd). *evict: the
 * connection that made room for it, if any. */
static int admit_as(struct connlimit *cl, const char *ip, const void *key, bool busy,
		    const void **evict)
{
	struct sockaddr_in sa = v4(ip);
	int rc = connlimit_admit(cl, (struct sockaddr *)&sa, sizeof(sa), evict);

	if (!rc) {
		connlimit_bind(cl, key);
		connlimit_busy(cl, key, busy);
	}
	return rc;
}

/* A busy one, where nothing may be evicted. */
static int admit4(struct connlimit *cl, const char *ip, const void *key)
{
	const void *evict;
	int rc = admit_as(cl, ip, key, true, &evict);

	assert_null(evict);
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

		const void *evict;

		inet_pton(AF_INET6, "::ffff:127.0.0.1", &sa6.sin6_addr);
		assert_int_equal(connlimit_admit(&cl, (struct sockaddr *)&sa6, sizeof(sa6), &evict),
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
	const void *evict;

	(void)state;
	assert_int_equal(connlimit_init(&cl, 2, 2, 1), 0);
	/* Admitted, but the connection was never created: the next admission drops it. */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(connlimit_admit(&cl, (struct sockaddr *)&sa, sizeof(sa), &evict),
				 0);
		assert_null(evict);
	}
	assert_int_equal(cl.used, 1);
	assert_string_equal(connlimit_reason_name(CL_PER_ADDR), "per_address");
	connlimit_free(&cl);
}

/* Idle unauthenticated connections (no byte sent, or between requests) give way to a
 * newcomer, the longest idle first, of its own address at the per-address limit; busy ones
 * never. Without this, idle connections that never send a byte lock token holders out. */
static void test_idle_gives_way(void **state)
{
	struct connlimit cl;
	static char keys[16];
	const void *evict;

	(void)state;
	assert_int_equal(connlimit_init(&cl, 8, 5, 3), 0);
	/* One address at its limit: its oldest idle one makes room, not its busy one. */
	assert_int_equal(admit_as(&cl, "127.0.0.1", &keys[0], true, &evict), 0);
	assert_int_equal(admit_as(&cl, "127.0.0.1", &keys[1], false, &evict), 0);
	assert_int_equal(admit_as(&cl, "127.0.0.1", &keys[2], false, &evict), 0);
	assert_int_equal(admit_as(&cl, "127.0.0.1", &keys[3], false, &evict), 0);
	assert_ptr_equal(evict, &keys[1]);
	assert_int_equal(cl.evicted[CL_PER_ADDR], 1);
	/* Idle again after a request: the newest idle, so keys[3] is now the oldest. */
	connlimit_busy(&cl, &keys[2], true);
	connlimit_busy(&cl, &keys[2], false);
	assert_int_equal(admit_as(&cl, "127.0.0.1", &keys[4], false, &evict), 0);
	assert_ptr_equal(evict, &keys[3]);
	/* An evicted connection is no longer counted: its close is ignored. */
	connlimit_release(&cl, &keys[1]);
	assert_int_equal(cl.used, 3);
	/* The unauthenticated limit (5): idle ones of any address give way. */
	assert_int_equal(admit_as(&cl, "10.0.0.1", &keys[5], true, &evict), 0);
	assert_int_equal(admit_as(&cl, "10.0.0.2", &keys[6], true, &evict), 0);
	assert_null(evict);
	assert_int_equal(admit_as(&cl, "10.0.0.3", &keys[7], true, &evict), 0);
	assert_ptr_equal(evict, &keys[2]);
	assert_int_equal(admit_as(&cl, "10.0.0.4", &keys[8], true, &evict), 0);
	assert_ptr_equal(evict, &keys[4]);
	assert_int_equal(cl.evicted[CL_UNAUTH], 2);
	/* Every one busy: refused, nothing evicted. */
	assert_int_equal(admit_as(&cl, "10.0.0.5", &keys[9], false, &evict), -(1 + CL_UNAUTH));
	assert_null(evict);
	/* Authenticated connections are never evicted: the table full of them refuses. */
	for (int i = 5; i <= 8; i++)
		connlimit_authenticated(&cl, &keys[i]);
	connlimit_busy(&cl, &keys[0], false);
	connlimit_authenticated(&cl, &keys[0]);
	for (int i = 9; i < 12; i++) {
		assert_int_equal(admit_as(&cl, "10.0.1.1", &keys[i], true, &evict), 0);
		connlimit_authenticated(&cl, &keys[i]);
	}
	assert_int_equal(cl.used, 8);
	assert_int_equal(admit_as(&cl, "10.0.1.2", &keys[12], false, &evict), -(1 + CL_FULL));
	assert_null(evict);
	connlimit_free(&cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_address_and_release),
		cmocka_unit_test(test_unauth_and_total),
		cmocka_unit_test(test_pending_never_bound),
		cmocka_unit_test(test_idle_gives_way),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
