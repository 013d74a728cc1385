// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Events: the exact JSON made from a kernel record and from event_new(), numbering that
 * survives a restart (journal replay), query filters, subscribers, and short records.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <cmocka.h>

#include "events.h"
#include "testutil.h"

#define HOST	     "node-1"
#define ALPHA_CGID   1001ULL
#define BETA_CGID    1002ULL
#define UNKNOWN_CGID 5555ULL

struct fx {
	char *dir;
	struct events *ev;
	int name_calls;
	int zero_lookups; /* name_of asked about CAELUM_CGID_NONE: must stay 0 */
};

static const char *fake_name_of(void *ctx, uint64_t cgid)
{
	struct fx *f = ctx;

	f->name_calls++;
	if (cgid == CAELUM_CGID_NONE)
		f->zero_lookups++;
	if (cgid == ALPHA_CGID)
		return "alpha";
	if (cgid == BETA_CGID)
		return "beta";
	return NULL;
}

static void fx_open(struct fx *f)
{
	struct events_opts o = {
		.host = HOST,
		.state_dir = f->dir,
		.journal_max_bytes = 64U << 20,
		.journal_keep = 2,
		.name_of = fake_name_of,
		.name_ctx = f,
	};

	assert_int_equal(events_open(&f->ev, &o), 0);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tmpdir_new("events");
	fx_open(f);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	int err;

	events_close(f->ev);
	err = tmpdir_remove(f->dir);
	free(f);
	return err;
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* All events so far, oldest first. */
static struct json_object *query_all(struct fx *f)
{
	struct event_filter flt = {};

	return events_query(f->ev, &flt);
}

/* The single newest event (a new reference). */
static struct json_object *last_event(struct fx *f)
{
	struct event_filter flt = { .limit = 1 };
	struct json_object *arr = events_query(f->ev, &flt), *e;

	assert_int_equal(json_object_array_length(arr), 1);
	e = json_object_get(json_object_array_get_idx(arr, 0));
	json_object_put(arr);
	return e;
}

static struct json_object *field(struct json_object *e, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(e, key, &v))
		fail_msg("no field \"%s\" in %s", key, json_object_to_json_string(e));
	return v;
}

static void assert_str(struct json_object *e, const char *key, const char *want)
{
	struct json_object *v = field(e, key);

	if (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), want))
		fail_msg("\"%s\" is %s, want \"%s\"", key, json_object_to_json_string(v), want);
}

static void assert_int(struct json_object *e, const char *key, int64_t want)
{
	struct json_object *v = field(e, key);

	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != want)
		fail_msg("\"%s\" is %s, want %lld", key, json_object_to_json_string(v),
			 (long long)want);
}

static void assert_null_field(struct json_object *e, const char *key)
{
	struct json_object *v = field(e, key);

	if (v)
		fail_msg("\"%s\" is %s, want null", key, json_object_to_json_string(v));
}

static void assert_bool(struct json_object *e, const char *key, bool want)
{
	struct json_object *v = field(e, key);

	if (!json_object_is_type(v, json_type_boolean) || json_object_get_boolean(v) != want)
		fail_msg("\"%s\" is %s, want %s", key, json_object_to_json_string(v),
			 want ? "true" : "false");
}

/* e has exactly the keys in want (NULL-terminated), no more, no fewer. */
static void assert_keys(struct json_object *e, const char *const *want)
{
	size_t n = 0;

	for (; want[n]; n++)
		field(e, want[n]);
	if ((size_t)json_object_object_length(e) != n)
		fail_msg("%d fields, want %zu: %s", json_object_object_length(e), n,
			 json_object_to_json_string(e));
}

/*
 * "2026-11-27T12:00:00.123456789Z": RFC 3339, UTC, nine fractional digits; returns the
 * time it stands for in ns.
 */
static uint64_t parse_time(struct json_object *e)
{
	const char *s = json_object_get_string(field(e, "time"));
	struct tm tm = {};
	unsigned long frac;
	char tail[8];
	int pos = 0;

	assert_int_equal(strlen(s), 30);
	for (int i = 20; i < 29; i++)
		assert_true(s[i] >= '0' && s[i] <= '9');
	assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%9lu%7s%n", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac, tail,
				&pos),
			 8);
	assert_string_equal(tail, "Z");
	assert_int_equal(pos, 30);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (uint64_t)timegm(&tm) * 1000000000ULL + frac;
}

static void assert_time_near(struct json_object *e, uint64_t want_ns)
{
	uint64_t t = parse_time(e);
	uint64_t d = t > want_ns ? t - want_ns : want_ns - t;

	if (d > 500000000ULL)
		fail_msg("time %s is %.3f s away from the expected time",
			 json_object_get_string(field(e, "time")), (double)d / 1e9);
}

static const char *const kernel_keys[] = {
	"id",	"time",	 "host",   "type",  "action", "service", "pid",	 "comm",     "cgroup_id",
	"port", "proto", "family", "owner", "count",  "reason",	 "addr", "followup", NULL,
};

/* ---- kernel records ---- */

static void test_kernel_v4_denied(void **state)
{
	struct fx *f = *state;
	struct caelum_event k = {
		.time_ns = now_ns(CLOCK_MONOTONIC) - 2000000000ULL, /* 2 s ago */
		.cgroup_id = (1ULL << 63) + 5,
		.svc_cgid = BETA_CGID,
		.owner_cgid = CAELUM_CGID_NONE,
		.type = CAELUM_EV_BIND_DENIED,
		.action = CAELUM_ACT_DENIED,
		.pid = 4242,
		.count = 1,
		.bind.port = 8150,
		.bind.proto = IPPROTO_TCP,
		.bind.family = AF_INET,
		.reason = CAELUM_REASON_MANAGED,
		.bind.addr = { 127, 0, 0, 1 },
		.comm = "nc",
	};
	uint64_t want_time = now_ns(CLOCK_REALTIME) - 2000000000ULL;
	struct json_object *e;

	assert_int_equal(events_from_kernel(f->ev, &k, sizeof(k)), 0);
	e = last_event(f);
	assert_keys(e, kernel_keys);
	assert_int(e, "id", 1);
	assert_time_near(e, want_time);
	assert_str(e, "host", HOST);
	assert_str(e, "type", "bind_denied");
	assert_str(e, "action", "denied");
	assert_str(e, "service", "beta");
	assert_int(e, "pid", 4242);
	assert_str(e, "comm", "nc");
	assert_int_equal(json_object_get_uint64(field(e, "cgroup_id")), (1ULL << 63) + 5);
	assert_int(e, "port", 8150);
	assert_str(e, "proto", "tcp");
	assert_str(e, "family", "ipv4");
	assert_null_field(e, "owner");
	assert_int(e, "count", 1);
	assert_str(e, "reason", "managed_range");
	assert_str(e, "addr", "127.0.0.1");
	assert_bool(e, "followup", false);
	json_object_put(e);
	assert_int_equal(f->zero_lookups, 0);
}

static void test_kernel_v6_audited_followup(void **state)
{
	struct fx *f = *state;
	struct caelum_event k = {
		.time_ns = now_ns(CLOCK_MONOTONIC),
		.cgroup_id = 42,
		.svc_cgid = CAELUM_CGID_NONE, /* an unmanaged task */
		.owner_cgid = ALPHA_CGID,
		.type = CAELUM_EV_BIND_DENIED,
		.action = CAELUM_ACT_AUDITED,
		.pid = 7,
		.count = 49,
		.bind.port = 9000,
		.bind.proto = IPPROTO_UDP,
		.bind.family = AF_INET6,
		.flags = CAELUM_EVF_FOLLOWUP,
		.reason = CAELUM_REASON_RESERVED,
	};
	uint64_t want_time = now_ns(CLOCK_REALTIME);
	struct json_object *e;

	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", k.bind.addr), 1);
	memcpy(k.comm, "abcdefghijklmnop", CAELUM_COMM_LEN); /* 16 bytes, no NUL */
	assert_int_equal(events_from_kernel(f->ev, &k, sizeof(k)), 0);
	e = last_event(f);
	assert_keys(e, kernel_keys);
	assert_int(e, "id", 1);
	assert_time_near(e, want_time);
	assert_str(e, "action", "audited");
	assert_null_field(e, "service");
	assert_str(e, "owner", "alpha");
	assert_int(e, "pid", 7);
	assert_str(e, "comm", "abcdefghijklmnop");
	assert_int(e, "cgroup_id", 42);
	assert_int(e, "port", 9000);
	assert_str(e, "proto", "udp");
	assert_str(e, "family", "ipv6");
	assert_int(e, "count", 49);
	assert_str(e, "reason", "reserved");
	assert_str(e, "addr", "2001:db8::1");
	assert_bool(e, "followup", true);
	json_object_put(e);
	assert_int_equal(f->zero_lookups, 0);
	assert_int_equal(f->name_calls, 1); /* only the owner was looked up */
}

static void test_kernel_unaggregated_unknown_service(void **state)
{
	static const char *const keys[] = {
		"id",	  "time",      "host",	   "type",	   "action", "service", "pid",
		"comm",	  "cgroup_id", "port",	   "proto",	   "family", "owner",	"count",
		"reason", "addr",      "followup", "unaggregated", NULL,
	};
	struct fx *f = *state;
	struct caelum_event k = {
		.svc_cgid = UNKNOWN_CGID, /* a cgroup that is no (longer a) service */
		.owner_cgid = BETA_CGID,
		.type = CAELUM_EV_BIND_DENIED,
		.action = CAELUM_ACT_DENIED,
		.count = 1,
		.bind.port = 1,
		.bind.proto = IPPROTO_TCP,
		.bind.family = AF_INET6,
		.flags = CAELUM_EVF_UNAGGREGATED,
		.reason = CAELUM_REASON_RESERVED,
	};
	struct json_object *e;

	assert_int_equal(events_from_kernel(f->ev, &k, sizeof(k) + 8), 0); /* longer is fine */
	e = last_event(f);
	assert_keys(e, keys);
	assert_null_field(e, "service");
	assert_str(e, "owner", "beta");
	assert_str(e, "addr", "::");
	assert_str(e, "comm", "");
	assert_bool(e, "followup", false);
	assert_bool(e, "unaggregated", true);
	json_object_put(e);
}

static void test_kernel_short_record(void **state)
{
	struct fx *f = *state;
	struct caelum_event k = { .type = CAELUM_EV_BIND_DENIED, .count = 1 };
	struct events_counters c;
	struct json_object *all;

	assert_int_equal(events_from_kernel(f->ev, &k, sizeof(k) - 1), -EINVAL);
	assert_int_equal(events_from_kernel(f->ev, &k, 0), -EINVAL);
	all = query_all(f);
	assert_int_equal(json_object_array_length(all), 0);
	json_object_put(all);
	events_get_counters(f->ev, &c);
	assert_int_equal(c.kernel_records, 2);
	assert_int_equal(c.emitted, 0);
	assert_int_equal(c.last_id, 0);
}

/* ---- daemon events ---- */

static void test_event_new_complete(void **state)
{
	static const char *const keys[] = {
		"id",	     "time", "host",  "type",	"action", "service", "pid", "comm",
		"cgroup_id", "port", "proto", "family", "owner",  "count",   NULL,
	};
	struct fx *f = *state;
	uint64_t want_time = now_ns(CLOCK_REALTIME);
	struct json_object *e = event_new(f->ev, "service_applied", "applied");

	json_object_object_add(e, "service", json_object_new_string("alpha"));
	events_emit(f->ev, e);
	e = last_event(f);
	assert_keys(e, keys);
	assert_int(e, "id", 1);
	assert_time_near(e, want_time);
	assert_str(e, "host", HOST);
	assert_str(e, "type", "service_applied");
	assert_str(e, "action", "applied");
	assert_str(e, "service", "alpha");
	assert_null_field(e, "pid");
	assert_null_field(e, "comm");
	assert_null_field(e, "cgroup_id");
	assert_null_field(e, "port");
	assert_null_field(e, "proto");
	assert_null_field(e, "family");
	assert_null_field(e, "owner");
	assert_int(e, "count", 1);
	json_object_put(e);

	/* a count given by the caller is kept; extras too */
	e = event_new(f->ev, "reload_rejected", "refused");
	json_object_object_add(e, "count", json_object_new_int(3));
	json_object_object_add(e, "errors", json_object_new_array());
	events_emit(f->ev, e);
	e = last_event(f);
	assert_int(e, "id", 2);
	assert_int(e, "count", 3);
	assert_null_field(e, "service");
	assert_int_equal(json_object_object_length(e), 15);
	json_object_put(e);
}

static void test_time_format(void **state)
{
	static const struct {
		uint64_t ns;
		const char *want;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000000000Z" },
		{ 999999999ULL, "1970-01-01T00:00:00.999999999Z" },
		{ 1700000000123456789ULL, "2023-11-14T22:13:20.123456789Z" },
		{ 1709164800000000001ULL, "2024-02-29T00:00:00.000000001Z" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_format_rfc3339(cases[i].ns, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	assert_string_equal(event_type_name(CAELUM_EV_BIND_DENIED), "bind_denied");
	assert_string_equal(event_type_name(0), "unknown");
}

/* ---- queries ---- */

static void emit_one(struct fx *f, const char *type, const char *service, const char *owner)
{
	struct json_object *e = event_new(f->ev, type, "x");

	json_object_object_add(e, "service", service ? json_object_new_string(service) : NULL);
	json_object_object_add(e, "owner", owner ? json_object_new_string(owner) : NULL);
	events_emit(f->ev, e);
}

static void assert_ids(struct json_object *arr, const int *want, size_t n, const char *what)
{
	size_t got = json_object_array_length(arr);
	char buf[256] = "";
	size_t off = 0;

	for (size_t i = 0; i < got && off < sizeof(buf) - 16; i++)
		off += snprintf(buf + off, sizeof(buf) - off, " %lld",
				(long long)json_object_get_int64(
					field(json_object_array_get_idx(arr, i), "id")));
	if (got != n)
		fail_msg("%s: %zu events (ids%s), want %zu", what, got, buf, n);
	for (size_t i = 0; i < n; i++)
		if (json_object_get_int64(field(json_object_array_get_idx(arr, i), "id")) !=
		    want[i])
			fail_msg("%s: ids%s, want id %d at %zu", what, buf, want[i], i);
}

static void seed_six(struct fx *f)
{
	emit_one(f, "bind_denied", "alpha", "beta");   /* 1 */
	emit_one(f, "bind_denied", NULL, "alpha");     /* 2 */
	emit_one(f, "service_applied", "beta", NULL);  /* 3 */
	emit_one(f, "bind_denied", "gamma", NULL);     /* 4 */
	emit_one(f, "service_applied", "alpha", NULL); /* 5 */
	emit_one(f, "bind_denied", "beta", "alpha");   /* 6 */
}

static void test_query_filters(void **state)
{
	static const struct {
		struct event_filter f;
		int ids[6];
		size_t n;
	} cases[] = {
		{ {}, { 1, 2, 3, 4, 5, 6 }, 6 },
		{ { .type = "bind_denied" }, { 1, 2, 4, 6 }, 4 },
		{ { .type = "service_applied" }, { 3, 5 }, 2 },
		{ { .service = "alpha" }, { 1, 2, 5, 6 }, 4 }, /* offender or owner */
		{ { .service = "beta" }, { 1, 3, 6 }, 3 },
		{ { .service = "gamma" }, { 4 }, 1 },
		{ { .since_id = 4 }, { 5, 6 }, 2 },
		{ { .limit = 2 }, { 5, 6 }, 2 }, /* newest two, oldest first */
		{ { .limit = 10 }, { 1, 2, 3, 4, 5, 6 }, 6 },
		{ { .type = "bind_denied", .service = "alpha", .limit = 2 }, { 2, 6 }, 2 },
		{ { .type = "bind_denied", .since_id = 1, .limit = 2 }, { 4, 6 }, 2 },
		{ { .service = "beta", .since_id = 1 }, { 3, 6 }, 2 },
		{ { .type = "nope" }, { 0 }, 0 },
		{ { .service = "zzz" }, { 0 }, 0 },
		{ { .since_id = 6 }, { 0 }, 0 },
	};
	struct fx *f = *state;

	seed_six(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *arr = events_query(f->ev, &cases[i].f);
		char what[32];

		snprintf(what, sizeof(what), "filter %zu", i);
		assert_ids(arr, cases[i].ids, cases[i].n, what);
		json_object_put(arr);
	}
}

/* Numbering and the query window survive a restart: the journal is replayed. */
static void test_ids_continue_after_reopen(void **state)
{
	static const int want[] = { 1, 2, 3, 4, 5, 6, 7 };
	static const int alpha[] = { 1, 2, 5, 6, 7 };
	struct event_filter flt = { .service = "alpha" };
	struct fx *f = *state;
	struct events_counters c;
	struct json_object *arr;

	seed_six(f);
	events_close(f->ev);
	f->ev = NULL;
	fx_open(f);
	events_get_counters(f->ev, &c);
	assert_int_equal(c.last_id, 6);
	assert_int_equal(c.emitted, 0);
	emit_one(f, "bind_denied", "alpha", NULL);
	arr = query_all(f);
	assert_ids(arr, want, 7, "after reopen");
	json_object_put(arr);
	arr = events_query(f->ev, &flt);
	assert_ids(arr, alpha, 5, "filter after reopen");
	json_object_put(arr);
	events_get_counters(f->ev, &c);
	assert_int_equal(c.last_id, 7);
	assert_int_equal(c.emitted, 1);
	assert_int_equal(c.journal_errors, 0);
}

/* The window keeps the newest EVENTS_WINDOW events. */
static void test_window_bounded(void **state)
{
	struct fx *f = *state;
	struct json_object *arr;

	for (int i = 0; i < EVENTS_WINDOW + 3; i++)
		emit_one(f, "tick", NULL, NULL);
	arr = query_all(f);
	assert_int_equal(json_object_array_length(arr), EVENTS_WINDOW);
	assert_int_equal(json_object_get_int64(field(json_object_array_get_idx(arr, 0), "id")), 4);
	assert_int_equal(json_object_get_int64(
				 field(json_object_array_get_idx(arr, EVENTS_WINDOW - 1), "id")),
			 EVENTS_WINDOW + 3);
	json_object_put(arr);
}

/* ---- subscribers ---- */

struct seen {
	int64_t ids[8];
	int n;
};

static void on_event(void *ctx, struct json_object *ev)
{
	struct seen *s = ctx;

	assert_true(s->n < 8);
	s->ids[s->n++] = json_object_get_int64(field(ev, "id"));
}

static void test_subscribers(void **state)
{
	struct fx *f = *state;
	struct seen a = {}, b = {};
	int ida, idb;

	ida = events_subscribe(f->ev, on_event, &a);
	idb = events_subscribe(f->ev, on_event, &b);
	assert_true(ida > 0);
	assert_true(idb > 0);
	assert_int_not_equal(ida, idb);
	emit_one(f, "one", NULL, NULL);
	emit_one(f, "two", NULL, NULL);
	events_unsubscribe(f->ev, ida);
	emit_one(f, "three", NULL, NULL);
	events_unsubscribe(f->ev, idb);
	emit_one(f, "four", NULL, NULL);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.ids[0], 1);
	assert_int_equal(a.ids[1], 2);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.ids[2], 3);
	/* a kernel record reaches subscribers too */
	idb = events_subscribe(f->ev, on_event, &b);
	{
		struct caelum_event k = { .type = CAELUM_EV_BIND_DENIED,
					  .count = 1,
					  .bind.port = 5 };

		assert_int_equal(events_from_kernel(f->ev, &k, sizeof(k)), 0);
	}
	assert_int_equal(b.n, 4);
	assert_int_equal(b.ids[3], 5);
	events_unsubscribe(f->ev, idb);
}

#define F(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		F(test_kernel_v4_denied),
		F(test_kernel_v6_audited_followup),
		F(test_kernel_unaggregated_unknown_service),
		F(test_kernel_short_record),
		F(test_event_new_complete),
		cmocka_unit_test(test_time_format),
		F(test_query_filters),
		F(test_ids_continue_after_reopen),
		F(test_window_bounded),
		F(test_subscribers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
