// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Capacity and admission: the arithmetic of admission_check() on hand-built numbers (exact
 * refusal texts), milli-CPU rendering, "capacity" and "resources" bad input with exact
 * "FILE: PATH: message" texts, GPU assignment through the registry (stable, persistent,
 * refusals change nothing) and the device ownership predicate bpf/devices.bpf.c uses.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "caelum/devices.h"
#include "capacity.h"
#include "registry.h"
#include "testutil.h"

#define LABEL	     "caelum.json"
#define SVC_LABEL    "svc.json"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- admission arithmetic ---- */

/* cpus in milli-CPUs; capacity with n_gpus GPUs gpu0.. */
static void cap_init(struct capacity *c, int64_t cpus_milli, int64_t memory_mb, size_t n_gpus,
		     int64_t reserved_cpus_milli, int64_t reserved_memory_mb)
{
	capacity_defaults(c);
	c->cpus_milli = cpus_milli;
	c->memory_mb = memory_mb;
	c->reserved_cpus_milli = reserved_cpus_milli;
	c->reserved_memory_mb = reserved_memory_mb;
	c->n_gpus = n_gpus;
	for (size_t i = 0; i < n_gpus; i++)
		snprintf(c->gpus[i].id, sizeof(c->gpus[i].id), "gpu%zu", i);
}

static struct spec_resources res_of(int64_t cpus_milli, int64_t memory_mb, int64_t gpus)
{
	struct spec_resources r;

	memset(&r, 0, sizeof(r));
	r.cpus_milli = cpus_milli;
	r.memory_mb = memory_mb;
	r.gpu_count = gpus;
	return r;
}

/* admission_check must return want_err with exactly the messages of want. */
static void admit_is(const struct capacity *c, const struct admit_svc *s, size_t n, int want_err,
		     const char *const *want, const char *what)
{
	struct verr e = {};

	assert_int_equal(admission_check(c, s, n, &e), want_err);
	assert_verr_is(&e, want, what);
	verr_free(&e);
}

static void admit_ok(const struct capacity *c, const struct admit_svc *s, size_t n,
		     const char *what)
{
	static const char *const none[] = { NULL };

	admit_is(c, s, n, 0, none, what);
}

static void admit_refused(const struct capacity *c, const struct admit_svc *s, size_t n,
			  const char *msg, const char *what)
{
	const char *want[] = { msg, NULL };

	admit_is(c, s, n, -ENOSPC, want, what);
}

/* 2.5 + 0.5 = 3 exactly: milli-CPUs add up without rounding. */
static void test_admit_fractions(void **state)
{
	struct spec_resources a = res_of(2500, 0, 0), b = res_of(500, 0, 0), c = res_of(1, 0, 0),
			      third = res_of(333, 0, 0);
	struct capacity cap;

	(void)state;
	cap_init(&cap, 3000, 1024, 0, 0, 0);
	{
		struct admit_svc s[] = { { "a", &a, true }, { "b", &b, true } };

		admit_ok(&cap, s, 2, "2.5 + 0.5 of 3");
	}
	{
		struct admit_svc s[] = { { "a", &a, false },
					 { "b", &b, false },
					 { "c", &c, true } };

		admit_refused(&cap, s, 3, "c: cpus: requested 0.001, free 0 of 3 (a 2.5, b 0.5)",
			      "one milli-CPU past 3");
	}
	/* nine thirds of 0.333 = 2.997: fits, a tenth does not */
	{
		struct admit_svc s[10];
		static const char *const names[] = { "s0", "s1", "s2", "s3", "s4",
						     "s5", "s6", "s7", "s8", "s9" };

		for (size_t i = 0; i < 10; i++)
			s[i] = (struct admit_svc){ names[i], &third, true };
		admit_ok(&cap, s, 9, "9 x 0.333");
		admit_refused(&cap, s, 10,
			      "s9: cpus: requested 0.333, free 0.003 of 3 (s0 0.333, s1 0.333, s2 "
			      "0.333, s3 0.333, s4 0.333, ...)",
			      "10 x 0.333");
	}
}

static void test_admit_exact_fit(void **state)
{
	struct spec_resources fit = res_of(4000, 8192, 2), cpu1 = res_of(4001, 8192, 2),
			      mb1 = res_of(4000, 8193, 2), gpu1 = res_of(4000, 8192, 3);
	struct capacity cap;

	(void)state;
	cap_init(&cap, 4000, 8192, 2, 0, 0);
	{
		struct admit_svc s[] = { { "a", &fit, true } };

		admit_ok(&cap, s, 1, "exact fit");
	}
	{
		struct admit_svc s[] = { { "a", &cpu1, true } };

		admit_refused(&cap, s, 1, "a: cpus: requested 4.001, free 4 of 4",
			      "over by one milli-CPU");
	}
	{
		struct admit_svc s[] = { { "a", &mb1, true } };

		admit_refused(&cap, s, 1, "a: memory_mb: requested 8193, free 8192 of 8192",
			      "over by one MB");
	}
	{
		struct admit_svc s[] = { { "a", &gpu1, true } };

		admit_refused(&cap, s, 1, "a: gpus: requested 3, free 2 of 2", "over by one GPU");
	}
	/* the same with a holder: the free amount is what is left */
	{
		struct spec_resources h = res_of(1000, 4096, 1), rest = res_of(3000, 4097, 2);
		struct admit_svc s[] = { { "holder", &h, false }, { "new", &rest, true } };
		static const char *const want[] = {
			"new: memory_mb: requested 4097, free 4096 of 8192 (holder 4096)",
			"new: gpus: requested 2, free 1 of 2 (holder 1)",
			NULL,
		};

		admit_is(&cap, s, 2, -ENOSPC, want, "memory and gpus over, cpus fit");
	}
}

/* reserved is subtracted: capacity 8 reserved 1 -> "of 7". */
static void test_admit_reserved(void **state)
{
	struct spec_resources alpha = res_of(4000, 2048, 0), beta = res_of(1000, 0, 0),
			      gamma = res_of(3000, 0, 0), two = res_of(2000, 1024, 0),
			      mem = res_of(0, 1025, 0);
	struct capacity cap;

	(void)state;
	cap_init(&cap, 8000, 4096, 0, 1000, 1024);
	{
		struct admit_svc s[] = { { "alpha", &alpha, false },
					 { "beta", &beta, false },
					 { "gamma", &gamma, true } };

		admit_refused(&cap, s, 3, "gamma: cpus: requested 3, free 2 of 7 (alpha 4, beta 1)",
			      "cpus past capacity - reserved");
	}
	{
		struct admit_svc s[] = { { "alpha", &alpha, false },
					 { "beta", &beta, false },
					 { "two", &two, true } };

		admit_ok(&cap, s, 3, "exactly capacity - reserved");
	}
	{
		struct admit_svc s[] = { { "alpha", &alpha, false }, { "mem", &mem, true } };

		admit_refused(&cap, s, 2,
			      "mem: memory_mb: requested 1025, free 1024 of 3072 (alpha 2048)",
			      "memory past capacity - reserved");
	}
	/* fractional reserved */
	cap_init(&cap, 4000, 4096, 0, 250, 0);
	{
		struct spec_resources big = res_of(3751, 0, 0), ok = res_of(3750, 0, 0);
		struct admit_svc s[] = { { "big", &big, true } }, t[] = { { "ok", &ok, true } };

		admit_refused(&cap, s, 1, "big: cpus: requested 3.751, free 3.75 of 3.75",
			      "reserved 0.25");
		admit_ok(&cap, t, 1, "reserved 0.25, exact");
	}
}

/* Capacity shrank below what the unchanged services hold: they stay, changes are refused. */
static void test_admit_unchanged_over(void **state)
{
	struct spec_resources alpha = res_of(3000, 4096, 2), beta = res_of(500, 0, 0),
			      gamma = res_of(0, 0, 0);
	struct capacity cap;

	(void)state;
	cap_init(&cap, 2000, 1024, 1, 0, 0);
	{
		struct admit_svc s[] = { { "alpha", &alpha, false } };

		admit_ok(&cap, s, 1, "unchanged over every dimension");
	}
	{
		struct admit_svc s[] = { { "alpha", &alpha, false }, { "gamma", &gamma, true } };

		admit_ok(&cap, s, 2, "a change that asks for nothing");
	}
	{
		/* the changed one comes first in the array: still admitted after alpha */
		struct admit_svc s[] = { { "beta", &beta, true }, { "alpha", &alpha, false } };

		admit_refused(&cap, s, 2, "beta: cpus: requested 0.5, free 0 of 2 (alpha 3)",
			      "change next to an over-capacity service");
	}
	{
		/* the same service, changed: it is measured like any other change */
		struct admit_svc s[] = { { "alpha", &alpha, true } };
		static const char *const want[] = {
			"alpha: cpus: requested 3, free 2 of 2",
			"alpha: memory_mb: requested 4096, free 1024 of 1024",
			"alpha: gpus: requested 2, free 1 of 1",
			NULL,
		};

		admit_is(&cap, s, 1, -ENOSPC, want, "changed over every dimension");
	}
}

/* Each change is measured on its own, in all dimensions at once: a refused one takes
 * nothing, in no dimension, from the ones after it. */
static void test_admit_refused_independently(void **state)
{
	struct spec_resources a = res_of(2000, 1000, 0), b = res_of(3000, 500, 0),
			      c = res_of(2000, 1000, 0), d = res_of(1000, 0, 1),
			      m = res_of(0, 2000, 1), g = res_of(0, 0, 2),
			      x = res_of(5000, 5000, 3);
	struct capacity cap;
	/* cpus: a fits, b not, c fits, d not; memory: m not (b holds nothing);
	 * gpus: d and m were refused, so g gets both */
	struct admit_svc s[] = { { "a", &a, true }, { "b", &b, true }, { "c", &c, true },
				 { "d", &d, true }, { "m", &m, true }, { "g", &g, true } };
	static const char *const want[] = {
		"b: cpus: requested 3, free 2 of 4 (a 2)",
		"d: cpus: requested 1, free 0 of 4 (a 2, c 2)",
		"m: memory_mb: requested 2000, free 1000 of 3000 (a 1000, c 1000)",
		NULL,
	};

	(void)state;
	cap_init(&cap, 4000, 3000, 2, 0, 0);
	admit_is(&cap, s, ARRAY_LEN(s), -ENOSPC, want, "several refused");
	/* one refused in every dimension: one message per dimension, and g still fits */
	{
		struct admit_svc t[] = { { "x", &x, true }, { "g", &g, true } };
		static const char *const want2[] = {
			"x: cpus: requested 5, free 4 of 4",
			"x: memory_mb: requested 5000, free 3000 of 3000",
			"x: gpus: requested 3, free 2 of 2",
			NULL,
		};

		admit_is(&cap, t, ARRAY_LEN(t), -ENOSPC, want2, "refused everywhere");
	}
	/* without b and d everything fits */
	{
		struct admit_svc t[] = { s[0], s[2], s[5] };

		admit_ok(&cap, t, ARRAY_LEN(t), "the rest fits");
	}
	/* prior messages in e do not turn success into a refusal */
	{
		struct admit_svc t[] = { s[0], s[2] };
		struct verr e = {};

		verr_add(&e, "x", NULL, "earlier");
		assert_int_equal(admission_check(&cap, t, ARRAY_LEN(t), &e), 0);
		assert_int_equal(e.n, 1);
		verr_free(&e);
	}
}

/* Services that reserve nothing (zero or no resources) are neither counted nor listed. */
static void test_admit_no_reservation_ignored(void **state)
{
	struct spec_resources zero = res_of(0, 0, 0), c = res_of(1000, 0, 0), d = res_of(1, 1, 1),
			      tasks = res_of(0, 0, 0);
	struct capacity cap;

	(void)state;
	tasks.tasks = 100;
	cap_init(&cap, 1000, 1024, 0, 0, 0);
	{
		struct admit_svc s[] = { { "a", &zero, false },
					 { "b", NULL, true },
					 { "c", &c, false },
					 { "t", &tasks, true },
					 { "z", &zero, true } };

		admit_ok(&cap, s, ARRAY_LEN(s), "nothing reserved besides c");
	}
	{
		struct admit_svc s[] = { { "a", &zero, false },
					 { "b", NULL, false },
					 { "c", &c, false },
					 { "t", &tasks, false },
					 { "d", &d, true } };
		static const char *const want[] = {
			"d: cpus: requested 0.001, free 0 of 1 (c 1)",
			"d: gpus: requested 1, free 0 of 0",
			NULL,
		};

		admit_is(&cap, s, ARRAY_LEN(s), -ENOSPC, want, "holders without reservations");
	}
	/* no services at all */
	admit_ok(&cap, NULL, 0, "empty");
}

/* Holders: by amount descending, then name; at most five, then ", ...". */
static void test_admit_holders(void **state)
{
	struct spec_resources two = res_of(2000, 0, 0), one5 = res_of(1500, 0, 0),
			      one = res_of(1000, 0, 0), q = res_of(250, 0, 0),
			      want25 = res_of(2500, 0, 0);
	struct capacity cap;

	(void)state;
	cap_init(&cap, 10000, 1024, 0, 0, 0);
	{
		struct admit_svc s[] = { { "zeta", &two, false },  { "eta", &q, false },
					 { "gamma", &one, false }, { "alpha", &two, false },
					 { "theta", &q, false },   { "delta", &one, false },
					 { "beta", &one5, false }, { "new", &want25, true } };

		admit_refused(&cap, s, ARRAY_LEN(s),
			      "new: cpus: requested 2.5, free 2 of 10 (alpha 2, zeta 2, beta 1.5, "
			      "delta 1, gamma 1, ...)",
			      "seven holders");
	}
	cap_init(&cap, 1000, 1024, 0, 0, 0);
	{
		struct spec_resources q9 = res_of(249, 0, 0), two_m = res_of(2, 0, 0),
				      one_m = res_of(1, 0, 0);
		struct admit_svc s[] = { { "d", &q9, false },	{ "c", &q, false },
					 { "b", &q, false },	{ "a", &q, false },
					 { "e", &one_m, true }, { "x", &two_m, true } };

		admit_refused(&cap, s, ARRAY_LEN(s),
			      "x: cpus: requested 0.002, free 0 of 1 (a 0.25, b 0.25, c 0.25, d "
			      "0.249, e 0.001)",
			      "exactly five holders");
	}
}

/* ---- milli_fmt, resources_gpus ---- */

static void test_milli_fmt(void **state)
{
	static const struct {
		int64_t milli;
		const char *s;
	} cases[] = {
		{ 0, "0" },	    { 1, "0.001" },
		{ 10, "0.01" },	    { 100, "0.1" },
		{ 250, "0.25" },    { 999, "0.999" },
		{ 1000, "1" },	    { 1001, "1.001" },
		{ 1050, "1.05" },   { 1500, "1.5" },
		{ 2500, "2.5" },    { 3000, "3" },
		{ 12340, "12.34" }, { 1000000000, "1000000" },
		{ -1500, "-1.5" },  { -250, "-0.25" },
		{ -1, "-0.001" },   { -3000, "-3" },
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		memset(buf, 'X', sizeof(buf));
		milli_fmt(cases[i].milli, buf, sizeof(buf));
		if (strcmp(buf, cases[i].s))
			fail_msg("milli_fmt(%lld) = \"%s\", want \"%s\"", (long long)cases[i].milli,
				 buf, cases[i].s);
	}
	/* truncated, still terminated */
	milli_fmt(12345, buf, 4);
	assert_string_equal(buf, "12.");
}

static void test_resources_gpus(void **state)
{
	struct spec_resources r;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(resources_gpus(&r), 0);
	r.gpu_count = 3;
	assert_int_equal(resources_gpus(&r), 3);
	char ids[2][GPU_ID_MAX + 1] = { "gpu0", "gpu5" };
	r.gpu_ids = ids;
	r.n_gpu_ids = 2;
	assert_int_equal(resources_gpus(&r), 2); /* a list wins over a count */
	r.gpu_count = 0;
	assert_int_equal(resources_gpus(&r), 2);
}

/* ---- "capacity" in caelum.json ---- */

/* Parse text as caelum.json's "capacity"; resolved when it parsed. */
static int cap_load(const char *text, struct capacity *c, struct verr *e)
{
	struct json_object *obj;
	int err;

	err = jv_parse_string(LABEL, text, strlen(text), &obj, e);
	assert_int_equal(err, 0);
	capacity_parse(obj, LABEL, c, e);
	json_object_put(obj);
	if (e->n || e->dropped)
		return -EINVAL;
	return capacity_resolve(c, LABEL, e);
}

struct bad_case {
	const char *json;
	const char *msg;
};

#define GPU(id, devs) "{\"id\": \"" id "\", \"devices\": " devs "}"

static const struct bad_case cap_bad[] = {
	/* cpus */
	{ "{\"cpus\": 0}", LABEL ": capacity.cpus: 0 CPUs out of range 0.001-1000000" },
	{ "{\"cpus\": -1}", LABEL ": capacity.cpus: -1 CPUs out of range 0.001-1000000" },
	{ "{\"cpus\": 0.0004}", LABEL ": capacity.cpus: 0.0004 CPUs out of range 0.001-1000000" },
	{ "{\"cpus\": \"lots\"}", LABEL ": capacity.cpus: expected number, got string" },
	{ "{\"cpus\": null}", LABEL ": capacity.cpus: expected number, got null" },
	{ "{\"cpus\": 1.0005}", LABEL ": capacity.cpus: 1.0005: at most 3 decimals (milli-CPUs)" },
	{ "{\"cpus\": 2000000}", LABEL ": capacity.cpus: 2000000 CPUs out of range 0.001-1000000" },
	{ "{\"cpus\": 1000000.001}",
	  LABEL ": capacity.cpus: 1000000.001 CPUs out of range 0.001-1000000" },
	/* memory_mb */
	{ "{\"memory_mb\": 0}", LABEL ": capacity.memory_mb: 0 out of range 1-1099511627776" },
	{ "{\"memory_mb\": 1.5}", LABEL ": capacity.memory_mb: expected integer, got number 1.5" },
	{ "{\"memory_mb\": \"lots\"}",
	  LABEL ": capacity.memory_mb: expected integer, got string \"lots\"" },
	/* reserved */
	{ "{\"cpus\": 8, \"memory_mb\": 1024, \"reserved\": {\"cpus\": 8}}",
	  LABEL ": capacity.reserved.cpus: 8 leaves nothing of 8 CPUs" },
	{ "{\"cpus\": 2.5, \"memory_mb\": 1024, \"reserved\": {\"cpus\": 3}}",
	  LABEL ": capacity.reserved.cpus: 3 leaves nothing of 2.5 CPUs" },
	{ "{\"cpus\": 8, \"memory_mb\": 1024, \"reserved\": {\"memory_mb\": 1024}}",
	  LABEL ": capacity.reserved.memory_mb: 1024 leaves nothing of 1024 MB" },
	{ "{\"cpus\": 8, \"memory_mb\": 1024, \"reserved\": {\"memory_mb\": 2048}}",
	  LABEL ": capacity.reserved.memory_mb: 2048 leaves nothing of 1024 MB" },
	{ "{\"reserved\": {\"cpus\": -0.5}}",
	  LABEL ": capacity.reserved.cpus: -0.5 CPUs out of range 0-1000000" },
	{ "{\"reserved\": {\"memory_mb\": -1}}",
	  LABEL ": capacity.reserved.memory_mb: -1 out of range 0-1099511627776" },
	{ "{\"reserved\": 1}", LABEL ": capacity.reserved: expected object, got integer 1" },
	/* gpus */
	{ "{\"gpus\": {}}", LABEL ": capacity.gpus: expected array, got object {...}" },
	{ "{\"gpus\": \"gpu0\"}", LABEL ": capacity.gpus: expected array, got string \"gpu0\"" },
	{ "{\"gpus\": [\"gpu0\"]}",
	  LABEL ": capacity.gpus[0]: expected object, got string \"gpu0\"" },
	{ "{\"gpus\": [{\"devices\": [\"/dev/null\"]}]}",
	  LABEL ": capacity.gpus[0].id: missing required key" },
	{ "{\"gpus\": [{\"id\": \"gpu0\"}]}",
	  LABEL ": capacity.gpus[0].devices: missing required key" },
	{ "{\"gpus\": [" GPU("GPU0", "[\"/dev/null\"]") "]}", LABEL
	  ": capacity.gpus[0].id: invalid GPU id \"GPU0\" (expected [a-z0-9][a-z0-9_-]{0,30})" },
	{ "{\"gpus\": [" GPU("-x", "[\"/dev/null\"]") "]}", LABEL
	  ": capacity.gpus[0].id: invalid GPU id \"-x\" (expected [a-z0-9][a-z0-9_-]{0,30})" },
	{ "{\"gpus\": [" GPU("", "[\"/dev/null\"]") "]}",
	  LABEL ": capacity.gpus[0].id: invalid GPU id \"\" (expected [a-z0-9][a-z0-9_-]{0,30})" },
	{ "{\"gpus\": [" GPU("g0123456789012345678901234567890", "[\"/dev/null\"]") "]}",
	  LABEL ": capacity.gpus[0].id: invalid GPU id \"g0123456789012345678901234567890\" "
		"(expected [a-z0-9][a-z0-9_-]{0,30})" },
	{ "{\"gpus\": [{\"id\": 0, \"devices\": [\"/dev/null\"]}]}",
	  LABEL ": capacity.gpus[0].id: expected string, got integer 0" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"/dev/null\"]") ", " GPU(
		  "gpu1", "[\"/dev/zero\"]") ", " GPU("gpu0", "[\"/dev/zero\"]") "]}",
	  LABEL ": capacity.gpus[2]: GPU id \"gpu0\" is also gpus[0]" },
	{ "{\"gpus\": [" GPU("gpu0", "[]") "]}",
	  LABEL ": capacity.gpus[0].devices: 0 devices of GPU \"gpu0\", expected 1-8" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"/dev/null\", \"/dev/null\", \"/dev/null\", \"/dev/null\", "
				     "\"/dev/null\", \"/dev/null\", \"/dev/null\", \"/dev/null\", "
				     "\"/dev/null\"]") "]}",
	  LABEL ": capacity.gpus[0].devices: 9 devices of GPU \"gpu0\", expected 1-8" },
	{ "{\"gpus\": [" GPU("gpu0", "\"/dev/null\"") "]}",
	  LABEL ": capacity.gpus[0].devices: expected array, got string \"/dev/null\"" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"/dev/null\", 7]") "]}",
	  LABEL ": capacity.gpus[0].devices[1]: expected string, got integer 7" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"dev/nvidia0\"]") "]}",
	  LABEL ": capacity.gpus[0].devices[0]: \"dev/nvidia0\" of GPU \"gpu0\" is not an absolute "
		"device path of at most 255 bytes" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"\"]") "]}", LABEL
	  ": capacity.gpus[0].devices[0]: \"\" of GPU \"gpu0\" is not an absolute device path "
	  "of at most 255 bytes" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"/dev/null\"]") ", " GPU(
		  "gpu1", "[\"/nonexistent-caelum/nvidia1\"]") "]}",
	  LABEL
	  ": capacity.gpus[1].devices[0]: \"/nonexistent-caelum/nvidia1\" of GPU \"gpu1\": No "
	  "such file or directory" },
	{ "{\"gpus\": [" GPU("gpu0", "[\"/dev/null\", \"/\"]") "]}",
	  LABEL ": capacity.gpus[0].devices[1]: \"/\" of GPU \"gpu0\" is not a character device" },
	/* unknown keys at every level */
	{ "{\"cpu\": 4}", LABEL ": capacity.cpu: unknown key" },
	{ "{\"reserved\": {\"gpus\": 1}}", LABEL ": capacity.reserved.gpus: unknown key" },
	{ "{\"gpus\": [{\"id\": \"gpu0\", \"devices\": [\"/dev/null\"], \"model\": \"h100\"}]}",
	  LABEL ": capacity.gpus[0].model: unknown key" },
	/* windows */
	{ "{\"cpu_window_s\": 0}", LABEL ": capacity.cpu_window_s: 0 out of range 1-300" },
	{ "{\"cpu_window_s\": 301}", LABEL ": capacity.cpu_window_s: 301 out of range 1-300" },
	{ "{\"cpu_grace_s\": -1}", LABEL ": capacity.cpu_grace_s: -1 out of range 0-3600" },
	{ "{\"cpu_grace_s\": 3601}", LABEL ": capacity.cpu_grace_s: 3601 out of range 0-3600" },
	/* not an object */
	{ "[]", LABEL ": capacity: expected object, got array [...]" },
	{ "\"auto\"", LABEL ": capacity: expected object, got string \"auto\"" },
};

static void test_capacity_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cap_bad); i++) {
		struct capacity c;
		struct verr e = {};
		char what[512];
		int err = cap_load(cap_bad[i].json, &c, &e);

		snprintf(what, sizeof(what), "case %zu: %s", i, cap_bad[i].json);
		if (err != -EINVAL)
			fail_msg("%s: returned %d, want -EINVAL", what, err);
		assert_verr_one(&e, cap_bad[i].msg, what);
		verr_free(&e);
	}
}

/* Every error of the object at once, in document order. */
static void test_capacity_all_errors(void **state)
{
	struct capacity c;
	struct verr e = {};
	static const char *const want[] = {
		LABEL ": capacity.bogus: unknown key",
		LABEL ": capacity.cpus: 0 CPUs out of range 0.001-1000000",
		LABEL ": capacity.memory_mb: 0 out of range 1-1099511627776",
		LABEL ": capacity.gpus[0].id: invalid GPU id \"GPU0\" (expected "
		      "[a-z0-9][a-z0-9_-]{0,30})",
		LABEL ": capacity.gpus[0].devices: 0 devices, expected 1-8",
		LABEL ": capacity.cpu_window_s: 301 out of range 1-300",
		NULL,
	};

	(void)state;
	assert_int_equal(cap_load("{\"cpus\": 0, \"memory_mb\": 0, \"bogus\": 1, \"gpus\": "
				  "[{\"id\": \"GPU0\", \"devices\": []}], \"cpu_window_s\": 301}",
				  &c, &e),
			 -EINVAL);
	assert_verr_is(&e, want, "all errors");
	verr_free(&e);
}

/* A regular file is not a device; both bad devices of a GPU are reported. */
static void test_capacity_regular_file(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX], json[2 * PATH_MAX], msg[2][2 * PATH_MAX];
	const char *want[] = { msg[0], msg[1], NULL };
	struct capacity c;
	struct verr e = {};

	write_text(dir, "nvidia0", "not a device\n", path);
	snprintf(json, sizeof(json),
		 "{\"cpus\": 4, \"memory_mb\": 1024, \"gpus\": [{\"id\": \"gpu0\", \"devices\": "
		 "[\"%s\", \"%s/nvidia1\"]}]}",
		 path, dir);
	snprintf(msg[0], sizeof(msg[0]),
		 LABEL
		 ": capacity.gpus[0].devices[0]: \"%s\" of GPU \"gpu0\" is not a character device",
		 path);
	snprintf(msg[1], sizeof(msg[1]),
		 LABEL
		 ": capacity.gpus[0].devices[1]: \"%s/nvidia1\" of GPU \"gpu0\": No such file or "
		 "directory",
		 dir);
	assert_int_equal(cap_load(json, &c, &e), -EINVAL);
	assert_verr_is(&e, want, "regular file");
	verr_free(&e);
}

static int64_t memtotal_mb_read(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	return kb / 1024;
}

static void test_capacity_good(void **state)
{
	struct capacity c;
	struct verr e = {};

	(void)state;
	/* defaults: everything detected */
	assert_int_equal(cap_load("{}", &c, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(c.cpus_milli, sysconf(_SC_NPROCESSORS_ONLN) * 1000LL);
	assert_true(c.cpus_detected);
	assert_int_equal(c.memory_mb, memtotal_mb_read());
	assert_true(c.memory_detected);
	assert_int_equal(c.reserved_cpus_milli, 0);
	assert_int_equal(c.reserved_memory_mb, 0);
	assert_int_equal(c.n_gpus, 0);
	assert_int_equal(c.cpu_window_s, 10);
	assert_int_equal(c.cpu_grace_s, 30);

	/* "auto" spelled out, reserved within */
	assert_int_equal(cap_load("{\"cpus\": \"auto\", \"memory_mb\": \"auto\", \"reserved\": "
				  "{\"memory_mb\": 1}}",
				  &c, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(c.cpus_milli, sysconf(_SC_NPROCESSORS_ONLN) * 1000LL);
	assert_true(c.cpus_detected);
	assert_int_equal(c.memory_mb, memtotal_mb_read());
	assert_true(c.memory_detected);
	assert_int_equal(c.reserved_memory_mb, 1);

	/* explicit numbers and real character devices */
	assert_int_equal(
		cap_load("{\"cpus\": 2.5, \"memory_mb\": 4096, "
			 "\"reserved\": {\"cpus\": 0.125, \"memory_mb\": 512}, "
			 "\"gpus\": [" GPU("gpu0", "[\"/dev/null\", \"/dev/zero\"]") ", " GPU(
				 "a_1-b",
				 "[\"/dev/null\"]") "], "
						    "\"cpu_window_s\": 300, \"cpu_grace_s\": 0}",
			 &c, &e),
		0);
	assert_int_equal(e.n, 0);
	assert_int_equal(c.cpus_milli, 2500);
	assert_false(c.cpus_detected);
	assert_int_equal(c.memory_mb, 4096);
	assert_false(c.memory_detected);
	assert_int_equal(c.reserved_cpus_milli, 125);
	assert_int_equal(c.reserved_memory_mb, 512);
	assert_int_equal(c.cpu_window_s, 300);
	assert_int_equal(c.cpu_grace_s, 0);
	assert_int_equal(c.n_gpus, 2);
	assert_string_equal(c.gpus[0].id, "gpu0");
	assert_int_equal(c.gpus[0].n_dev, 2);
	assert_string_equal(c.gpus[0].dev[0].path, "/dev/null");
	assert_int_equal(c.gpus[0].dev[0].major, 1);
	assert_int_equal(c.gpus[0].dev[0].minor, 3);
	assert_string_equal(c.gpus[0].dev[1].path, "/dev/zero");
	assert_int_equal(c.gpus[0].dev[1].major, 1);
	assert_int_equal(c.gpus[0].dev[1].minor, 5);
	assert_string_equal(c.gpus[1].id, "a_1-b");
	assert_int_equal(c.gpus[1].n_dev, 1);
	assert_int_equal(c.gpus[1].dev[0].minor, 3);

	/* the smallest and largest accepted */
	assert_int_equal(cap_load("{\"cpus\": 0.002, \"memory_mb\": 2, \"reserved\": {\"cpus\": "
				  "0.001, \"memory_mb\": 1}, \"cpu_window_s\": 1, \"cpu_grace_s\": "
				  "3600}",
				  &c, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(c.cpus_milli, 2);
	assert_int_equal(c.reserved_cpus_milli, 1);
	assert_int_equal(c.cpu_window_s, 1);
	assert_int_equal(c.cpu_grace_s, 3600);
	assert_int_equal(cap_load("{\"cpus\": 1000000, \"memory_mb\": 1099511627776}", &c, &e), 0);
	assert_int_equal(c.cpus_milli, 1000000000LL);
	assert_int_equal(c.memory_mb, 1LL << 40);
	assert_int_equal(e.n, 0);
}

static void test_gpu_id_valid(void **state)
{
	(void)state;
	assert_true(gpu_id_valid("gpu0"));
	assert_true(gpu_id_valid("0"));
	assert_true(gpu_id_valid("a-b_c"));
	assert_true(gpu_id_valid("g012345678901234567890123456789"));	/* 31 */
	assert_false(gpu_id_valid("g0123456789012345678901234567890")); /* 32 */
	assert_false(gpu_id_valid(""));
	assert_false(gpu_id_valid("-x"));
	assert_false(gpu_id_valid("_x"));
	assert_false(gpu_id_valid("GPU0"));
	assert_false(gpu_id_valid("gpu 0"));
	assert_false(gpu_id_valid("gpu.0"));
}

/* ---- "resources" in a spec ---- */

static int res_load(const char *text, struct spec_resources *r, struct verr *e)
{
	struct json_object *obj;

	assert_int_equal(jv_parse_string(SVC_LABEL, text, strlen(text), &obj, e), 0);
	resources_parse(obj, SVC_LABEL, r, e);
	json_object_put(obj);
	return e->n || e->dropped ? -EINVAL : 0;
}

static const struct bad_case res_bad[] = {
	{ "{\"cpus\": 0}", SVC_LABEL ": resources.cpus: 0 CPUs out of range 0.001-1000000" },
	{ "{\"cpus\": 0.5005}",
	  SVC_LABEL ": resources.cpus: 0.5005: at most 3 decimals (milli-CPUs)" },
	{ "{\"cpus\": \"2\"}", SVC_LABEL ": resources.cpus: expected number, got string" },
	{ "{\"tasks\": 0}", SVC_LABEL ": resources.tasks: 0 out of range 1-4194304" },
	{ "{\"tasks\": 5000000}", SVC_LABEL ": resources.tasks: 5000000 out of range 1-4194304" },
	{ "{\"memory_mb\": \"x\"}",
	  SVC_LABEL ": resources.memory_mb: expected integer, got string \"x\"" },
	{ "{\"memory_mb\": 0}", SVC_LABEL ": resources.memory_mb: 0 out of range 1-1099511627776" },
	{ "{\"gpus\": 0}", SVC_LABEL ": resources.gpus: 0 out of range 1-16" },
	{ "{\"gpus\": 17}", SVC_LABEL ": resources.gpus: 17 out of range 1-16" },
	{ "{\"gpus\": []}", SVC_LABEL ": resources.gpus: 0 GPU ids, expected 1-16" },
	{ "{\"gpus\": [\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\", "
	  "\"a\", "
	  "\"b\", \"c\", \"d\", \"e\", \"f\", \"g\"]}",
	  SVC_LABEL ": resources.gpus: 17 GPU ids, expected 1-16" },
	{ "{\"gpus\": [\"gpu0\", \"gpu1\", \"gpu0\"]}",
	  SVC_LABEL ": resources.gpus[2]: \"gpu0\" is listed twice" },
	{ "{\"gpus\": [1]}", SVC_LABEL ": resources.gpus[0]: expected string, got integer 1" },
	{ "{\"gpus\": [\"GPU0\"]}", SVC_LABEL ": resources.gpus[0]: invalid GPU id \"GPU0\"" },
	{ "{\"gpus\": \"gpu0\"}",
	  SVC_LABEL ": resources.gpus: expected a count or a list of GPU ids, got string" },
	{ "{\"gpus\": 1.5}",
	  SVC_LABEL ": resources.gpus: expected a count or a list of GPU ids, got number" },
	{ "{\"ram\": 1}", SVC_LABEL ": resources.ram: unknown key" },
	{ "[]", SVC_LABEL ": resources: expected object, got array [...]" },
};

static void test_resources_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(res_bad); i++) {
		struct spec_resources r;
		struct verr e = {};
		char what[512];

		snprintf(what, sizeof(what), "case %zu: %s", i, res_bad[i].json);
		if (res_load(res_bad[i].json, &r, &e) != -EINVAL)
			fail_msg("%s: accepted", what);
		assert_verr_one(&e, res_bad[i].msg, what);
		verr_free(&e);
		resources_free(&r);
	}
}

/* to_json renders r as want (plain), and parsing that gives r back. */
static void res_round_trip(const struct spec_resources *r, const char *want)
{
	struct json_object *o = resources_to_json(r);
	struct spec_resources back;
	const char *text;
	struct verr e = {};

	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_string_equal(text, want);
	assert_int_equal(res_load(text, &back, &e), 0);
	assert_true(resources_equal(&back, r));
	resources_free(&back);
	json_object_put(o);
}

static void test_resources_good(void **state)
{
	struct spec_resources r;
	struct verr e = {};

	(void)state;
	assert_int_equal(
		res_load("{\"cpus\": 2.5, \"memory_mb\": 2048, \"tasks\": 64, \"gpus\": 1}", &r,
			 &e),
		0);
	assert_int_equal(r.cpus_milli, 2500);
	assert_int_equal(r.memory_mb, 2048);
	assert_int_equal(r.tasks, 64);
	assert_int_equal(r.gpu_count, 1);
	assert_int_equal(r.n_gpu_ids, 0);
	assert_int_equal(resources_gpus(&r), 1);
	res_round_trip(&r, "{\"cpus\":2.5,\"memory_mb\":2048,\"tasks\":64,\"gpus\":1}");

	assert_int_equal(res_load("{\"gpus\": [\"gpu1\", \"gpu0\"], \"cpus\": 1}", &r, &e), 0);
	assert_int_equal(r.cpus_milli, 1000);
	assert_int_equal(r.memory_mb, 0);
	assert_int_equal(r.tasks, 0);
	assert_int_equal(r.gpu_count, 0);
	assert_int_equal(r.n_gpu_ids, 2);
	assert_string_equal(r.gpu_ids[0], "gpu1");
	assert_string_equal(r.gpu_ids[1], "gpu0");
	assert_int_equal(resources_gpus(&r), 2);
	res_round_trip(&r, "{\"cpus\":1,\"gpus\":[\"gpu1\",\"gpu0\"]}");
	resources_free(&r);

	assert_int_equal(res_load("{\"cpus\": 0.001, \"tasks\": 4194304, \"gpus\": 16}", &r, &e),
			 0);
	assert_int_equal(r.cpus_milli, 1);
	assert_int_equal(r.tasks, 4194304);
	assert_int_equal(r.gpu_count, 16);
	res_round_trip(&r, "{\"cpus\":0.001,\"tasks\":4194304,\"gpus\":16}");

	/* milli-CPUs that are not exact in binary come back exact */
	assert_int_equal(res_load("{\"cpus\": 2.345}", &r, &e), 0);
	assert_int_equal(r.cpus_milli, 2345);
	res_round_trip(&r, "{\"cpus\":2.345}");

	/* nothing reserved: an empty object */
	assert_int_equal(res_load("{}", &r, &e), 0);
	res_round_trip(&r, "{}");
	assert_int_equal(e.n, 0);
}

/* ---- GPU assignment through the registry ---- */

struct gfx {
	char *dir;
	struct registry *r;
	struct capacity cap;
};

static void gfx_open(struct gfx *f)
{
	struct registry_backend *b = NULL;
	struct verr e = {};

	assert_int_equal(registry_file_open(f->dir, &b), 0);
	if (registry_open(b, &f->r, &e)) {
		char *all = verr_join(&e);

		fail_msg("registry_open: %s", all ? all : "(no message)");
	}
	registry_set_capacity(f->r, &f->cap);
}

static void gfx_reopen(struct gfx *f)
{
	registry_close(f->r);
	f->r = NULL;
	gfx_open(f);
}

static int gfx_setup(void **state)
{
	struct gfx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tmpdir_new("capacity");
	cap_init(&f->cap, 8000, 16384, 2, 0, 0);
	gfx_open(f);
	*state = f;
	return 0;
}

static int gfx_teardown(void **state)
{
	struct gfx *f = *state;
	int err;

	registry_close(f->r);
	err = tmpdir_remove(f->dir);
	free(f);
	return err;
}

/* Apply {"name", "ports": [], "resources": res} through the API (res NULL: none). */
static int gapply(struct gfx *f, const char *name, const char *res, struct verr *e)
{
	struct service_spec s;
	struct json_object *obj;
	struct verr pe = {};
	char json[1024];
	int err;

	snprintf(json, sizeof(json), "{\"name\": \"%s\", \"ports\": []%s%s}", name,
		 res ? ", \"resources\": " : "", res ? res : "");
	obj = json_tokener_parse(json);
	assert_non_null(obj);
	assert_int_equal(spec_from_json(obj, name, &s, &pe), 0);
	json_object_put(obj);
	err = registry_service_apply(f->r, &s, ORIGIN_API, e);
	spec_free(&s);
	return err;
}

static void gapply_ok(struct gfx *f, const char *name, const char *res)
{
	struct verr e = {};

	if (gapply(f, name, res, &e)) {
		char *all = verr_join(&e);

		fail_msg("apply %s %s: %s", name, res ? res : "-", all ? all : "(no message)");
	}
}

/* The assignment is exactly want: {gpu, service} pairs sorted by GPU id, NULL-terminated. */
static void assert_gpus(struct gfx *f, const char *const want[][2])
{
	const struct reg_state *st = registry_state(f->r);
	size_t n = 0;

	while (want[n][0])
		n++;
	if (st->n_gpus != n)
		fail_msg("%zu GPUs assigned, want %zu", st->n_gpus, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(st->gpus[i].gpu, want[i][0]);
		assert_string_equal(st->gpus[i].service, want[i][1]);
		assert_string_equal(registry_gpu_owner(st, want[i][0]), want[i][1]);
	}
}

static void test_gpu_assign_persists(void **state)
{
	struct gfx *f = *state;
	const struct reg_state *st;
	struct verr e = {};
	static const char *const both[][2] = { { "gpu0", "beta" }, { "gpu1", "alpha" }, { NULL } };
	static const char *const beta_only[][2] = { { "gpu0", "beta" }, { NULL } };
	static const char *const gamma_too[][2] = { { "gpu0", "beta" },
						    { "gpu1", "gamma" },
						    { NULL } };

	gapply_ok(f, "alpha", "{\"gpus\": [\"gpu1\"]}");
	gapply_ok(f, "beta", "{\"gpus\": 1}");
	for (int round = 0; round < 2; round++) {
		st = registry_state(f->r);
		assert_int_equal(st->rev, 2);
		assert_gpus(f, both);
		assert_int_equal(st->gpus[0].mod_rev, 2);
		assert_int_equal(st->gpus[1].mod_rev, 1);
		assert_null(registry_gpu_owner(st, "gpu2"));
		assert_int_equal(registry_service(f->r, "beta")->spec.res.gpu_count, 1);
		assert_string_equal(registry_service(f->r, "alpha")->spec.res.gpu_ids[0], "gpu1");
		gfx_reopen(f);
	}
	/* the same specs again change nothing */
	gapply_ok(f, "beta", "{\"gpus\": 1}");
	gapply_ok(f, "alpha", "{\"gpus\": [\"gpu1\"]}");
	assert_int_equal(registry_state(f->r)->rev, 2);

	/* deleting alpha frees gpu1, for the next one */
	assert_int_equal(registry_service_delete(f->r, "alpha", &e), 0);
	assert_int_equal(e.n, 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(registry_state(f->r)->rev, 3);
		assert_gpus(f, beta_only);
		assert_null(registry_gpu_owner(registry_state(f->r), "gpu1"));
		gfx_reopen(f);
	}
	gapply_ok(f, "gamma", "{\"gpus\": 1}");
	assert_gpus(f, gamma_too);
	gfx_reopen(f);
	assert_gpus(f, gamma_too);
}

/* A service asking for a count keeps the GPU it has when others come and go. */
static void test_gpu_assign_stable(void **state)
{
	struct gfx *f = *state;
	struct verr e = {};
	static const char *const one[][2] = { { "gpu0", "beta" }, { NULL } };
	static const char *const two[][2] = { { "gpu0", "beta" }, { "gpu1", "alpha" }, { NULL } };
	static const char *const moved[][2] = { { "gpu0", "beta" }, { "gpu1", "aaa" }, { NULL } };

	gapply_ok(f, "beta", "{\"gpus\": 1}");
	assert_gpus(f, one);
	/* alpha sorts before beta, and the lowest free id would be gpu0: beta keeps it */
	gapply_ok(f, "alpha", "{\"gpus\": 1}");
	assert_gpus(f, two);
	assert_int_equal(registry_state(f->r)->gpus[0].mod_rev, 1);
	gfx_reopen(f);
	assert_gpus(f, two);

	/* beta changes something else: it keeps gpu0 */
	gapply_ok(f, "beta", "{\"gpus\": 1, \"cpus\": 1}");
	assert_gpus(f, two);
	assert_int_equal(registry_state(f->r)->gpus[0].mod_rev, 1);

	/* alpha goes, aaa comes: gpu1 is the free one */
	assert_int_equal(registry_service_delete(f->r, "alpha", &e), 0);
	gapply_ok(f, "aaa", "{\"gpus\": 1}");
	assert_gpus(f, moved);
	assert_int_equal(registry_state(f->r)->gpus[0].mod_rev, 1);
}

static void test_gpu_unknown_id(void **state)
{
	struct gfx *f = *state;
	struct verr e = {};

	assert_int_equal(gapply(f, "alpha", "{\"gpus\": [\"gpu0\", \"gpu9\"]}", &e), -EINVAL);
	assert_verr_one(
		&e, "alpha: resources.gpus[1]: unknown GPU \"gpu9\" (capacity.gpus: gpu0, gpu1)",
		"unknown id");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 0);
	assert_null(registry_service(f->r, "alpha"));
	assert_int_equal(registry_state(f->r)->n_gpus, 0);

	/* no GPUs configured at all: admission refuses first */
	f->cap.n_gpus = 0;
	assert_int_equal(gapply(f, "alpha", "{\"gpus\": [\"gpu0\"]}", &e), -ENOSPC);
	assert_verr_one(&e, "alpha: gpus: requested 1 (gpu0), free 0 of 0", "no GPUs");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 0);
	assert_int_equal(registry_state(f->r)->n_gpus, 0);
}

static void test_gpu_same_id_twice(void **state)
{
	struct gfx *f = *state;
	struct verr e = {};
	static const char *const held[][2] = { { "gpu1", "beta" }, { NULL } };

	cap_init(&f->cap, 8000, 16384, 3, 0, 0);
	gapply_ok(f, "beta", "{\"gpus\": [\"gpu1\"]}");
	assert_int_equal(gapply(f, "gamma", "{\"gpus\": [\"gpu1\"]}", &e), -EINVAL);
	assert_verr_one(&e,
			"gamma: resources.gpus[0]: GPU \"gpu1\" is also asked for by service "
			"'beta'",
			"after the holder");
	verr_free(&e);
	/* the newcomer sorts before the holder: still the newcomer is refused */
	assert_int_equal(gapply(f, "alpha", "{\"gpus\": [\"gpu0\", \"gpu1\"]}", &e), -EINVAL);
	assert_verr_one(&e,
			"alpha: resources.gpus[1]: GPU \"gpu1\" is also asked for by service "
			"'beta'",
			"before the holder");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 1);
	assert_int_equal(registry_state(f->r)->n_svcs, 1);
	assert_gpus(f, held);
}

/* Asking for more GPUs than are free is refused by admission, and nothing changes. */
static void test_gpu_over_asked(void **state)
{
	struct gfx *f = *state;
	struct verr e = {};
	char path[PATH_MAX], *before, *after;
	static const char *const held[][2] = { { "gpu0", "alpha" }, { "gpu1", "alpha" }, { NULL } };

	gapply_ok(f, "alpha", "{\"gpus\": 2}");
	assert_gpus(f, held);
	snprintf(path, sizeof(path), "%s/registry.wal", f->dir);
	before = read_text(path, NULL);
	assert_non_null(before);

	assert_int_equal(gapply(f, "beta", "{\"gpus\": 1}", &e), -ENOSPC);
	assert_verr_one(&e, "beta: gpus: requested 1, free 0 of 2 (alpha 2)", "over by count");
	verr_free(&e);
	assert_int_equal(gapply(f, "alpha", "{\"gpus\": 3}", &e), -ENOSPC);
	assert_verr_one(&e, "alpha: gpus: requested 3, free 2 of 2", "grow past capacity");
	verr_free(&e);
	assert_int_equal(gapply(f, "beta", "{\"gpus\": [\"gpu0\"]}", &e), -ENOSPC);
	/* the ids asked for are named: which GPU could not be had */
	assert_verr_one(&e, "beta: gpus: requested 1 (gpu0), free 0 of 2 (alpha 2)", "over by id");
	verr_free(&e);

	assert_int_equal(registry_state(f->r)->rev, 1);
	assert_null(registry_service(f->r, "beta"));
	assert_int_equal(registry_service(f->r, "alpha")->spec.res.gpu_count, 2);
	assert_gpus(f, held);
	after = read_text(path, NULL);
	assert_non_null(after);
	assert_string_equal(after, before);
	free(after);
	free(before);

	/* shrinking alpha makes room */
	gapply_ok(f, "alpha", "{\"gpus\": 1}");
	gapply_ok(f, "beta", "{\"gpus\": 1}");
	{
		static const char *const split[][2] = { { "gpu0", "alpha" },
							{ "gpu1", "beta" },
							{ NULL } };

		assert_gpus(f, split);
	}
}

/* Capacity shrank: commits of other changes go through, "caelumctl run" of a service that no
 * longer fits does not. */
static void test_admit_service_after_shrink(void **state)
{
	struct gfx *f = *state;
	struct verr e = {};

	gapply_ok(f, "alpha", "{\"cpus\": 4, \"memory_mb\": 1024}");
	gapply_ok(f, "beta", "{\"cpus\": 2}");
	assert_int_equal(registry_admit_service(f->r, "alpha", &e), 0);
	assert_int_equal(registry_admit_service(f->r, "beta", &e), 0);
	assert_int_equal(e.n, 0);

	f->cap.cpus_milli = 6000;
	f->cap.reserved_cpus_milli = 1000; /* 5 allocatable, 6 held */
	assert_int_equal(registry_admit_service(f->r, "beta", &e), -ENOSPC);
	assert_verr_one(&e, "beta: cpus: requested 2, free 1 of 5 (alpha 4)", "beta after shrink");
	verr_free(&e);
	assert_int_equal(registry_admit_service(f->r, "alpha", &e), -ENOSPC);
	assert_verr_one(&e, "alpha: cpus: requested 4, free 3 of 5 (beta 2)", "alpha after shrink");
	verr_free(&e);
	/* a service that reserves nothing, or is not registered, is not measured */
	gapply_ok(f, "gamma", NULL);
	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(registry_admit_service(f->r, "gamma", &e), 0);
	assert_int_equal(registry_admit_service(f->r, "ghost", &e), 0);
	assert_int_equal(e.n, 0);
	/* unchanged over-capacity services survive a commit of anything else */
	gapply_ok(f, "gamma", "{\"tasks\": 10}");
	assert_int_equal(registry_state(f->r)->rev, 4);
	/* but growing one of them is refused */
	assert_int_equal(gapply(f, "beta", "{\"cpus\": 3}", &e), -ENOSPC);
	assert_verr_one(&e, "beta: cpus: requested 3, free 1 of 5 (alpha 4)", "grow after shrink");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 4);

	/* no capacity set: nothing is measured */
	registry_set_capacity(f->r, NULL);
	assert_int_equal(registry_admit_service(f->r, "beta", &e), 0);
	gapply_ok(f, "beta", "{\"cpus\": 300}");
	assert_int_equal(e.n, 0);
}

/* ---- the device ownership predicate ---- */

static void test_dev_owner_match(void **state)
{
	static const struct {
		__u64 owner;
		__u16 flags;
		__u64 ancestor;
		int match;
		const char *why;
	} cases[] = {
		{ 1001, CAELUM_DEV_F_ASSIGNED, 1001, 1, "owner's cgroup" },
		{ 1001, CAELUM_DEV_F_ASSIGNED, 1002, 0, "another service" },
		{ 1001, CAELUM_DEV_F_ASSIGNED, 0, 0, "task above the owner's level" },
		{ CAELUM_CGID_NONE, CAELUM_DEV_F_ASSIGNED, 0, 0, "assigned to nobody, ancestor 0" },
		{ CAELUM_CGID_NONE, CAELUM_DEV_F_ASSIGNED, 1001, 0, "assigned to nobody" },
		{ 1001, 0, 1001, 0, "not assigned" },
		{ CAELUM_CGID_NONE, 0, 0, 0, "not assigned, ancestor 0" },
		{ 1001, 0x0002, 1001, 0, "other flags only" },
		{ 1001, 0x0002 | CAELUM_DEV_F_ASSIGNED, 1001, 1, "assigned among other flags" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct caelum_dev_rule rule = { .owner_cgid = cases[i].owner,
						.owner_level = 2,
						.flags = cases[i].flags,
						.gpu_index = 0 };

		if (caelum_dev_owner_match(&rule, cases[i].ancestor) != cases[i].match)
			fail_msg("case %zu (%s): want %d", i, cases[i].why, cases[i].match);
	}
}

/* runs_here: the services named in ctx (a NULL-terminated list). */
static bool runs_in(void *ctx, const char *service)
{
	for (const char *const *n = ctx; *n; n++)
		if (!strcmp(*n, service))
			return true;
	return false;
}

/* A registry shared by several hosts counts only what runs here (8 CPUs here). */
static void test_admit_per_host(void **state)
{
	static const char *running[] = { NULL, NULL };
	struct gfx *f = *state;
	struct verr e = {};

	registry_set_placement(f->r, &(struct reg_placement){ runs_in, running });
	gapply_ok(f, "alpha", "{\"cpus\": 6}");
	gapply_ok(f, "beta", "{\"cpus\": 6}"); /* runs nowhere here yet */
	running[0] = "alpha";
	assert_int_equal(registry_admit_service(f->r, "alpha", &e), 0);
	assert_int_equal(registry_admit_service(f->r, "beta", &e), -ENOSPC);
	assert_verr_one(&e, "beta: cpus: requested 6, free 2 of 8 (alpha 6)", "next to alpha");
	verr_free(&e);
	/* a change of what runs here is admitted here */
	assert_int_equal(gapply(f, "alpha", "{\"cpus\": 9}", &e), -ENOSPC);
	verr_free(&e);
	/* one host (no placement): every registered service counts */
	registry_set_placement(f->r, NULL);
	assert_int_equal(registry_admit_service(f->r, "alpha", &e), -ENOSPC);
	verr_free(&e);
}

#define T(t) cmocka_unit_test(t)
#define D(t) cmocka_unit_test_setup_teardown(t, tmpdir_setup, tmpdir_teardown)
#define G(t) cmocka_unit_test_setup_teardown(t, gfx_setup, gfx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_admit_fractions),
		T(test_admit_exact_fit),
		T(test_admit_reserved),
		T(test_admit_unchanged_over),
		T(test_admit_refused_independently),
		T(test_admit_no_reservation_ignored),
		T(test_admit_holders),
		T(test_milli_fmt),
		T(test_resources_gpus),
		T(test_capacity_bad),
		T(test_capacity_all_errors),
		D(test_capacity_regular_file),
		T(test_capacity_good),
		T(test_gpu_id_valid),
		T(test_resources_bad),
		T(test_resources_good),
		G(test_gpu_assign_persists),
		G(test_gpu_assign_stable),
		G(test_gpu_unknown_id),
		G(test_gpu_same_id_twice),
		G(test_gpu_over_asked),
		G(test_admit_service_after_shrink),
		G(test_admit_per_host),
		T(test_dev_owner_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
