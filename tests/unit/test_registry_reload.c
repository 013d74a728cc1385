// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * registry_sync_all_async, the commit of a reload, over the file backend: validated and
 * submitted at once, finished from registry_poll once the model has its revision (which the
 * watchers can tell from registry_commit_rev in the very batch that brings it), admitted
 * against the capacity the caller passes, and a lost compare checked again against the
 * caught-up model: submitted anew, refused with the new reason, or nothing left to do.
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
#include <cmocka.h>

#include "registry.h"
#include "outcome.h"
#include "testutil.h"

#define SRC(name) "/etc/caelum/services.d/" name ".json"

struct fx {
	char *dir;
	struct registry *r;
	struct registry_backend *b;
	struct reg_commit *watching; /* the pending commit the watcher asks about */
	uint64_t batch_rev, commit_rev_in_batch;
};

static void on_change(void *ctx, const struct reg_state *st, const struct reg_delta *d)
{
	struct fx *f = ctx;

	(void)st;
	f->batch_rev = d->rev;
	if (f->watching)
		f->commit_rev_in_batch = registry_commit_rev(f->watching);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct verr e = {};

	if (!f)
		return -1;
	f->dir = tmpdir_new("regreload");
	assert_int_equal(registry_file_open(f->dir, &f->b), 0);
	assert_int_equal(registry_open(f->b, &f->r, &e), 0);
	registry_watch(f->r, on_change, f);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	int err;

	registry_close(f->r);
	err = tmpdir_remove(f->dir);
	free(f);
	return err;
}

static void mkspec(struct service_spec *s, const char *name, const char *json_rest,
		   const char *source)
{
	struct json_object *obj;
	struct verr e = {};
	char json[1024];

	snprintf(json, sizeof(json), "{\"name\": \"%s\", %s}", name, json_rest);
	obj = json_tokener_parse(json);
	assert_non_null(obj);
	assert_int_equal(spec_from_json(obj, name, s, &e), 0);
	json_object_put(obj);
	s->source = source ? strdup(source) : NULL;
}

static int sync_async(struct fx *f, struct service_spec *specs, size_t n,
		      const struct capacity *cap, struct outcome *o, struct reg_commit **c,
		      struct verr *e)
{
	struct reg_async as = { on_outcome, o };

	*c = NULL;
	return registry_sync_all_async(f->r, specs, n, NULL, 0, cap, &as, c, e);
}

struct txn_answer {
	bool done;
	int err;
};

static void txn_answered(void *arg, int err, uint64_t rev, size_t failed)
{
	struct txn_answer *a = arg;

	(void)rev;
	(void)failed;
	a->done = true;
	a->err = err;
}

/* A write by another writer the model has not seen yet (the file backend answers inline). */
static void foreign_put(struct fx *f, const char *key, const char *value)
{
	struct kv_op op = { KV_PUT, key, value, KV_REV_ANY };
	struct txn_answer a = {};

	assert_int_equal(f->b->ops->txn_submit(f->b, &op, 1, txn_answered, &a), 0);
	f->b->ops->txn_reap(f->b);
	assert_true(a.done);
	assert_int_equal(a.err, 0);
}

/* Submitted at once, finished from registry_poll; the watcher sees the revision in the batch
 * that brings it; the same files again are nothing to commit. */
static void test_pending_then_in_model(void **state)
{
	struct fx *f = *state;
	struct service_spec s[2];
	struct outcome o = {};
	struct reg_commit *c;
	struct verr e = {};

	mkspec(&s[0], "alpha", "\"ports\": [\"8100\"]", SRC("alpha"));
	mkspec(&s[1], "beta", "\"ports\": [\"8200\"]", SRC("beta"));
	assert_int_equal(sync_async(f, s, 2, NULL, &o, &c, &e), REG_PENDING);
	assert_non_null(c);
	assert_int_equal(registry_commit_rev(c), 0); /* not answered yet */
	assert_int_equal(o.calls, 0);
	assert_int_equal(registry_state(f->r)->n_svcs, 0); /* the model moves with the watch */
	f->watching = c;
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(f->batch_rev, 1);
	assert_int_equal(f->commit_rev_in_batch, 1); /* the watcher could tell: our revision */
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.rev, 1);
	assert_int_equal(registry_state(f->r)->n_svcs, 2);
	assert_int_equal(registry_service(f->r, "alpha")->origin, ORIGIN_FILE);
	f->watching = NULL;
	assert_int_equal(sync_async(f, s, 2, NULL, &o, &c, &e), 0);
	assert_null(c);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 1);
	spec_free(&s[0]);
	spec_free(&s[1]);
}

/* Refused at once, with every reason: nothing pending, nothing written. */
static void test_refused_now(void **state)
{
	struct fx *f = *state;
	struct service_spec s[2];
	struct outcome o = {};
	struct reg_commit *c;
	struct verr e = {};

	mkspec(&s[0], "alpha", "\"ports\": [\"8100\"]", SRC("alpha"));
	mkspec(&s[1], "beta", "\"ports\": [\"8100\"]", SRC("beta"));
	assert_int_equal(sync_async(f, s, 2, NULL, &o, &c, &e), -EINVAL);
	assert_null(c);
	assert_true(e.n > 0);
	assert_non_null(strstr(e.msgs[0], "8100/tcp conflicts with service"));
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 0);
	assert_int_equal(registry_state(f->r)->rev, 0);
	verr_free(&e);
	spec_free(&s[0]);
	spec_free(&s[1]);
}

/* Admission against the capacity the caller passes (a reload's new config), not the one the
 * registry was given. */
static void test_admitted_against_given_capacity(void **state)
{
	struct fx *f = *state;
	struct capacity big, small;
	struct service_spec s;
	struct outcome o = {};
	struct reg_commit *c;
	struct verr e = {};

	capacity_defaults(&big);
	big.cpus_milli = 8000;
	big.memory_mb = 8192;
	small = big;
	small.cpus_milli = 1000;
	registry_set_capacity(f->r, &big);
	mkspec(&s, "alpha", "\"ports\": [\"8100\"], \"resources\": {\"cpus\": 2}", SRC("alpha"));
	assert_int_equal(sync_async(f, &s, 1, &small, &o, &c, &e), -ENOSPC);
	assert_true(e.n > 0);
	verr_free(&e);
	assert_int_equal(sync_async(f, &s, 1, NULL, &o, &c, &e), REG_PENDING);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, 0);
	spec_free(&s);
}

/* Another writer changed a file service since the model saw it: the compare is lost, checked
 * again against the caught-up model, and the difference from it submitted anew. */
static void test_lost_compare_resubmitted(void **state)
{
	struct fx *f = *state;
	struct service_spec s[2];
	struct outcome o = {};
	struct reg_commit *c;
	struct verr e = {};

	mkspec(&s[0], "alpha", "\"ports\": [\"8100\"]", SRC("alpha"));
	assert_int_equal(registry_sync_all(f->r, s, 1, NULL, 0, &e), 0);
	spec_free(&s[0]);
	foreign_put(
		f, "services/alpha",
		"{\"name\":\"alpha\",\"ports\":[\"8101\"],\"origin\":\"file\",\"source\":null}");
	mkspec(&s[0], "alpha", "\"ports\": [\"8102\"]", SRC("alpha"));
	mkspec(&s[1], "beta", "\"ports\": [\"8200\"]", SRC("beta"));
	assert_int_equal(sync_async(f, s, 2, NULL, &o, &c, &e), REG_PENDING);
	assert_int_equal(registry_poll(f->r), 0); /* lost, caught up, submitted anew */
	assert_int_equal(o.calls, 0);
	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.rev, 3); /* a refused transaction takes no revision */
	assert_int_equal(registry_service(f->r, "alpha")->spec.ports[0].lo, 8102);
	assert_non_null(registry_service(f->r, "beta"));
	spec_free(&s[0]);
	spec_free(&s[1]);
}

/* The caught-up model refuses the files now: the continuation has the new reason. */
static void test_lost_compare_refused_by_caught_up_model(void **state)
{
	struct fx *f = *state;
	struct service_spec s;
	struct outcome o = {};
	struct reg_commit *c;
	struct verr e = {};

	mkspec(&s, "alpha", "\"ports\": [\"8100\"]", SRC("alpha"));
	assert_int_equal(registry_sync_all(f->r, &s, 1, NULL, 0, &e), 0);
	spec_free(&s);
	foreign_put(f, "services/alpha",
		    "{\"name\":\"alpha\",\"ports\":[\"8101\"],\"origin\":\"api\",\"source\":null}");
	mkspec(&s, "alpha", "\"ports\": [\"8102\"]", SRC("alpha"));
	assert_int_equal(sync_async(f, &s, 1, NULL, &o, &c, &e), REG_PENDING);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, -EEXIST);
	assert_non_null(strstr(o.msg, "service 'alpha' was applied through the API"));
	assert_int_equal(registry_service(f->r, "alpha")->origin, ORIGIN_API);
	spec_free(&s);
}

/* Two reloads of the same files raced: the loser finds nothing left to change (rev 0). */
static void test_lost_compare_nothing_left(void **state)
{
	struct fx *f = *state;
	struct service_spec s;
	struct outcome o1 = {}, o2 = {};
	struct reg_commit *c1, *c2;
	struct verr e = {};

	mkspec(&s, "alpha", "\"ports\": [\"8100\"]", SRC("alpha"));
	assert_int_equal(registry_sync_all(f->r, &s, 1, NULL, 0, &e), 0);
	spec_free(&s);
	mkspec(&s, "alpha", "\"ports\": [\"8102\"]", SRC("alpha"));
	assert_int_equal(sync_async(f, &s, 1, NULL, &o1, &c1, &e), REG_PENDING);
	assert_int_equal(sync_async(f, &s, 1, NULL, &o2, &c2, &e), REG_PENDING);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o1.calls, 1);
	assert_int_equal(o1.err, 0);
	assert_int_equal(o1.rev, 2);
	assert_int_equal(o2.calls, 1);
	assert_int_equal(o2.err, 0);
	assert_int_equal(o2.rev, 0);
	assert_int_equal(registry_state(f->r)->rev, 2);
	spec_free(&s);
}

/* Cancelled: the continuation never runs, the commit still lands. */
static void test_cancelled(void **state)
{
	struct fx *f = *state;
	struct service_spec s;
	struct outcome o = {};
	struct reg_commit *c;
	struct verr e = {};

	mkspec(&s, "alpha", "\"ports\": [\"8100\"]", SRC("alpha"));
	assert_int_equal(sync_async(f, &s, 1, NULL, &o, &c, &e), REG_PENDING);
	registry_commit_cancel(c);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 0);
	assert_non_null(registry_service(f->r, "alpha"));
	spec_free(&s);
}

#define F(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		F(test_pending_then_in_model),
		F(test_refused_now),
		F(test_admitted_against_given_capacity),
		F(test_lost_compare_resubmitted),
		F(test_lost_compare_refused_by_caught_up_model),
		F(test_lost_compare_nothing_left),
		F(test_cancelled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
