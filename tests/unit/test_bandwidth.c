// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Bandwidth (issue 15): the spec and capacity keys, "auto" from link speeds, admission,
 * the cm_bw entry caelumd writes, and the kernel's decision predicate and queue arithmetic
 * (include/caelum/bandwidth.h) compiled for the host.
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
#include <unistd.h>
#include <cmocka.h>

#include "bandwidth_user.h"
#include "caelum/bandwidth.h"
#include "capacity.h"
#include "testutil.h"

#define LABEL	     "caelum.json"
#define SVC	     "svc.json"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int res_load(const char *text, struct spec_resources *r, struct verr *e)
{
	struct json_object *obj;

	assert_int_equal(jv_parse_string(SVC, text, strlen(text), &obj, e), 0);
	resources_parse(obj, SVC, r, e);
	json_object_put(obj);
	return e->n || e->dropped ? -EINVAL : 0;
}

static int cap_load(const char *text, struct capacity *c, struct verr *e)
{
	struct json_object *obj;

	assert_int_equal(jv_parse_string(LABEL, text, strlen(text), &obj, e), 0);
	capacity_parse(obj, LABEL, c, e);
	json_object_put(obj);
	return e->n || e->dropped ? -EINVAL : 0;
}

struct bad_case {
	const char *json, *msg;
};

static const struct bad_case res_bad[] = {
	{ "{\"egress_mbit\": 0}",
	  SVC ": resources.egress_mbit: 0 Mbit/s out of range 0.001-10000000" },
	{ "{\"egress_mbit\": -5}",
	  SVC ": resources.egress_mbit: -5 Mbit/s out of range 0.001-10000000" },
	{ "{\"ingress_mbit\": 10000001}",
	  SVC ": resources.ingress_mbit: 10000001 Mbit/s out of range 0.001-10000000" },
	{ "{\"ingress_mbit\": 0.0005}",
	  SVC ": resources.ingress_mbit: 0.0005 Mbit/s out of range 0.001-10000000" },
	{ "{\"egress_mbit\": 1.0001}",
	  SVC ": resources.egress_mbit: 1.0001: at most 3 decimals (kbit/s)" },
	{ "{\"egress_mbit\": \"20\"}",
	  SVC ": resources.egress_mbit: expected a number of Mbit/s, got string" },
	{ "{\"egress_mbit\": null}",
	  SVC ": resources.egress_mbit: expected a number of Mbit/s, got null" },
	{ "{\"egress_mbit\": \"auto\"}",
	  SVC ": resources.egress_mbit: expected a number of Mbit/s, got string" },
	{ "{\"egress\": 20}", SVC ": resources.egress: unknown key" },
};

static void test_spec_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(res_bad); i++) {
		struct spec_resources r;
		struct verr e = {};

		if (res_load(res_bad[i].json, &r, &e) != -EINVAL)
			fail_msg("case %zu: %s: accepted", i, res_bad[i].json);
		assert_verr_one(&e, res_bad[i].msg, res_bad[i].json);
		verr_free(&e);
	}
}

static void test_spec_good_round_trip(void **state)
{
	struct spec_resources r, back;
	struct json_object *o;
	struct verr e = {};
	const char *text;

	(void)state;
	assert_int_equal(res_load("{\"egress_mbit\": 20, \"ingress_mbit\": 40.5}", &r, &e), 0);
	assert_int_equal(r.egress_kbit, 20000);
	assert_int_equal(r.ingress_kbit, 40500);
	o = resources_to_json(&r);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_string_equal(text, "{\"egress_mbit\":20,\"ingress_mbit\":40.5}");
	assert_int_equal(res_load(text, &back, &e), 0);
	assert_memory_equal(&back, &r, sizeof(r));
	json_object_put(o);
	assert_int_equal(res_load("{\"egress_mbit\": 0.001}", &r, &e), 0);
	assert_int_equal(r.egress_kbit, 1);
	assert_int_equal(r.ingress_kbit, 0);
}

static const struct bad_case cap_bad[] = {
	{ "{\"egress_mbit\": 0}",
	  LABEL ": capacity.egress_mbit: 0 Mbit/s out of range 0.001-10000000" },
	{ "{\"ingress_mbit\": \"fast\"}",
	  LABEL ": capacity.ingress_mbit: expected a number of Mbit/s, got string" },
	{ "{\"ingress_mbit\": true}",
	  LABEL ": capacity.ingress_mbit: expected a number of Mbit/s, got boolean" },
	{ "{\"egress\": 1000}", LABEL ": capacity.egress: unknown key" },
};

static void test_capacity_keys(void **state)
{
	struct capacity c;
	struct verr e = {};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cap_bad); i++) {
		if (cap_load(cap_bad[i].json, &c, &e) != -EINVAL)
			fail_msg("case %zu: %s: accepted", i, cap_bad[i].json);
		assert_verr_one(&e, cap_bad[i].msg, cap_bad[i].json);
		verr_free(&e);
	}
	assert_int_equal(cap_load("{\"egress_mbit\": 1000, \"ingress_mbit\": \"auto\"}", &c, &e),
			 0);
	assert_int_equal(c.egress_kbit, 1000000);
	assert_int_equal(c.ingress_kbit, CAP_AUTO);
	assert_int_equal(cap_load("{}", &c, &e), 0);
	assert_int_equal(c.egress_kbit, CAP_AUTO); /* absent = "auto" */
}

/* A fake /sys/class/net: name, operstate, speed (NULL: no speed file). */
static void iface(const char *dir, const char *name, const char *state, const char *speed)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s/operstate", dir, name);
	assert_non_null(f = fopen(p, "w"));
	fputs(state, f);
	fclose(f);
	if (!speed)
		return;
	snprintf(p, sizeof(p), "%s/%s/speed", dir, name);
	assert_non_null(f = fopen(p, "w"));
	fputs(speed, f);
	fclose(f);
}

static void test_link_speed_auto(void **state)
{
	char dir[] = "/tmp/caelum-net-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	iface(dir, "lo", "unknown\n", NULL);
	iface(dir, "eth0", "up\n", "-1\n"); /* virtio: SPEED_UNKNOWN */
	assert_int_equal(capacity_link_speed_mbit(dir), -1);
	iface(dir, "eth1", "up\n", "10000\n");
	iface(dir, "eth2", "down\n", "25000\n"); /* down: not counted */
	iface(dir, "eth3", "up\n", "1000\n");
	assert_int_equal(capacity_link_speed_mbit(dir), 11000);
	assert_int_equal(capacity_link_speed_mbit("/nonexistent-caelum"), -1);
	{
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

static struct spec_resources bw(int64_t egress_kbit, int64_t ingress_kbit)
{
	struct spec_resources r;

	memset(&r, 0, sizeof(r));
	r.egress_kbit = egress_kbit;
	r.ingress_kbit = ingress_kbit;
	return r;
}

static void admit(const struct capacity *c, const struct admit_svc *s, size_t n, int want_err,
		  const char *msg)
{
	const char *want[] = { msg, NULL };
	struct verr e = {};

	assert_int_equal(admission_check(c, s, n, &e), want_err);
	assert_verr_is(&e, msg ? want : want + 1, msg ? msg : "admitted");
	verr_free(&e);
}

static void test_admission(void **state)
{
	struct spec_resources a = bw(600000, 0), b = bw(400000, 100500), c = bw(1, 0),
			      d = bw(0, 900000);
	struct capacity cap;

	(void)state;
	capacity_defaults(&cap);
	cap.cpus_milli = 1000;
	cap.memory_mb = 1024;
	cap.egress_kbit = 1000000; /* 1 Gbit/s */
	cap.ingress_kbit = 1000000;
	{
		struct admit_svc s[] = { { "a", &a, true }, { "b", &b, true } };

		admit(&cap, s, 2, 0, NULL); /* 600 + 400 = 1000 exactly */
	}
	{
		struct admit_svc s[] = { { "a", &a, false },
					 { "b", &b, false },
					 { "c", &c, true } };

		admit(&cap, s, 3, -ENOSPC,
		      "c: egress_mbit: requested 0.001, free 0 of 1000 (a 600, b 400)");
	}
	{
		struct admit_svc s[] = { { "b", &b, false }, { "d", &d, true } };

		admit(&cap, s, 2, -ENOSPC,
		      "d: ingress_mbit: requested 900, free 899.5 of 1000 (b 100.5)");
	}
	/* unknown capacity: a reservation is refused, a service without one is not */
	cap.ingress_kbit = CAP_UNKNOWN;
	{
		struct spec_resources none = bw(0, 0);
		struct admit_svc s[] = { { "d", &d, true }, { "n", &none, true } };

		admit(&cap, s, 2, -ENOSPC,
		      "d: ingress_mbit: requested 900, but the host's capacity is unknown (no "
		      "interface reports its link speed): set capacity.ingress_mbit in "
		      "caelum.json");
	}
}

static void test_entry(void **state)
{
	struct spec_resources none = bw(0, 0), eg = bw(20000, 0), both = bw(20000, 40000);
	struct caelum_bw e;

	(void)state;
	assert_false(bandwidth_entry(&none, &e));
	assert_true(bandwidth_entry(&eg, &e));
	assert_int_equal(e.flags, CAELUM_BW_F_EGRESS);
	assert_int_equal(e.q[CAELUM_BW_EGRESS].rate_Bps, 2500000); /* 20 Mbit/s */
	assert_int_equal(e.q[CAELUM_BW_EGRESS].next_ns, 0);
	assert_int_equal(e.q[CAELUM_BW_EGRESS].drop_ns, CAELUM_BW_DROP_NS);
	assert_true(bandwidth_entry(&both, &e));
	assert_int_equal(e.flags, CAELUM_BW_F_EGRESS | CAELUM_BW_F_INGRESS);
	assert_int_equal(e.q[CAELUM_BW_INGRESS].rate_Bps, 5000000);
	assert_int_equal(1U << CAELUM_BW_EGRESS, CAELUM_BW_F_EGRESS);
	assert_int_equal(1U << CAELUM_BW_INGRESS, CAELUM_BW_F_INGRESS);
}

static void test_verdict(void **state)
{
	struct caelum_bw_queue q = {
		.rate_Bps = 2500000, .burst_ns = 100, .mark_ns = 5000, .drop_ns = 150000
	};

	(void)state;
	assert_int_equal(caelum_bw_verdict(&q, -100, 1), CAELUM_BW_V_PASS);
	assert_int_equal(caelum_bw_verdict(&q, 5000, 0), CAELUM_BW_V_PASS);
	assert_int_equal(caelum_bw_verdict(&q, 5001, 1), CAELUM_BW_V_SIGNAL);
	assert_int_equal(caelum_bw_verdict(&q, 5001, 0), CAELUM_BW_V_DROP); /* UDP: no signal */
	assert_int_equal(caelum_bw_verdict(&q, 150000, 1), CAELUM_BW_V_SIGNAL);
	assert_int_equal(caelum_bw_verdict(&q, 150001, 1), CAELUM_BW_V_DROP);
	/* 64 KiB at 20 Mbit/s: 26.2 ms of queue */
	assert_int_equal(caelum_bw_cost_ns(65536, 2500000), 26214400);
	assert_int_equal(caelum_bw_cost_ns(1500, 125), 12000000000ULL); /* 1 kbit/s */
}

/* The queue as the programs move it, one CPU: a sender at 5x the rate for 1 s of virtual time
 * gets through the rate's bytes plus burst and mark, not more. */
static void test_queue_holds_udp_rate(void **state)
{
	struct caelum_bw_queue q = { .rate_Bps = 2500000,
				     .burst_ns = CAELUM_BW_BURST_NS,
				     .mark_ns = CAELUM_BW_MARK_NS,
				     .drop_ns = CAELUM_BW_DROP_NS };
	uint64_t passed = 0, now = 10ULL * 1000000000ULL, gap = 1400ULL * 1000000000ULL / 12500000;

	(void)state;
	for (uint64_t t = now; t < now + 1000000000ULL; t += gap) {
		uint64_t cost = caelum_bw_cost_ns(1400, q.rate_Bps), floor = t - q.burst_ns;
		int64_t backlog;

		if (q.next_ns < floor)
			q.next_ns = floor;
		q.next_ns += cost;
		backlog = (int64_t)(q.next_ns - t);
		if (caelum_bw_verdict(&q, backlog, 0) == CAELUM_BW_V_DROP)
			q.next_ns -= cost;
		else
			passed += 1400;
	}
	/* 2.5 MB of rate + 0.25 MB of burst + 12.5 kB of mark, within one datagram */
	assert_true(passed >= 2500000 + 250000);
	assert_true(passed <= 2500000 + 250000 + 12500 + 1400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_bad),      cmocka_unit_test(test_spec_good_round_trip),
		cmocka_unit_test(test_capacity_keys), cmocka_unit_test(test_link_speed_auto),
		cmocka_unit_test(test_admission),     cmocka_unit_test(test_entry),
		cmocka_unit_test(test_verdict),	      cmocka_unit_test(test_queue_holds_udp_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
