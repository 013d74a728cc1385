// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The handlers (user/handlers/handlers*.c) without a daemon: a context of a file-backend registry
 * in a temporary directory, an events journal and a stand-in for the kernel apply (hxfix.h).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "hxfix.h"

#define WEB "{\"spec\":{\"name\":\"web\",\"ports\":[\"47010/tcp\"]}}"

static int setup(void **state)
{
	*state = hxfix_new();
	return 0;
}

static int teardown(void **state)
{
	return hxfix_free(*state);
}

/* A mutation commits to the registry on disk and answers with the revision it committed. */
static void test_reserve_answers_revision(void **state)
{
	struct hxfix *f = *state;
	struct json_object *res, *list;
	struct registry_backend *b;
	struct registry *again;
	struct verr e = {};
	uint64_t rev_apply, rev_reserve, rev_noop;
	unsigned int applies;

	res = hxfix_ok_rev(f, "service.apply", WEB, &rev_apply);
	assert_string_equal(hxfix_str(res, "name"), "web");
	assert_false(json_object_object_get_ex(res, "revision", NULL)); /* results as before */
	assert_true(rev_apply > 0);
	assert_int_equal(rev_apply, registry_last_commit(f->reg));
	json_object_put(res);

	applies = f->applies;
	res = hxfix_ok_rev(f, "port.reserve", "{\"port\":47011,\"service\":\"web\"}", &rev_reserve);
	assert_int_equal(hxfix_int(res, "port"), 47011);
	assert_string_equal(hxfix_str(res, "proto"), "tcp");
	assert_string_equal(hxfix_str(res, "service"), "web");
	assert_int_equal(json_object_object_length(res), 3);
	assert_true(rev_reserve > rev_apply);
	assert_int_equal(rev_reserve, registry_last_commit(f->reg));
	assert_int_equal(f->applies, applies + 1); /* the watch told the kernel side once */
	json_object_put(res);

	/* Reserving what the service holds is a no-op success: nothing committed, no revision. */
	res = hxfix_ok_rev(f, "port.reserve", "{\"port\":47011,\"service\":\"web\"}", &rev_noop);
	assert_int_equal(rev_noop, 0);
	assert_int_equal(registry_last_commit(f->reg), rev_reserve);
	json_object_put(res);
	/* ... and tells nobody that something changed: one port_reserved, the first call's. */
	list = hxfix_ok(f, "events.list", "{\"type\":\"port_reserved\"}");
	assert_int_equal(json_object_array_length(list), 1);
	json_object_put(list);

	/* Reads carry no revision; the reservation is listed with its origin. */
	list = hxfix_ok(f, "port.list", NULL);
	assert_int_equal(json_object_array_length(list), 2);
	res = json_object_array_get_idx(list, 1);
	assert_int_equal(hxfix_int(res, "port"), 47011);
	assert_string_equal(hxfix_str(res, "origin"), "runtime");
	json_object_put(list);

	/* It is on disk: a second registry over the same directory sees it. */
	registry_close(f->reg);
	f->reg = NULL;
	assert_int_equal(registry_file_open(f->dir, &b), 0);
	assert_int_equal(registry_open(b, &again, &e), 0);
	assert_string_equal(registry_owner(again, 47011, IPPROTO_TCP, NULL), "web");
	assert_int_equal(registry_state(again)->rev, rev_reserve);
	f->reg = again;
}

/* A committed revision the kernel side failed to apply is that call's error. */
static void test_apply_failure_is_the_callers(void **state)
{
	struct hxfix *f = *state;
	struct json_object *res = NULL;
	struct herr err;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	f->apply_err = -EIO;
	assert_int_equal(hxfix_call(f, "port.reserve", "{\"port\":47012,\"service\":\"web\"}",
				    "socket", &res, &err),
			 -1);
	assert_null(res);
	assert_int_equal(err.exit, EXIT_FAIL);
	assert_non_null(strstr(err.message, "could not be applied: Input/output error"));
	assert_int_equal(err.revision, registry_last_commit(f->reg)); /* which one failed */
	/* Committed all the same: the registry is the truth, the apply is retried later. */
	assert_string_equal(registry_owner(f->reg, 47012, IPPROTO_TCP, NULL), "web");
}

/* Bad arguments are usage errors naming the field. */
static void test_bad_argument_names_field(void **state)
{
	static const struct {
		const char *method, *params, *field;
		int exit;
	} cases[] = {
		{ "port.reserve", "{\"port\":70000,\"service\":\"web\"}", "port", EXIT_USAGE },
		{ "port.reserve", "{\"port\":\"80\",\"service\":\"web\"}", "port", EXIT_USAGE },
		{ "port.reserve", "{\"service\":\"web\"}", "port", EXIT_USAGE },
		{ "port.reserve", "{\"port\":47013,\"service\":\"Web!\"}", "service", EXIT_USAGE },
		{ "port.reserve", "{\"port\":47013,\"proto\":\"sctp\",\"service\":\"web\"}",
		  "proto", EXIT_USAGE },
		{ "port.reserve", "{\"port\":47013,\"service\":\"web\",\"bogus\":1}", "bogus",
		  EXIT_USAGE },
		{ "events.list", "{\"limit\":0}", "limit", EXIT_USAGE },
		{ "events.list", "{\"service\":\"../x\"}", "service", EXIT_USAGE },
		{ "events.list", "{\"type\":\"Bind Denied\"}", "type", EXIT_USAGE },
		{ "service.apply", "{\"spec\":{\"name\":\"x\",\"ports\":[\"99999/tcp\"]}}", "ports",
		  EXIT_CONFIG },
		{ "port.reserve", "{\"port\":47013,\"service\":\"ghost\"}", "ghost", EXIT_CONFIG },
	};
	struct hxfix *f = *state;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *res = NULL;
		struct herr err;
		uint64_t before = registry_last_commit(f->reg);

		assert_int_equal(
			hxfix_call(f, cases[i].method, cases[i].params, "socket", &res, &err), -1);
		assert_null(res);
		if (err.exit != cases[i].exit || !strstr(err.message, cases[i].field))
			fail_msg("%s %s: exit %d \"%s\", wanted exit %d naming \"%s\"",
				 cases[i].method, cases[i].params, err.exit, err.message,
				 cases[i].exit, cases[i].field);
		assert_int_equal(registry_last_commit(f->reg), before); /* nothing committed */
		json_object_put(err.errors);
	}
}

/* ... and the value that was refused, whatever its type: the exact wording. */
static void test_bad_argument_names_value(void **state)
{
	static const struct {
		const char *method, *params, *message;
	} cases[] = {
		{ "port.reserve", "{\"port\":47013,\"service\":5}",
		  "params: service: expected string, got integer 5" },
		{ "port.reserve", "{\"port\":47013,\"service\":\"web\",\"proto\":[\"tcp\"]}",
		  "params: proto: expected string, got array [...]" },
		{ "run.started", "{\"name\":\"web\",\"pid\":7,\"command\":\"ls -l\"}",
		  "params: command: expected a non-empty array of strings, got \"ls -l\"" },
		{ "run.started", "{\"name\":\"web\",\"pid\":7,\"command\":[\"ls\",false]}",
		  "params: command[1]: expected string, got boolean false" },
		{ "events.ingest",
		  "{\"host\":\"peer\",\"events\":[{\"type\":\"bind_denied\",\"action\":\"deny\","
		  "\"time\":\"x12345678901234567890123456789012345678901234567890123456789012345\"}"
		  "]}",
		  "params: events[0].time: \"x1234567890123456789012345678901...\" is longer than "
		  "64 "
		  "characters (66)" },
	};
	struct hxfix *f = *state;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *res = NULL;
		struct herr err;
		uint64_t before = registry_last_commit(f->reg);

		assert_int_equal(
			hxfix_call(f, cases[i].method, cases[i].params, "socket", &res, &err), -1);
		if (err.exit != EXIT_USAGE || strcmp(err.message, cases[i].message))
			fail_msg("%s %s: exit %d \"%s\", wanted exit %d \"%s\"", cases[i].method,
				 cases[i].params, err.exit, err.message, EXIT_USAGE,
				 cases[i].message);
		assert_int_equal(registry_last_commit(f->reg), before); /* nothing committed */
		json_object_put(err.errors);
	}
}

static void test_unknown_and_unavailable(void **state)
{
	struct hxfix *f = *state;
	struct json_object *res = NULL;
	struct herr err;

	assert_int_equal(hxfix_call(f, "port.steal", NULL, "socket", &res, &err), -1);
	assert_true(err.unknown_method);
	assert_string_equal(err.message, "unknown method 'port.steal'");
	/* What only the daemon can do is refused when the context has no op for it. */
	assert_int_equal(hxfix_call(f, "status", NULL, "socket", &res, &err), -1);
	assert_int_equal(err.exit, EXIT_UNAVAILABLE);
	assert_string_equal(err.message, "status is not available here");
	assert_int_equal(hxfix_call(f, "reload", NULL, "socket", &res, &err), -1);
	assert_int_equal(err.exit, EXIT_UNAVAILABLE);
	/* The token: shown over the control socket only. */
	assert_int_equal(hxfix_call(f, "token.show", NULL, "http", &res, &err), -1);
	assert_int_equal(err.exit, EXIT_NOPERM);
	res = hxfix_ok(f, "token.show", NULL);
	assert_string_equal(hxfix_str(res, "token"), f->token);
	json_object_put(res);
}

static int reloads;

static int fake_reload(void *owner, struct hreload *w, struct verr *e, size_t *port_entries)
{
	(void)owner;
	(void)w;
	reloads++;
	if (reloads > 1) {
		verr_add(e, "caelum.json", "http.listen", "changed: this needs a restart");
		return -EINVAL;
	}
	*port_entries = 42;
	return 0;
}

/* reload goes through the context's callback; a refusal carries every reason. */
static void test_reload_callback(void **state)
{
	struct hxfix *f = *state;
	struct json_object *res = NULL, *errors;
	struct herr err;

	f->ops.reload = fake_reload;
	reloads = 0;
	res = hxfix_ok(f, "reload", NULL);
	assert_int_equal(reloads, 1);
	assert_int_equal(hxfix_int(res, "port_entries"), 42);
	assert_int_equal(hxfix_int(res, "registry_revision"), (int64_t)registry_state(f->reg)->rev);
	json_object_put(res);
	assert_int_equal(hxfix_call(f, "reload", NULL, "socket", &res, &err), -1);
	assert_int_equal(err.exit, EXIT_CONFIG);
	assert_non_null(strstr(err.message, "http.listen"));
	errors = err.errors;
	assert_non_null(errors);
	assert_int_equal(json_object_array_length(errors), 1);
	json_object_put(errors);
}

static void assert_keys(struct json_object *o, const char *const *keys)
{
	size_t n = 0;

	for (; keys[n]; n++)
		if (!json_object_object_get_ex(o, keys[n], NULL))
			fail_msg("no \"%s\" in %s", keys[n], json_object_to_json_string(o));
	assert_int_equal(json_object_object_length(o), n);
}

/* The port map view: its JSON shape, claims and denials merged by port. */
static void test_port_map_shape(void **state)
{
	static const char *const top[] = { "ranges", "managed_ports", "ports", NULL };
	static const char *const range[] = { "range", "lo", "hi", "proto", NULL };
	static const char *const port[] = { "port",
					    "proto",
					    "service",
					    "managed",
					    "denials",
					    "last_offender_service",
					    "last_offender_comm",
					    NULL };
	struct hxfix *f = *state;
	struct json_object *res, *ports, *p, *e;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	json_object_put(hxfix_ok(f, "port.reserve", "{\"port\":47150,\"service\":\"web\"}"));
	e = event_new(f->ev, "bind_denied", "denied");
	json_object_object_add(e, "port", json_object_new_int(47150));
	json_object_object_add(e, "proto", json_object_new_string("tcp"));
	json_object_object_add(e, "comm", json_object_new_string("squatter"));
	json_object_object_add(e, "count", json_object_new_int(3));
	events_emit(f->ev, e);

	res = hxfix_ok(f, "port.map", NULL);
	assert_keys(res, top);
	assert_int_equal(hxfix_int(res, "managed_ports"), 100);
	assert_int_equal(json_object_array_length(json_object_object_get(res, "ranges")), 1);
	assert_keys(json_object_array_get_idx(json_object_object_get(res, "ranges"), 0), range);
	ports = json_object_object_get(res, "ports");
	assert_int_equal(json_object_array_length(ports), 2);
	p = json_object_array_get_idx(ports, 0);
	assert_keys(p, port);
	assert_int_equal(hxfix_int(p, "port"), 47010);
	assert_false(json_object_get_boolean(json_object_object_get(p, "managed")));
	assert_int_equal(hxfix_int(p, "denials"), 0);
	p = json_object_array_get_idx(ports, 1);
	assert_int_equal(hxfix_int(p, "port"), 47150);
	assert_string_equal(hxfix_str(p, "service"), "web");
	assert_true(json_object_get_boolean(json_object_object_get(p, "managed")));
	assert_int_equal(hxfix_int(p, "denials"), 3);
	assert_string_equal(hxfix_str(p, "last_offender_comm"), "squatter");
	json_object_put(res);
}

/* service.show: a stopped service's view, and what the context's resources op adds. */
static struct json_object *fake_service_resources(void *owner, const struct reg_service *s)
{
	struct json_object *o = json_object_new_object();

	(void)owner;
	json_object_object_add(o, "of", json_object_new_string(s->spec.name));
	return o;
}

static void test_service_show_shape(void **state)
{
	struct hxfix *f = *state;
	struct json_object *res, *v;
	struct herr err;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	f->ops.service_resources = fake_service_resources;
	res = hxfix_ok(f, "service.show", "{\"name\":\"web\"}");
	assert_string_equal(hxfix_str(res, "name"), "web");
	assert_string_equal(hxfix_str(res, "state"), "stopped");
	assert_string_equal(hxfix_str(res, "origin"), "api");
	assert_int_equal(hxfix_int(res, "processes"), 0);
	assert_true(json_object_object_get_ex(res, "cgroup", &v) && !v);
	assert_true(json_object_object_get_ex(res, "resources", &v));
	assert_string_equal(hxfix_str(v, "of"), "web");
	assert_true(json_object_object_get_ex(res, "recent_denials", &v));
	assert_int_equal(hxfix_int(v, "by_service"), 0);
	json_object_put(res);
	assert_int_equal(hxfix_call(f, "service.show", "{\"name\":\"nope\"}", "socket", &res, &err),
			 -1);
	assert_true(err.not_found);
}

/* ---- calls that wait for their commit (handlers_call_async) ---- */

/* What a transport's reply callback was given. */
struct answer {
	int calls; /* times the reply ran */
	int rc;
	struct json_object *result;
	struct herr err;
};

static void on_answer(void *arg, int rc, struct json_object *result, struct herr *err)
{
	struct answer *a = arg;

	a->calls++;
	a->rc = rc;
	a->result = result;
	a->err = *err;
}

static int call_async(struct hxfix *f, const char *method, const char *params, struct answer *a,
		      struct hcall **pending)
{
	struct caller who = { .uid = 0, .pid = 1, .transport = "socket" };
	struct json_object *p = json_tokener_parse(params), *res = NULL;
	struct hreply reply = { on_answer, a };
	struct herr err;
	int rc;

	assert_non_null(p);
	rc = handlers_call_async(&f->hx, method, p, &who, &res, &err, NULL, &reply, pending);
	json_object_put(p); /* the call holds what it needs */
	if (rc != HANDLERS_PENDING) {
		a->calls++;
		a->rc = rc;
		a->result = res;
		a->err = err;
	}
	return rc;
}

static void answer_free(struct answer *a)
{
	json_object_put(a->result);
	json_object_put(a->err.errors);
}

/* A reservation is answered only once the registry delivered its revision to the model and
 * the kernel side recorded it; until then the caller is free to do anything else. */
static void test_mutation_answers_after_its_commit(void **state)
{
	struct hxfix *f = *state;
	struct answer a = {};
	struct hcall *pending = NULL;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47030,\"service\":\"web\"}", &a, &pending),
		HANDLERS_PENDING);
	assert_non_null(pending);
	assert_int_equal(a.calls, 0);
	/* not in the model yet: the commit is, the watch has not been read */
	assert_null(registry_owner(f->reg, 47030, IPPROTO_TCP, NULL));
	/* other requests are answered meanwhile */
	json_object_put(hxfix_ok(f, "port.list", NULL));
	hxfix_settle(f, &a.calls, 5000);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.rc, 0);
	assert_int_equal(hxfix_int(a.result, "port"), 47030);
	assert_string_equal(hxfix_str(a.result, "service"), "web");
	assert_true(a.err.revision > 0);
	assert_int_equal(a.err.revision, registry_state(f->reg)->rev);
	assert_string_equal(registry_owner(f->reg, 47030, IPPROTO_TCP, NULL), "web");
	/* once: more polling does not answer again */
	assert_int_equal(registry_poll(f->reg), 0);
	assert_int_equal(a.calls, 1);
	answer_free(&a);
	/* a no-op (already ours) is answered at once, with no revision */
	memset(&a, 0, sizeof(a));
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47030,\"service\":\"web\"}", &a, &pending),
		0);
	assert_int_equal(a.err.revision, 0);
	answer_free(&a);
}

/* Two calls in flight at once: each gets its own revision and its own outcome; a kernel
 * apply that fails is the failure of each revision it took. */
static void test_concurrent_calls_own_revisions(void **state)
{
	struct hxfix *f = *state;
	struct answer a = {}, b = {}, c = {};
	struct hcall *pa, *pb, *pc;
	const struct reg_state *st;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	json_object_put(hxfix_ok(f, "service.apply", "{\"spec\":{\"name\":\"api\",\"ports\":[]}}"));
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47040,\"service\":\"web\"}", &a, &pa),
		HANDLERS_PENDING);
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47041,\"service\":\"api\"}", &b, &pb),
		HANDLERS_PENDING);
	hxfix_settle(f, &b.calls, 5000);
	hxfix_settle(f, &a.calls, 5000);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_true(a.err.revision > 0 && b.err.revision > 0);
	assert_int_not_equal(a.err.revision, b.err.revision);
	st = registry_state(f->reg);
	for (size_t i = 0; i < st->n_resv; i++) {
		if (st->resv[i].port == 47040)
			assert_int_equal(st->resv[i].mod_rev, a.err.revision);
		if (st->resv[i].port == 47041)
			assert_int_equal(st->resv[i].mod_rev, b.err.revision);
	}
	assert_string_equal(hxfix_str(a.result, "service"), "web");
	assert_string_equal(hxfix_str(b.result, "service"), "api");
	answer_free(&a);
	answer_free(&b);

	/* both in flight when the apply of their batch fails: both are told */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_int_equal(call_async(f, "port.release", "{\"port\":47040}", &a, &pa),
			 HANDLERS_PENDING);
	assert_int_equal(call_async(f, "port.release", "{\"port\":47041}", &b, &pb),
			 HANDLERS_PENDING);
	f->apply_err = -EIO;
	hxfix_settle(f, &a.calls, 5000);
	hxfix_settle(f, &b.calls, 5000);
	f->apply_err = 0;
	assert_int_equal(a.rc, -1);
	assert_int_equal(b.rc, -1);
	assert_int_equal(a.err.exit, EXIT_FAIL);
	assert_non_null(strstr(a.err.message, "could not be applied: Input/output error"));
	assert_non_null(strstr(b.err.message, "could not be applied: Input/output error"));
	assert_int_not_equal(a.err.revision, b.err.revision);
	answer_free(&a);
	answer_free(&b);

	/* and a later revision applied well is not tainted by them */
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47042,\"service\":\"web\"}", &c, &pc),
		HANDLERS_PENDING);
	hxfix_settle(f, &c.calls, 5000);
	assert_int_equal(c.rc, 0);
	answer_free(&c);
}

/* The caller went away: its reply never runs, the commit lands all the same, nothing leaks
 * (ASan's leak check in make unit SAN=1). */
static void test_cancelled_call_lands_silently(void **state)
{
	struct hxfix *f = *state;
	struct answer a = {}, b = {};
	struct hcall *pa, *pb;

	json_object_put(hxfix_ok(f, "service.apply", WEB));
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47050,\"service\":\"web\"}", &a, &pa),
		HANDLERS_PENDING);
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47051,\"service\":\"web\"}", &b, &pb),
		HANDLERS_PENDING);
	handlers_cancel(pa);
	hxfix_settle(f, &b.calls, 5000);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.calls, 0);
	assert_string_equal(registry_owner(f->reg, 47050, IPPROTO_TCP, NULL), "web");
	/* a retry of the cancelled one is a no-op success */
	answer_free(&b);
	memset(&b, 0, sizeof(b));
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47050,\"service\":\"web\"}", &b, &pb), 0);
	assert_int_equal(b.rc, 0);
	answer_free(&b);
	/* pending at shutdown: told so, not leaked */
	memset(&b, 0, sizeof(b));
	assert_int_equal(
		call_async(f, "port.reserve", "{\"port\":47052,\"service\":\"web\"}", &b, &pb),
		HANDLERS_PENDING);
	registry_close(f->reg);
	f->reg = NULL;
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.rc, -1);
	assert_int_equal(b.err.exit, EXIT_UNAVAILABLE);
	answer_free(&b);
}

/* A reload the daemon cannot end at once (its commit waits for the registry, or another
 * reload runs first): the daemon holds the callers and answers them later. */
static struct hreload *held[2];
static int held_n, cancelled;

static int pending_reload(void *owner, struct hreload *w, struct verr *e, size_t *port_entries)
{
	(void)owner;
	(void)e;
	(void)port_entries;
	held[held_n++] = w;
	return 1;
}

static void cancel_reload(void *owner, struct hreload *w)
{
	(void)owner;
	for (int i = 0; i < held_n; i++)
		if (held[i] == w) {
			held[i] = NULL;
			cancelled++;
		}
}

/* Answered when the daemon says; a caller that left is taken back from the daemon; an
 * unreachable registry is exit 69 for each caller (the reasons are shared: each its copy). */
static void test_reload_pending(void **state)
{
	struct hxfix *f = *state;
	struct answer a = {}, b = {};
	struct hcall *pa, *pb;
	struct verr e = {};

	f->ops.reload = pending_reload;
	f->ops.reload_cancel = cancel_reload;
	held_n = cancelled = 0;
	assert_int_equal(call_async(f, "reload", "{}", &a, &pa), HANDLERS_PENDING);
	assert_int_equal(call_async(f, "reload", "{}", &b, &pb), HANDLERS_PENDING);
	assert_int_equal(a.calls + b.calls, 0);
	handlers_cancel(pb);
	assert_int_equal(cancelled, 1);
	assert_null(held[1]);
	held[0]->done(held[0], 0, &e, 42);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.rc, 0);
	assert_int_equal(hxfix_int(a.result, "port_entries"), 42);
	assert_int_equal(b.calls, 0);
	answer_free(&a);

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	held_n = 0;
	assert_int_equal(call_async(f, "reload", "{}", &a, &pa), HANDLERS_PENDING);
	assert_int_equal(call_async(f, "reload", "{}", &b, &pb), HANDLERS_PENDING);
	verr_add(&e, "registry", NULL, "the etcd backend is unavailable");
	held[0]->done(held[0], -ETIMEDOUT, &e, 0);
	held[1]->done(held[1], -ETIMEDOUT, &e, 0);
	verr_free(&e);
	for (struct answer *x = &a; x; x = x == &a ? &b : NULL) {
		assert_int_equal(x->calls, 1);
		assert_int_equal(x->rc, -1);
		assert_int_equal(x->err.exit, EXIT_UNAVAILABLE);
		assert_string_equal(x->err.message, "registry: the etcd backend is unavailable");
		answer_free(x);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reserve_answers_revision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_failure_is_the_callers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_argument_names_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_argument_names_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_unavailable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_map_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_show_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mutation_answers_after_its_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_calls_own_revisions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_call_lands_silently, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_pending, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
