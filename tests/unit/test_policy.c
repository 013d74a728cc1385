// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The port decision as compiled for the host: the predicates bpf/ports.bpf.c uses
 * (include/caelum/ports.h) and the pure table builder port_policy_build() (user/enforce/ports.c)
 * with a fake cgroup lookup.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "caelum/ports.h"
#include "ports_user.h"

#define ALPHA_CGID 1001ULL
#define BETA_CGID  1002ULL

/* ---- predicates ---- */

static void test_owner_match(void **state)
{
	static const struct {
		__u16 flags;
		__u64 owner;
		__u64 ancestor;
		int match;
		const char *why;
	} cases[] = {
		{ CAELUM_PORT_F_RESERVED, ALPHA_CGID, ALPHA_CGID, 1, "owner's own task" },
		{ CAELUM_PORT_F_RESERVED | CAELUM_PORT_F_MANAGED, ALPHA_CGID, ALPHA_CGID, 1,
		  "reservation in a managed range" },
		{ CAELUM_PORT_F_RESERVED, ALPHA_CGID, BETA_CGID, 0, "another service" },
		{ CAELUM_PORT_F_RESERVED, ALPHA_CGID, 0, 0, "task above the owner's level" },
		/* the fail-open guard: unresolved owner vs a task with no ancestor there */
		{ CAELUM_PORT_F_RESERVED, CAELUM_CGID_NONE, 0, 0,
		  "unresolved owner, shallow task" },
		{ CAELUM_PORT_F_RESERVED, CAELUM_CGID_NONE, ALPHA_CGID, 0,
		  "unresolved owner, deep task" },
		{ CAELUM_PORT_F_RESERVED | CAELUM_PORT_F_MANAGED, CAELUM_CGID_NONE, 0, 0,
		  "unresolved owner in a managed range" },
		/* without RESERVED nobody owns the port, whatever owner_cgid says */
		{ CAELUM_PORT_F_MANAGED, ALPHA_CGID, ALPHA_CGID, 0, "managed only" },
		{ CAELUM_PORT_F_MANAGED, CAELUM_CGID_NONE, 0, 0, "managed only, zero ids" },
		{ 0, ALPHA_CGID, ALPHA_CGID, 0, "no flags" },
		{ 0, 0, 0, 0, "zeroed entry" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct caelum_port_rule r = { .owner_cgid = cases[i].owner,
					      .owner_level = 2,
					      .flags = cases[i].flags };
		int got = caelum_port_owner_match(&r, cases[i].ancestor);

		if (!!got != cases[i].match)
			fail_msg("case %zu (%s): owner_match = %d, want %d", i, cases[i].why, got,
				 cases[i].match);
	}
}

static void test_restricted(void **state)
{
	static const struct {
		__u16 flags;
		int restricted;
	} cases[] = {
		{ 0, 0 },
		{ CAELUM_PORT_F_RESERVED, 1 },
		{ CAELUM_PORT_F_MANAGED, 1 },
		{ CAELUM_PORT_F_RESERVED | CAELUM_PORT_F_MANAGED, 1 },
		{ 0x8000, 0 }, /* an unknown bit does not restrict */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct caelum_port_rule r = { .owner_cgid = ALPHA_CGID, .flags = cases[i].flags };

		if (!!caelum_port_restricted(&r) != cases[i].restricted)
			fail_msg("flags 0x%x: restricted = %d, want %d", cases[i].flags,
				 caelum_port_restricted(&r), cases[i].restricted);
	}
}

/*
 * The decision bpf/ports.bpf.c makes from the two predicates, and the examples of the
 * header: managed 8100-8199, alpha reserves 8100/tcp, beta reserves 9000/udp.
 */
static int allowed(const struct caelum_port_rule *r, __u64 ancestor)
{
	if (!r || !caelum_port_restricted(r))
		return 1;
	return caelum_port_owner_match(r, ancestor);
}

/* ---- port_policy_build ---- */

struct ident_ctx {
	int calls;
	int fail_on; /* call number that fails with -EIO; 0 = never */
};

static int fake_ident(void *ctx, const char *service, uint64_t *cgid, uint16_t *level)
{
	struct ident_ctx *c = ctx;

	c->calls++;
	if (c->fail_on && c->calls == c->fail_on)
		return -EIO;
	if (!strcmp(service, "alpha")) {
		*cgid = ALPHA_CGID;
		*level = 2;
	} else if (!strcmp(service, "beta")) {
		*cgid = BETA_CGID;
		*level = 3;
	} else {
		*cgid = CAELUM_CGID_NONE; /* no cgroup (yet) */
		*level = 0;
	}
	return 0;
}

static const struct caelum_port_rule *lookup(const struct port_policy *pol, __u16 port, __u8 proto)
{
	for (size_t i = 0; i < pol->n; i++)
		if (pol->keys[i].port == port && pol->keys[i].proto == proto)
			return &pol->rules[i];
	return NULL;
}

struct entry {
	__u16 port;
	__u8 proto;
	__u16 flags;
	__u64 owner;
	__u16 level;
};

static void assert_policy(const struct port_policy *pol, const struct entry *want, size_t n)
{
	if (pol->n != n)
		fail_msg("%zu entries, want %zu", pol->n, n);
	for (size_t i = 0; i < n; i++) {
		const struct caelum_port_key *k = &pol->keys[i];
		const struct caelum_port_rule *r = &pol->rules[i];

		if (k->port != want[i].port || k->proto != want[i].proto || k->pad ||
		    r->flags != want[i].flags || r->owner_cgid != want[i].owner ||
		    r->owner_level != want[i].level || r->pad)
			fail_msg("entry %zu: %u/%u flags %u owner %llu/%u, want %u/%u flags %u "
				 "owner %llu/%u",
				 i, k->port, k->proto, r->flags, (unsigned long long)r->owner_cgid,
				 r->owner_level, want[i].port, want[i].proto, want[i].flags,
				 (unsigned long long)want[i].owner, want[i].level);
	}
}

#define RES CAELUM_PORT_F_RESERVED
#define MAN CAELUM_PORT_F_MANAGED
#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP

static void test_build(void **state)
{
	static const struct port_range managed[] = {
		{ 8100, 8102, PROTO_BOTH },
		{ 8150, 8150, IPPROTO_UDP },
	};
	/* deliberately unsorted, with a duplicate as registry_claims never gives */
	static const struct reg_claim claims[] = {
		{ 9000, UDP, ORIGIN_API, "beta", NULL },
		{ 8101, TCP, ORIGIN_FILE, "alpha", NULL },
		{ 7000, TCP, ORIGIN_RUNTIME, "ghost", NULL },
		{ 8101, TCP, ORIGIN_FILE, "alpha", NULL },
		{ 80, TCP, ORIGIN_API, "alpha", NULL },
	};
	static const struct entry want[] = {
		{ 80, TCP, RES, ALPHA_CGID, 2 },	 { 7000, TCP, RES, CAELUM_CGID_NONE, 0 },
		{ 8100, TCP, MAN, CAELUM_CGID_NONE, 0 }, { 8100, UDP, MAN, CAELUM_CGID_NONE, 0 },
		{ 8101, TCP, RES | MAN, ALPHA_CGID, 2 }, { 8101, UDP, MAN, CAELUM_CGID_NONE, 0 },
		{ 8102, TCP, MAN, CAELUM_CGID_NONE, 0 }, { 8102, UDP, MAN, CAELUM_CGID_NONE, 0 },
		{ 8150, UDP, MAN, CAELUM_CGID_NONE, 0 }, { 9000, UDP, RES, BETA_CGID, 3 },
	};
	struct ident_ctx ctx = {};
	struct port_policy pol;

	(void)state;
	assert_int_equal(port_policy_build(&pol, claims, 5, managed, 2, fake_ident, &ctx), 0);
	assert_policy(&pol, want, sizeof(want) / sizeof(want[0]));
	assert_int_equal(pol.n_reserved, 4);
	assert_int_equal(pol.n_managed, 7);
	assert_int_equal(ctx.calls, 5);

	/* the header's examples, decided from the built table */
	assert_true(allowed(lookup(&pol, 8101, TCP), ALPHA_CGID));
	assert_false(allowed(lookup(&pol, 8101, TCP), BETA_CGID));
	assert_false(allowed(lookup(&pol, 8101, UDP), ALPHA_CGID)); /* managed, unreserved */
	assert_false(allowed(lookup(&pol, 8102, TCP), 0));
	assert_true(allowed(lookup(&pol, 8103, TCP), 0)); /* no entry */
	assert_true(allowed(lookup(&pol, 8150, TCP), 0)); /* 8150 is managed for udp only */
	assert_false(allowed(lookup(&pol, 8150, UDP), 0));
	assert_false(allowed(lookup(&pol, 9000, UDP), ALPHA_CGID));
	assert_true(allowed(lookup(&pol, 9000, UDP), BETA_CGID));
	/* an owner with no cgroup denies everyone, shallow tasks included */
	assert_false(allowed(lookup(&pol, 7000, TCP), 0));
	assert_false(allowed(lookup(&pol, 7000, TCP), ALPHA_CGID));
	port_policy_free(&pol);
	assert_null(pol.keys);
	assert_int_equal(pol.n, 0);
}

static void test_build_empty(void **state)
{
	struct ident_ctx ctx = {};
	struct port_policy pol;

	(void)state;
	assert_int_equal(port_policy_build(&pol, NULL, 0, NULL, 0, fake_ident, &ctx), 0);
	assert_int_equal(pol.n, 0);
	assert_int_equal(pol.n_reserved, 0);
	assert_int_equal(pol.n_managed, 0);
	assert_int_equal(ctx.calls, 0);
	port_policy_free(&pol);
}

static void test_build_ident_error(void **state)
{
	static const struct reg_claim claims[] = {
		{ 80, TCP, ORIGIN_API, "alpha", NULL },
		{ 81, TCP, ORIGIN_API, "beta", NULL },
	};
	struct ident_ctx ctx = { .fail_on = 2 };
	struct port_policy pol;

	(void)state;
	assert_int_equal(port_policy_build(&pol, claims, 2, NULL, 0, fake_ident, &ctx), -EIO);
	assert_null(pol.keys);
	assert_null(pol.rules);
	assert_int_equal(pol.n, 0);
}

/* The largest policy there is, every tcp port reserved, builds fast. */
static void test_build_all_ports_fast(void **state)
{
	static const struct port_range all = { 1, 65535, PROTO_BOTH };
	struct reg_claim *claims = calloc(65535, sizeof(*claims));
	struct ident_ctx ctx = {};
	struct timespec t0, t1;
	struct port_policy pol;
	double secs;

	(void)state;
	assert_non_null(claims);
	for (uint32_t p = 1; p <= 65535; p++)
		claims[p - 1] = (struct reg_claim){ (uint16_t)p, TCP, ORIGIN_API,
						    (p & 1) ? "alpha" : "beta", NULL };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(port_policy_build(&pol, claims, 65535, &all, 1, fake_ident, &ctx), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (secs >= 0.5)
		fail_msg("65535 reservations took %.3f s", secs);
	assert_int_equal(pol.n, 2 * 65535);
	assert_true(pol.n <= CAELUM_MAX_PORT_RULES);
	assert_int_equal(pol.n_reserved, 65535);
	assert_int_equal(pol.n_managed, 2 * 65535);
	/* strictly increasing (port, proto): sorted, no duplicates, never port 0 */
	assert_int_equal(pol.keys[0].port, 1);
	for (size_t i = 1; i < pol.n; i++) {
		const struct caelum_port_key *a = &pol.keys[i - 1], *b = &pol.keys[i];

		if (!(a->port < b->port || (a->port == b->port && a->proto < b->proto)))
			fail_msg("entries %zu and %zu out of order: %u/%u, %u/%u", i - 1, i,
				 a->port, a->proto, b->port, b->proto);
	}
	assert_int_equal(pol.rules[0].flags, RES | MAN);
	assert_int_equal(pol.rules[0].owner_cgid, ALPHA_CGID);
	assert_int_equal(pol.rules[1].flags, MAN);	 /* 1/udp */
	assert_int_equal(pol.rules[2].flags, RES | MAN); /* 2/tcp */
	assert_int_equal(pol.rules[2].owner_cgid, BETA_CGID);
	assert_int_equal(pol.rules[2].owner_level, 3);
	assert_int_equal(pol.rules[3].flags, MAN); /* 2/udp */
	assert_int_equal(pol.rules[3].owner_cgid, CAELUM_CGID_NONE);
	port_policy_free(&pol);
	free(claims);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owner_match),
		cmocka_unit_test(test_restricted),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_build_empty),
		cmocka_unit_test(test_build_ident_error),
		cmocka_unit_test(test_build_all_ports_fast),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
