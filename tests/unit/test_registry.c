// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The registry over the file backend, in a fresh directory per test: what persists across
 * close and reopen, what is refused (with both owners named) and that a refusal changes
 * nothing, ownership by origin, watchers, claims, and the backend's compare-and-swap,
 * lock and corruption handling.
 */
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
#include <cmocka.h>

#include "log.h"
#include "registry.h"
#include "outcome.h"
#include "testutil.h"

#define SRC(name) "/etc/caelum/services.d/" name ".json"

struct fx {
	char *dir;
	struct registry *r;
	struct registry_backend *b; /* r's backend, for writes by "another writer" */
	uint32_t last_slots[8];
	size_t n_last_slots;
	int notified[2]; /* calls per watcher */
	uint64_t seen_rev;
	const struct reg_state *seen_st;
};

struct txn_answer {
	bool done;
	int err;
	uint64_t rev;
	size_t failed;
};

static void txn_answered(void *arg, int err, uint64_t rev, size_t failed)
{
	struct txn_answer *a = arg;

	*a = (struct txn_answer){ .done = true, .err = err, .rev = rev, .failed = failed };
}

/* A transaction through the backend's asynchronous interface, its answer reaped at once
 * (the file backend answers inline). *rev set on success, *failed on -ECANCELED. */
static int be_txn(struct registry_backend *b, const struct kv_op *ops, size_t n, uint64_t *rev,
		  size_t *failed)
{
	struct txn_answer a = {};
	int err = b->ops->txn_submit(b, ops, n, txn_answered, &a);

	if (err)
		return err;
	b->ops->txn_reap(b);
	assert_true(a.done);
	if (!a.err)
		*rev = a.rev;
	if (a.err == -ECANCELED)
		*failed = a.failed;
	return a.err;
}

static void on_change(void *ctx, const struct reg_state *st, const struct reg_delta *d)
{
	struct fx *f = ctx;

	assert_int_equal(d->rev, st->rev);
	f->notified[0]++;
	f->seen_rev = st->rev;
	f->seen_st = st;
	f->n_last_slots = d->n_slots < 8 ? d->n_slots : 8;
	if (f->n_last_slots)
		memcpy(f->last_slots, d->slots, f->n_last_slots * sizeof(*d->slots));
}

static void on_change2(void *ctx, const struct reg_state *st, const struct reg_delta *d)
{
	struct fx *f = ctx;

	(void)st;
	(void)d;
	f->notified[1]++;
}

static void fx_open(struct fx *f)
{
	struct registry_backend *b = NULL;
	struct verr e = {};

	assert_int_equal(registry_file_open(f->dir, &b), 0);
	f->b = b;
	if (registry_open(b, &f->r, &e)) {
		char *all = verr_join(&e);

		fail_msg("registry_open: %s", all ? all : "(no message)");
	}
	registry_watch(f->r, on_change, f);
}

static void fx_reopen(struct fx *f)
{
	registry_close(f->r);
	f->r = NULL;
	fx_open(f);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->dir = tmpdir_new("registry");
	fx_open(f);
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

static void mkspec(struct service_spec *s, const char *name, const char *ports, const char *source)
{
	struct json_object *obj;
	struct verr e = {};
	char json[1024];

	snprintf(json, sizeof(json), "{\"name\": \"%s\", \"ports\": %s}", name, ports);
	obj = json_tokener_parse(json);
	assert_non_null(obj);
	assert_int_equal(spec_from_json(obj, name, s, &e), 0);
	json_object_put(obj);
	s->source = source ? strdup(source) : NULL;
}

/* Apply name with ports through the API; 0 or the error, whose messages stay in e. */
static int apply_api(struct fx *f, const char *name, const char *ports, struct verr *e)
{
	struct service_spec s;
	int err;

	mkspec(&s, name, ports, NULL);
	err = registry_service_apply(f->r, &s, ORIGIN_API, e);
	spec_free(&s);
	return err;
}

static void apply_ok(struct fx *f, const char *name, const char *ports)
{
	struct verr e = {};

	if (apply_api(f, name, ports, &e)) {
		char *all = verr_join(&e);

		fail_msg("apply %s %s: %s", name, ports, all ? all : "(no message)");
	}
}

static void reserve_ok(struct fx *f, uint16_t port, uint8_t proto, const char *svc)
{
	struct verr e = {};

	assert_int_equal(registry_reserve(f->r, port, proto, NULL, svc, &e), 0);
	assert_int_equal(e.n, 0);
}

static void assert_svc(const struct reg_service *s, const char *name, enum reg_origin origin,
		       const char *source, uint64_t mod_rev, size_t n_ports)
{
	assert_non_null(s);
	assert_string_equal(s->spec.name, name);
	assert_int_equal(s->origin, origin);
	if (source)
		assert_string_equal(s->spec.source, source);
	else
		assert_null(s->spec.source);
	assert_int_equal(s->mod_rev, mod_rev);
	assert_int_equal(s->spec.n_ports, n_ports);
}

static void assert_resv(const struct reg_resv *r, uint16_t port, uint8_t proto, const char *svc,
			uint64_t mod_rev)
{
	assert_int_equal(r->port, port);
	assert_int_equal(r->proto, proto);
	assert_string_equal(r->service, svc);
	assert_int_equal(r->mod_rev, mod_rev);
}

static void assert_owner(struct fx *f, uint16_t port, uint8_t proto, const char *want,
			 enum reg_origin want_origin)
{
	enum reg_origin o = (enum reg_origin)99; /* not set */
	const char *owner = registry_owner(f->r, port, proto, &o);

	if (!want) {
		assert_null(owner);
		return;
	}
	assert_non_null(owner);
	assert_string_equal(owner, want);
	assert_int_equal(o, want_origin);
}

/* What is on disk: the snapshot (if any) and the log, one after the other. */
static char *registry_file(struct fx *f)
{
	char path[PATH_MAX], *snap, *wal, *all;

	snprintf(path, sizeof(path), "%s/registry.json", f->dir);
	snap = read_text(path, NULL);
	snprintf(path, sizeof(path), "%s/registry.wal", f->dir);
	wal = read_text(path, NULL);
	if (asprintf(&all, "%s\n--\n%s", snap ? snap : "", wal ? wal : "") < 0)
		all = NULL;
	free(snap);
	free(wal);
	return all;
}

/* ---- services and reservations persist ---- */

static void test_apply_persists(void **state)
{
	struct fx *f = *state;
	const struct reg_state *st;

	assert_string_equal(registry_backend_name(f->r), "file");
	assert_int_equal(registry_state(f->r)->rev, 0);
	apply_ok(f, "beta", "[\"9000-9001\"]");
	apply_ok(f, "alpha", "[\"8100\", \"8101/udp\"]");
	for (int round = 0; round < 2; round++) {
		st = registry_state(f->r);
		assert_int_equal(st->rev, 2);
		assert_int_equal(st->n_svcs, 2);
		assert_svc(&st->svcs[0], "alpha", ORIGIN_API, NULL, 2, 2);
		assert_svc(&st->svcs[1], "beta", ORIGIN_API, NULL, 1, 1);
		assert_int_equal(st->svcs[0].spec.ports[1].lo, 8101);
		assert_int_equal(st->svcs[0].spec.ports[1].proto, IPPROTO_UDP);
		assert_int_equal(st->svcs[1].spec.ports[0].hi, 9001);
		assert_int_equal(st->n_resv, 0);
		assert_owner(f, 8100, IPPROTO_TCP, "alpha", ORIGIN_API);
		assert_owner(f, 8100, IPPROTO_UDP, NULL, 0);
		assert_owner(f, 9001, IPPROTO_TCP, "beta", ORIGIN_API);
		assert_owner(f, 9002, IPPROTO_TCP, NULL, 0);
		assert_non_null(registry_service(f->r, "beta"));
		assert_null(registry_service(f->r, "gamma"));
		fx_reopen(f);
	}

	/* the same spec again writes nothing; a change bumps only that service */
	apply_ok(f, "alpha", "[\"8100\", \"8101/udp\"]");
	assert_int_equal(registry_state(f->r)->rev, 2);
	apply_ok(f, "alpha", "[\"8100\"]");
	st = registry_state(f->r);
	assert_int_equal(st->rev, 3);
	assert_svc(&st->svcs[0], "alpha", ORIGIN_API, NULL, 3, 1);
	assert_svc(&st->svcs[1], "beta", ORIGIN_API, NULL, 1, 1);
	assert_owner(f, 8101, IPPROTO_UDP, NULL, 0);
}

static void test_reserve_persists(void **state)
{
	struct fx *f = *state;
	const struct reg_state *st;

	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	reserve_ok(f, 6999, IPPROTO_UDP, "alpha");
	for (int round = 0; round < 2; round++) {
		st = registry_state(f->r);
		assert_int_equal(st->rev, 3);
		assert_int_equal(st->n_resv, 2);
		assert_resv(&st->resv[0], 6999, IPPROTO_UDP, "alpha", 3);
		assert_resv(&st->resv[1], 7000, IPPROTO_TCP, "alpha", 2);
		assert_owner(f, 7000, IPPROTO_TCP, "alpha", ORIGIN_RUNTIME);
		assert_owner(f, 7000, IPPROTO_UDP, NULL, 0);
		fx_reopen(f);
	}

	/* reserving what the service already holds changes nothing */
	f->notified[0] = 0;
	reserve_ok(f, 8100, IPPROTO_TCP, "alpha");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(registry_state(f->r)->n_resv, 2);
	assert_int_equal(f->notified[0], 0);
}

static void test_reserve_refused(void **state)
{
	struct fx *f = *state;
	struct verr e = {};

	apply_ok(f, "alpha", "[\"8100\"]");
	apply_ok(f, "beta", "[]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	f->notified[0] = 0;

	assert_int_equal(registry_reserve(f->r, 8100, IPPROTO_TCP, NULL, "beta", &e), -EEXIST);
	assert_verr_one(&e, "8100/tcp: already reserved by service 'alpha' (declared in its spec)",
			"spec port");
	verr_free(&e);
	assert_int_equal(registry_reserve(f->r, 7000, IPPROTO_TCP, NULL, "beta", &e), -EEXIST);
	assert_verr_one(&e, "7000/tcp: already reserved by service 'alpha' (runtime reservation)",
			"runtime port");
	verr_free(&e);
	assert_int_equal(registry_reserve(f->r, 7001, IPPROTO_UDP, NULL, "gamma", &e), -ENOENT);
	assert_verr_one(&e, "7001/udp: unknown service 'gamma'", "unknown service");
	verr_free(&e);

	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(registry_state(f->r)->n_resv, 1);
	assert_int_equal(f->notified[0], 0);
	assert_owner(f, 7001, IPPROTO_UDP, NULL, 0);
}

static void test_release(void **state)
{
	struct fx *f = *state;
	struct verr e = {};

	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	reserve_ok(f, 7000, IPPROTO_UDP, "alpha");

	assert_int_equal(registry_release(f->r, 8100, IPPROTO_TCP, NULL, &e), -EEXIST);
	assert_verr_one(&e,
			"8100/tcp: declared in the spec of service 'alpha'; remove it from the "
			"spec instead",
			"release spec port");
	verr_free(&e);
	assert_int_equal(registry_release(f->r, 7001, IPPROTO_TCP, NULL, &e), -ENOENT);
	assert_verr_one(&e, "7001/tcp: not reserved", "release free port");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 3);

	assert_int_equal(registry_release(f->r, 7000, IPPROTO_TCP, NULL, &e), 0);
	assert_int_equal(e.n, 0);
	fx_reopen(f);
	assert_int_equal(registry_state(f->r)->rev, 4);
	assert_int_equal(registry_state(f->r)->n_resv, 1);
	assert_resv(&registry_state(f->r)->resv[0], 7000, IPPROTO_UDP, "alpha", 3);
	assert_owner(f, 7000, IPPROTO_TCP, NULL, 0);
	assert_owner(f, 8100, IPPROTO_TCP, "alpha", ORIGIN_API);
}

/* ---- services_dir sync ---- */

static void test_sync_files(void **state)
{
	struct fx *f = *state;
	struct service_spec a[2], b[2];
	const struct reg_state *st;
	struct verr e = {};

	apply_ok(f, "api1", "[\"9000\"]");
	mkspec(&a[0], "alpha", "[\"8100\"]", SRC("alpha"));
	mkspec(&a[1], "beta", "[\"8200-8201\"]", SRC("beta"));
	assert_int_equal(registry_sync_files(f->r, a, 2, &e), 0);
	st = registry_state(f->r);
	assert_int_equal(st->rev, 2);
	assert_int_equal(st->n_svcs, 3);
	assert_svc(&st->svcs[0], "alpha", ORIGIN_FILE, SRC("alpha"), 2, 1);
	assert_svc(&st->svcs[1], "api1", ORIGIN_API, NULL, 1, 1);
	assert_svc(&st->svcs[2], "beta", ORIGIN_FILE, SRC("beta"), 2, 1);

	/* B replaces A in one commit: alpha goes, beta changes, gamma comes; api1 stays */
	mkspec(&b[0], "beta", "[\"8200\"]", SRC("beta"));
	mkspec(&b[1], "gamma", "[\"8300/udp\"]", SRC("gamma"));
	f->notified[0] = 0;
	assert_int_equal(registry_sync_files(f->r, b, 2, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(f->notified[0], 1);
	for (int round = 0; round < 2; round++) {
		st = registry_state(f->r);
		assert_int_equal(st->rev, 3);
		assert_int_equal(st->n_svcs, 3);
		assert_svc(&st->svcs[0], "api1", ORIGIN_API, NULL, 1, 1);
		assert_svc(&st->svcs[1], "beta", ORIGIN_FILE, SRC("beta"), 3, 1);
		assert_svc(&st->svcs[2], "gamma", ORIGIN_FILE, SRC("gamma"), 3, 1);
		assert_int_equal(st->svcs[1].spec.ports[0].hi, 8200);
		assert_owner(f, 8100, IPPROTO_TCP, NULL, 0);
		assert_owner(f, 8300, IPPROTO_UDP, "gamma", ORIGIN_FILE);
		fx_reopen(f);
	}

	/* the same set again is no change */
	f->notified[0] = 0;
	assert_int_equal(registry_sync_files(f->r, b, 2, &e), 0);
	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(f->notified[0], 0);

	/* an empty services_dir removes every file service, not the API's */
	assert_int_equal(registry_sync_files(f->r, NULL, 0, &e), 0);
	st = registry_state(f->r);
	assert_int_equal(st->rev, 4);
	assert_int_equal(st->n_svcs, 1);
	assert_string_equal(st->svcs[0].spec.name, "api1");
	for (int i = 0; i < 2; i++) {
		spec_free(&a[i]);
		spec_free(&b[i]);
	}
}

/* A refused set changes nothing: not the state, not the revision, not the file. */
static void test_sync_conflict_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct service_spec a[2], c[3];
	char *before, *after;
	struct verr e = {};
	static const char *const want[] = {
		SRC("gamma") ": ports[0]: 8200/tcp conflicts with service 'beta' (" SRC(
			"beta") ": ports[0])",
		SRC("gamma") ": ports[1]: 9000/tcp conflicts with service 'api1' (api1: ports[0])",
		NULL,
	};

	apply_ok(f, "api1", "[\"9000\"]");
	mkspec(&a[0], "alpha", "[\"8100\"]", SRC("alpha"));
	mkspec(&a[1], "beta", "[\"8200\"]", SRC("beta"));
	assert_int_equal(registry_sync_files(f->r, a, 2, &e), 0);
	before = registry_file(f);
	assert_non_null(before);
	f->notified[0] = 0;

	mkspec(&c[0], "beta", "[\"8200\"]", SRC("beta"));
	mkspec(&c[1], "gamma", "[\"8200\", \"9000\"]", SRC("gamma"));
	mkspec(&c[2], "delta", "[\"8400\"]", SRC("delta"));
	assert_int_equal(registry_sync_files(f->r, c, 3, &e), -EINVAL);
	assert_verr_is(&e, want, "conflicting set");
	verr_free(&e);

	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_int_equal(registry_state(f->r)->n_svcs, 3);
	assert_non_null(registry_service(f->r, "alpha"));
	assert_null(registry_service(f->r, "gamma"));
	assert_null(registry_service(f->r, "delta"));
	assert_int_equal(f->notified[0], 0);
	after = registry_file(f);
	assert_non_null(after);
	assert_string_equal(after, before);
	free(after);

	/* a file naming an API service is refused before anything is built */
	spec_free(&c[2]);
	mkspec(&c[2], "api1", "[\"9000\"]", SRC("api1"));
	spec_free(&c[1]);
	mkspec(&c[1], "gamma", "[]", SRC("gamma"));
	assert_int_equal(registry_sync_files(f->r, c, 3, &e), -EEXIST);
	assert_verr_one(&e,
			SRC("api1") ": name: service 'api1' was applied through the API; delete it "
				    "there first (caelumctl service delete api1)",
			"file names API service");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 2);
	after = registry_file(f);
	assert_string_equal(after, before);
	free(after);
	free(before);
	for (int i = 0; i < 3; i++)
		spec_free(&c[i]);
	for (int i = 0; i < 2; i++)
		spec_free(&a[i]);
}

/* Messages already in e (from loading the files) do not turn a good sync into a refusal. */
static void test_sync_with_prior_messages(void **state)
{
	struct fx *f = *state;
	struct service_spec a;
	struct verr e = {};

	verr_add(&e, "caelum.json", NULL, "an earlier warning");
	mkspec(&a, "alpha", "[\"8100\"]", SRC("alpha"));
	assert_int_equal(registry_sync_files(f->r, &a, 1, &e), 0);
	assert_int_equal(e.n, 1);
	assert_int_equal(registry_state(f->r)->rev, 1);
	verr_free(&e);
	spec_free(&a);
}

/* ---- specs against runtime reservations ---- */

static void test_spec_vs_runtime_reservation(void **state)
{
	struct fx *f = *state;
	struct verr e = {};

	apply_ok(f, "alpha", "[\"8100\"]");
	apply_ok(f, "beta", "[]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	f->notified[0] = 0;

	assert_int_equal(apply_api(f, "beta", "[\"6990-7010\"]", &e), -EINVAL);
	assert_verr_one(&e,
			"registry: 7000/tcp is declared by service 'beta' but reserved at runtime "
			"by service 'alpha' (release it first: caelumctl port release 7000/tcp)",
			"spec vs runtime");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(registry_service(f->r, "beta")->spec.n_ports, 0);
	assert_int_equal(f->notified[0], 0);

	/* its own runtime reservation may become part of a service's spec */
	apply_ok(f, "alpha", "[\"8100\", \"7000\"]");
	assert_int_equal(registry_state(f->r)->n_resv, 1);
	assert_owner(f, 7000, IPPROTO_TCP, "alpha", ORIGIN_API);
}

/* The refusal names the file that declares the port, not the reservation holder's. */
static void test_file_spec_vs_runtime_reservation(void **state)
{
	struct fx *f = *state;
	struct service_spec a[2];
	struct verr e = {};

	mkspec(&a[0], "alpha", "[\"8100\"]", SRC("alpha"));
	assert_int_equal(registry_sync_files(f->r, a, 1, &e), 0);
	reserve_ok(f, 7000, IPPROTO_UDP, "alpha");
	mkspec(&a[1], "beta", "[\"7000/udp\"]", SRC("beta"));
	assert_int_equal(registry_sync_files(f->r, a, 2, &e), -EINVAL);
	assert_verr_one(&e,
			SRC("beta") ": 7000/udp is declared by service 'beta' but reserved at "
				    "runtime by service 'alpha' (release it first: caelumctl port "
				    "release 7000/udp)",
			"file spec vs runtime");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_null(registry_service(f->r, "beta"));
	spec_free(&a[0]);
	spec_free(&a[1]);
}

static void test_delete_drops_reservations(void **state)
{
	struct fx *f = *state;
	const struct reg_state *st;
	struct verr e = {};

	apply_ok(f, "alpha", "[\"8100\"]");
	apply_ok(f, "beta", "[\"8200\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	reserve_ok(f, 7001, IPPROTO_UDP, "alpha");
	reserve_ok(f, 7002, IPPROTO_TCP, "beta");
	assert_int_equal(registry_service_delete(f->r, "alpha", &e), 0);
	for (int round = 0; round < 2; round++) {
		st = registry_state(f->r);
		assert_int_equal(st->rev, 6);
		assert_int_equal(st->n_svcs, 1);
		assert_string_equal(st->svcs[0].spec.name, "beta");
		assert_int_equal(st->n_resv, 1);
		assert_resv(&st->resv[0], 7002, IPPROTO_TCP, "beta", 5);
		assert_owner(f, 7000, IPPROTO_TCP, NULL, 0);
		assert_owner(f, 8100, IPPROTO_TCP, NULL, 0);
		fx_reopen(f);
	}
	/* and the port is free for someone else */
	reserve_ok(f, 7000, IPPROTO_TCP, "beta");

	assert_int_equal(registry_service_delete(f->r, "ghost", &e), -ENOENT);
	assert_verr_one(&e, "service 'ghost' not found", "delete unknown");
	verr_free(&e);
}

/* ---- ownership by origin ---- */

static void test_origin_ownership(void **state)
{
	struct fx *f = *state;
	struct service_spec a, s;
	struct verr e = {};

	mkspec(&a, "alpha", "[\"8100\"]", SRC("alpha"));
	assert_int_equal(registry_sync_files(f->r, &a, 1, &e), 0);
	apply_ok(f, "beta", "[\"8200\"]");
	f->notified[0] = 0;

	assert_int_equal(apply_api(f, "alpha", "[\"8101\"]", &e), -EEXIST);
	assert_verr_one(&e,
			"alpha: name: service 'alpha' is managed by " SRC("alpha") "; change it "
										   "there",
			"API over file");
	verr_free(&e);
	assert_int_equal(registry_service_delete(f->r, "alpha", &e), -EEXIST);
	assert_verr_one(&e,
			"alpha: service is defined by " SRC("alpha") "; remove the file and reload",
			"API delete of file service");
	verr_free(&e);

	mkspec(&s, "beta", "[\"8201\"]", SRC("beta"));
	assert_int_equal(registry_service_apply(f->r, &s, ORIGIN_FILE, &e), -EEXIST);
	assert_verr_one(
		&e,
		SRC("beta") ": name: service 'beta' is managed by the API (caelumctl service "
			    "apply); change it there",
		"file over API");
	verr_free(&e);

	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_int_equal(registry_service(f->r, "alpha")->spec.ports[0].lo, 8100);
	assert_int_equal(registry_service(f->r, "beta")->spec.ports[0].lo, 8200);
	assert_int_equal(f->notified[0], 0);
	spec_free(&a);
	spec_free(&s);
}

/* ---- watchers ---- */

static void test_watchers(void **state)
{
	struct fx *f = *state;
	struct verr e = {};

	registry_watch(f->r, on_change2, f);
	/* commits are numbered 1..5 below; everything else must not notify */
	apply_ok(f, "alpha", "[\"8100\"]");
	assert_int_equal(f->notified[0], 1);
	assert_int_equal(f->notified[1], 1);
	assert_int_equal(f->seen_rev, 1);
	assert_ptr_equal(f->seen_st, registry_state(f->r));

	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	assert_int_equal(registry_reserve(f->r, 7000, IPPROTO_TCP, NULL, "nobody", &e), -ENOENT);
	verr_free(&e);
	apply_ok(f, "alpha", "[\"8100\"]"); /* no change */
	assert_int_equal(f->notified[0], 2);
	assert_int_equal(f->seen_rev, 2);

	apply_ok(f, "beta", "[]");
	assert_int_equal(apply_api(f, "beta", "[\"8100\"]", &e), -EINVAL);
	verr_free(&e);
	assert_int_equal(registry_release(f->r, 7000, IPPROTO_TCP, NULL, &e), 0);
	assert_int_equal(registry_service_delete(f->r, "beta", &e), 0);
	assert_int_equal(registry_service_delete(f->r, "beta", &e), -ENOENT);
	verr_free(&e);
	assert_int_equal(f->notified[0], 5);
	assert_int_equal(f->notified[1], 5);
	assert_int_equal(f->seen_rev, 5);
	assert_int_equal(registry_state(f->r)->rev, 5);
}

/* ---- claims ---- */

static void test_claims(void **state)
{
	static const struct {
		uint16_t port;
		uint8_t proto;
		enum reg_origin origin;
		const char *service;
	} want[] = {
		{ 7000, IPPROTO_TCP, ORIGIN_API, "alpha" },
		{ 7500, IPPROTO_UDP, ORIGIN_RUNTIME, "beta" },
		{ 8000, IPPROTO_UDP, ORIGIN_FILE, "beta" },
		{ 8100, IPPROTO_TCP, ORIGIN_API, "alpha" },
		{ 8100, IPPROTO_UDP, ORIGIN_FILE, "beta" },
		{ 8101, IPPROTO_UDP, ORIGIN_API, "alpha" },
		{ 9000, IPPROTO_TCP, ORIGIN_API, "alpha" },
		{ 9001, IPPROTO_TCP, ORIGIN_API, "alpha" },
	};
	struct fx *f = *state;
	struct service_spec b;
	struct reg_claim *c;
	struct verr e = {};
	size_t n;

	mkspec(&b, "beta", "[\"8100/udp\", \"8000/udp\"]", SRC("beta"));
	assert_int_equal(registry_sync_files(f->r, &b, 1, &e), 0);
	apply_ok(f, "alpha", "[\"9000-9001\", \"8101/udp\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	reserve_ok(f, 7500, IPPROTO_UDP, "beta");
	/* alpha's spec now also declares its runtime reservation: one claim, not two */
	apply_ok(f, "alpha", "[\"9000-9001\", \"8101/udp\", \"7000\", \"8100\"]");
	assert_int_equal(registry_state(f->r)->n_resv, 2);

	assert_int_equal(registry_claims(registry_state(f->r), &c, &n), 0);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		if (c[i].port != want[i].port || c[i].proto != want[i].proto ||
		    c[i].origin != want[i].origin || strcmp(c[i].service, want[i].service))
			fail_msg("claim %zu: %u/%u %s %s, want %u/%u %s %s", i, c[i].port,
				 c[i].proto, origin_name(c[i].origin), c[i].service, want[i].port,
				 want[i].proto, origin_name(want[i].origin), want[i].service);
	}
	free(c);
	spec_free(&b);

	assert_string_equal(origin_name(ORIGIN_FILE), "file");
	assert_string_equal(origin_name(ORIGIN_API), "api");
	assert_string_equal(origin_name(ORIGIN_RUNTIME), "runtime");
}

static void test_claims_empty(void **state)
{
	struct fx *f = *state;
	struct reg_claim *c = NULL;
	size_t n = 42;

	assert_int_equal(registry_claims(registry_state(f->r), &c, &n), 0);
	assert_int_equal(n, 0);
	free(c);
}

/* ---- the backend ---- */

static void test_backend_txn_cas(void **state)
{
	char *dir = *state, *before, *after, path[PATH_MAX];
	struct registry_backend *b;
	struct kv *kvs;
	size_t n, failed = 99;
	uint64_t rev = 0;

	assert_int_equal(registry_file_open(dir, &b), 0);
	{
		struct kv_op ops[] = {
			{ KV_PUT, "a/1", "{\"v\":1}", KV_REV_ABSENT },
			{ KV_PUT, "b/1", "{\"v\":2}", KV_REV_ABSENT },
		};

		assert_int_equal(be_txn(b, ops, 2, &rev, &failed), 0);
		assert_int_equal(rev, 1);
	}
	{
		struct kv_op ops[] = { { KV_PUT, "a/2", "[1,2]", KV_REV_ANY } };

		assert_int_equal(be_txn(b, ops, 1, &rev, &failed), 0);
		assert_int_equal(rev, 2);
	}
	snprintf(path, sizeof(path), "%s/registry.wal", dir);
	before = read_text(path, NULL);
	assert_non_null(before);

	/* a stale expected revision: nothing applied, the failed op is named */
	{
		struct kv_op ops[] = {
			{ KV_PUT, "c/1", "{}", KV_REV_ABSENT },
			{ KV_DEL, "b/1", NULL, 1 },
			{ KV_PUT, "a/2", "{}", 1 }, /* a/2 is at revision 2 */
		};

		rev = 77;
		assert_int_equal(be_txn(b, ops, 3, &rev, &failed), -ECANCELED);
		assert_int_equal(failed, 2);
		assert_int_equal(rev, 77);
	}
	/* KV_REV_ABSENT on an existing key */
	{
		struct kv_op ops[] = { { KV_PUT, "a/1", "{}", KV_REV_ABSENT } };

		assert_int_equal(be_txn(b, ops, 1, &rev, &failed), -ECANCELED);
		assert_int_equal(failed, 0);
	}
	/* an expected revision on a missing key */
	{
		struct kv_op ops[] = { { KV_DEL, "zz", NULL, 2 } };

		assert_int_equal(be_txn(b, ops, 1, &rev, &failed), -ECANCELED);
		assert_int_equal(failed, 0);
	}
	/* one key twice in a transaction */
	{
		struct kv_op ops[] = {
			{ KV_PUT, "d", "{}", KV_REV_ANY },
			{ KV_DEL, "d", NULL, KV_REV_ANY },
		};

		assert_int_equal(be_txn(b, ops, 2, &rev, &failed), -EINVAL);
	}
	after = read_text(path, NULL);
	assert_string_equal(after, before);
	free(after);

	assert_int_equal(b->ops->range(b, "", &kvs, &n, &rev), 0);
	assert_int_equal(rev, 2);
	assert_int_equal(n, 3);
	assert_string_equal(kvs[0].key, "a/1");
	assert_string_equal(kvs[0].value, "{\"v\":1}");
	assert_int_equal(kvs[0].mod_rev, 1);
	assert_string_equal(kvs[1].key, "a/2");
	assert_string_equal(kvs[1].value, "[1,2]");
	assert_int_equal(kvs[1].mod_rev, 2);
	assert_string_equal(kvs[2].key, "b/1");
	kvs_free(kvs, n);

	/* the right revisions: applied together, one new store revision */
	{
		struct kv_op ops[] = {
			{ KV_PUT, "a/1", "{\"v\":3}", 1 },
			{ KV_DEL, "b/1", NULL, 1 },
			{ KV_PUT, "c/1", "{}", KV_REV_ABSENT },
		};

		assert_int_equal(be_txn(b, ops, 3, &rev, &failed), 0);
		assert_int_equal(rev, 3);
	}
	assert_int_equal(b->ops->range(b, "a/", &kvs, &n, &rev), 0);
	assert_int_equal(rev, 3);
	assert_int_equal(n, 2);
	assert_string_equal(kvs[0].value, "{\"v\":3}");
	assert_int_equal(kvs[0].mod_rev, 3);
	assert_int_equal(kvs[1].mod_rev, 2);
	kvs_free(kvs, n);
	assert_int_equal(b->ops->range(b, "b/", &kvs, &n, &rev), 0);
	assert_int_equal(n, 0);
	kvs_free(kvs, n);
	assert_true(b->ops->watch_fd(b) >= 0);
	b->ops->free(b);

	/* and all of it was on disk */
	assert_int_equal(registry_file_open(dir, &b), 0);
	assert_int_equal(b->ops->range(b, "", &kvs, &n, &rev), 0);
	assert_int_equal(rev, 3);
	assert_int_equal(n, 3);
	assert_string_equal(kvs[2].key, "c/1");
	assert_int_equal(kvs[2].mod_rev, 3);
	kvs_free(kvs, n);
	b->ops->free(b);
	free(before);
}

/* Someone else wrote a key since we read it: the registry's commit is cancelled. */
static void test_concurrent_change_refused(void **state)
{
	char *dir = *state;
	struct registry_backend *b;
	struct registry *r;
	struct service_spec s;
	struct verr e = {};
	size_t failed;
	uint64_t rev;
	struct kv_op op = { KV_PUT, "services/alpha",
			    "{\"name\":\"alpha\",\"ports\":[\"8102/tcp\"],\"origin\":\"api\","
			    "\"source\":null}",
			    KV_REV_ANY };

	assert_int_equal(registry_file_open(dir, &b), 0);
	assert_int_equal(registry_open(b, &r, &e), 0);
	mkspec(&s, "alpha", "[\"8100\"]", NULL);
	assert_int_equal(registry_service_apply(r, &s, ORIGIN_API, &e), 0);
	spec_free(&s);
	assert_int_equal(be_txn(b, &op, 1, &rev, &failed), 0);
	assert_int_equal(rev, 2);

	mkspec(&s, "alpha", "[\"8101\"]", NULL);
	assert_int_equal(registry_service_apply(r, &s, ORIGIN_API, &e), -ECANCELED);
	assert_verr_one(&e,
			"registry: services/alpha: changed concurrently by another writer; try "
			"again",
			"concurrent");
	verr_free(&e);
	spec_free(&s);
	registry_close(r);

	/* the other writer's value is what persisted */
	assert_int_equal(registry_file_open(dir, &b), 0);
	assert_int_equal(registry_open(b, &r, &e), 0);
	assert_int_equal(registry_state(r)->rev, 2);
	assert_int_equal(registry_service(r, "alpha")->spec.ports[0].lo, 8102);
	registry_close(r);
}

static void test_lock(void **state)
{
	char *dir = *state;
	struct registry_backend *b1, *b2 = NULL;

	assert_int_equal(registry_file_open(dir, &b1), 0);
	assert_int_equal(registry_file_open(dir, &b2), -EBUSY);
	b1->ops->free(b1);
	assert_int_equal(registry_file_open(dir, &b2), 0);
	b2->ops->free(b2);
}

#define ENT(k) "{\"key\":\"" k "\",\"mod_revision\":1,\"value\":{\"v\":\"" k "\"}}"

static void test_corrupt_file(void **state)
{
	static const char *const bad[] = {
		"{\"format\": 1, \"revision\": 1, \"entries\": [",   /* truncated */
		"{\"format\": 2, \"revision\": 1, \"entries\": []}", /* wrong format */
		"{\"format\": 1, \"revision\": 1}",		     /* no entries */
		"{\"format\": 1, \"revision\": 1, \"entries\": {}}", /* not an array */
		"{\"format\": 1, \"revision\": 1, \"entries\": [{\"key\": \"a\"}]}", /* malformed */
		"{\"format\": 1, \"revision\": 1, \"entries\": [{\"key\": 5, \"value\": {}, "
		"\"mod_revision\": 1}]}",
		"[]",
		"",
		/* the one-entry-a-line layout snap_write makes, each fault of its own */
		"{\"format\":1,\"revision\":1,\"entries\":[\n" ENT("a") "\n" ENT("b") "\n]}\n",
		"{\"format\":1,\"revision\":1,\"entries\":[\n" ENT("a") ",\n]}\n",
		"{\"format\":1,\"revision\":1,\"entries\":[\n" ENT("a") ",\n{\"key\":\"b\"}\n]}\n",
		"{\"format\":1,\"revision\":1,\"entries\":[\n" ENT("a") "\n]}\n" ENT("b"),
		"{\"format\":1,\"revision\":1,\"entries\":[\n{\"key\":\"a\",\"key\":\"b\","
		"\"mod_revision\":1,\"value\":{}}\n]}\n",
		"{\"format\":2,\"revision\":1,\"entries\":[\n" ENT("a") "\n]}\n",
		"{\"format\":1,\"revision\":1,\"entries\":[\n" ENT("a") "\n]",
	};
	char *dir = *state;
	struct registry_backend *b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = NULL;
		write_text(dir, "registry.json", bad[i], NULL);
		if (registry_file_open(dir, &b) != -EINVAL)
			fail_msg("case %zu (%s) was not refused with -EINVAL", i, bad[i]);
		assert_null(b);
	}
	/* the lock was released by every failed open */
	write_text(dir, "registry.json", "{\"format\": 1, \"revision\": 0, \"entries\": []}", NULL);
	assert_int_equal(registry_file_open(dir, &b), 0);
	b->ops->free(b);
}

/* A snapshot reads the same in the line layout snap_write makes (read a line at a time) and
 * in any other JSON layout (read whole). */
static void test_snapshot_layouts(void **state)
{
	static const char *const docs[] = {
		"{\"format\":1,\"revision\":7,\"entries\":[\n" ENT("a") ",\n" ENT("b") "\n]}\n",
		"{\"format\":1,\"revision\":7,\"entries\":[" ENT("a") "," ENT("b") "]}",
		"{\n  \"format\": 1,\n  \"revision\": 7,\n  \"entries\": [\n    " ENT(
			"b") ",\n"
			     "    " ENT("a") "\n  ]\n}\n",
	};
	char *dir = *state;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct registry_backend *b = NULL;
		struct kv *kvs = NULL;
		size_t n = 0;
		uint64_t rev = 0;

		write_text(dir, "registry.json", docs[i], NULL);
		if (registry_file_open(dir, &b))
			fail_msg("layout %zu was refused", i);
		assert_int_equal(b->ops->range(b, "", &kvs, &n, &rev), 0);
		assert_int_equal(rev, 7);
		assert_int_equal(n, 2);
		assert_string_equal(kvs[0].key, "a");
		assert_string_equal(kvs[0].value, "{\"v\":\"a\"}");
		assert_string_equal(kvs[1].key, "b");
		assert_string_equal(kvs[1].value, "{\"v\":\"b\"}");
		assert_int_equal(kvs[1].mod_rev, 1);
		kvs_free(kvs, n);
		b->ops->free(b);
	}
}

static size_t file_size(const char *dir, const char *name);

static void assert_range(struct registry_backend *b, const char *const *want, size_t n_want)
{
	struct kv *kvs = NULL;
	size_t n = 0;
	uint64_t rev;

	assert_int_equal(b->ops->range(b, "", &kvs, &n, &rev), 0);
	assert_int_equal(n, n_want);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(kvs[i].key, want[2 * i]);
		assert_string_equal(kvs[i].value, want[2 * i + 1]);
	}
	kvs_free(kvs, n);
}

/*
 * Values unchanged since the snapshot are read back from it (not held in memory): a range
 * sees them, a put replaces one, a compaction rewrites the file they are read from, a
 * reopen reads the same; a snapshot changed by hand under the backend is refused (-EIO),
 * not read at stale offsets.
 */
static void test_snapshot_values_in_file(void **state)
{
	static const char *const want[] = {
		"a", "{\"v\":\"a\"}", "b", "[1]", "c", "{\"v\":\"c\"}"
	};
	char *dir = *state;
	struct registry_backend *b = NULL;
	uint64_t rev;
	size_t failed;

	write_text(dir, "registry.json",
		   "{\"format\":1,\"revision\":3,\"entries\":[\n" ENT("a") ",\n" ENT("b") ",\n" ENT(
			   "c") "\n]}\n",
		   NULL);
	assert_int_equal(registry_file_open(dir, &b), 0);
	{
		struct kv_op ops[] = { { KV_PUT, "b", "[1]", KV_REV_ANY } };

		assert_int_equal(be_txn(b, ops, 1, &rev, &failed), 0);
	}
	assert_range(b, want, 3);
	registry_file_set_compaction(b, 1);
	{
		/* a value longer than the snapshot: the log outgrows it, a compaction follows */
		char big[600];
		struct kv_op ops[] = { { KV_PUT, "d", big, KV_REV_ANY } };

		memset(big, 'x', sizeof(big) - 2);
		big[0] = big[sizeof(big) - 3] = '"';
		big[sizeof(big) - 2] = '\0';
		assert_int_equal(be_txn(b, ops, 1, &rev, &failed), 0);
	}
	assert_int_equal(file_size(dir, "registry.wal"), 0);
	{
		struct kv_op ops[] = { { KV_DEL, "d", NULL, KV_REV_ANY } };

		assert_int_equal(be_txn(b, ops, 1, &rev, &failed), 0);
	}
	assert_range(b, want, 3);
	b->ops->free(b);
	assert_int_equal(registry_file_open(dir, &b), 0);
	assert_range(b, want, 3);
	/* edited by hand while open: same length, other bytes */
	{
		char path[PATH_MAX], *text;

		snprintf(path, sizeof(path), "%s/registry.json", dir);
		text = read_text(path, NULL);
		assert_non_null(text);
		*strstr(text, "\"a\"}") = 'x';
		usleep(10000);
		write_text(dir, "registry.json", text, NULL);
		free(text);
	}
	{
		struct kv *kvs = NULL;
		size_t n = 0;

		assert_int_equal(b->ops->range(b, "", &kvs, &n, &rev), -EIO);
		assert_null(kvs);
	}
	b->ops->free(b);
}

/* The rejected entries registry_status_json reports: "key=reason;" each. */
static void rejected_text(struct registry *r, char *out, size_t len)
{
	struct json_object *st = registry_status_json(r), *rej;

	out[0] = '\0';
	assert_true(json_object_object_get_ex(st, "rejected", &rej));
	for (size_t i = 0; i < json_object_array_length(rej); i++) {
		struct json_object *o = json_object_array_get_idx(rej, i), *k, *why;

		json_object_object_get_ex(o, "key", &k);
		json_object_object_get_ex(o, "reason", &why);
		snprintf(out + strlen(out), len - strlen(out), "%s=%s;", json_object_get_string(k),
			 json_object_get_string(why));
	}
	json_object_put(st);
}

/*
 * Entries this caelumd cannot read (a value that is not a valid spec, a key it cannot place,
 * as another writer or a newer version may leave them) are left out and reported; the rest
 * of the registry loads. Before, one such entry made every caelumd refuse to start.
 */
static void test_corrupt_value(void **state)
{
	char *dir = *state, text[1024];
	struct registry_backend *b;
	struct registry *r = NULL;
	struct verr e = {};

	write_text(dir, "registry.json",
		   "{\"format\": 1, \"revision\": 3, \"entries\": [{\"key\": \"services/bad\", "
		   "\"mod_revision\": 1, \"value\": {\"name\": \"Bad\", \"ports\": [], "
		   "\"origin\": \"api\", \"source\": null}}, {\"key\": \"services/good\", "
		   "\"mod_revision\": 2, \"value\": {\"name\": \"good\", \"ports\": [\"8100\"], "
		   "\"origin\": \"api\", \"source\": null}}, {\"key\": "
		   "\"reservations/70000/tcp\", \"mod_revision\": 3, \"value\": {\"service\": "
		   "\"good\", \"origin\": \"runtime\"}}]}",
		   NULL);
	assert_int_equal(registry_file_open(dir, &b), 0);
	assert_int_equal(registry_open(b, &r, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(registry_state(r)->n_svcs, 1);
	assert_string_equal(registry_state(r)->svcs[0].spec.name, "good");
	assert_int_equal(registry_state(r)->n_resv, 0);
	rejected_text(r, text, sizeof(text));
	assert_string_equal(text, "reservations/70000/tcp=reservations/70000/tcp: malformed "
				  "reservation key;services/bad=services/bad: name: invalid "
				  "service name \"Bad\" (expected [a-z0-9][a-z0-9-]{0,62});");
	registry_close(r);
}

/*
 * On the watch: an unreadable value for a service the model holds leaves the last readable
 * one in force (at the new revision: a change made here compares against what the registry
 * holds); a readable one or a delete clears the rejection.
 */
static void test_unreadable_put_keeps_last_good(void **state)
{
	struct fx *f = *state;
	struct kv_op bad = { KV_PUT, "services/alpha",
			     "{\"name\":\"alpha\",\"ports\":[],"
			     "\"origin\":\"api\",\"source\":null,"
			     "\"from_v3\":1}",
			     KV_REV_ANY };
	struct kv_op del = { KV_DEL, "services/zeta", NULL, KV_REV_ANY };
	struct kv_op zbad = { KV_PUT, "services/zeta", "[1]", KV_REV_ANY };
	char text[1024];
	uint64_t rev;
	size_t failed;

	apply_ok(f, "alpha", "[\"8100\"]");
	assert_int_equal(be_txn(f->b, &bad, 1, &rev, &failed), 0);
	assert_int_equal(be_txn(f->b, &zbad, 1, &rev, &failed), 0);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(registry_state(f->r)->n_svcs, 1);
	assert_int_equal(registry_state(f->r)->svcs[0].spec.n_ports, 1); /* the last good */
	assert_int_equal(registry_state(f->r)->svcs[0].mod_rev, 2);
	assert_int_equal(registry_state(f->r)->rev, 3);
	rejected_text(f->r, text, sizeof(text));
	assert_non_null(strstr(text, "services/alpha=services/alpha: from_v3: unknown key;"));
	assert_non_null(strstr(text, "services/zeta="));
	/* a change made here goes through: it compares against revision 2 */
	apply_ok(f, "alpha", "[\"8101\"]");
	assert_int_equal(be_txn(f->b, &del, 1, &rev, &failed), 0);
	assert_int_equal(registry_poll(f->r), 0);
	rejected_text(f->r, text, sizeof(text));
	assert_string_equal(text, "");
	/* and a reopen loads what it can read */
	fx_reopen(f);
	assert_int_equal(registry_state(f->r)->svcs[0].spec.ports[0].lo, 8101);
}

/*
 * A registry that fails the checks a commit passes (here a reservation of a service nobody
 * defines, as an etcdctl put or an unreadable service entry leaves it) opens, enforced as it
 * stands and reported until a change repairs it. Before, it refused to open (every caelumd
 * exited 78 at its next start).
 */
static void test_inconsistent_registry_opens(void **state)
{
	char *dir = *state, text[1024];
	struct registry_backend *b;
	struct registry *r = NULL;
	struct verr e = {};

	write_text(dir, "registry.json",
		   "{\"format\":1,\"revision\":2,\"entries\":[\n"
		   "{\"key\":\"reservations/7300/tcp\",\"mod_revision\":2,\"value\":{\"service\":"
		   "\"ghost\",\"origin\":\"runtime\"}},\n"
		   "{\"key\":\"services/alpha\",\"mod_revision\":1,\"value\":{\"name\":\"alpha\","
		   "\"ports\":[],\"origin\":\"api\",\"source\":null}}\n]}\n",
		   NULL);
	assert_int_equal(registry_file_open(dir, &b), 0);
	assert_int_equal(registry_open(b, &r, &e), 0);
	assert_int_equal(registry_state(r)->n_resv, 1);
	rejected_text(r, text, sizeof(text));
	assert_string_equal(text, "(consistency)=registry: reservations/7300/tcp: reserved for "
				  "unknown service 'ghost';");
	/* a change elsewhere is checked as usual; the inconsistency stays reported */
	assert_int_equal(registry_reserve(r, 7301, IPPROTO_TCP, NULL, "alpha", &e), 0);
	rejected_text(r, text, sizeof(text));
	assert_non_null(strstr(text, "(consistency)="));
	/* a change validated whole passes when it adds no inconsistency, fails when it does */
	{
		struct fx fx = { .r = r };

		apply_ok(&fx, "beta", "[\"8100\"]");
		assert_int_equal(apply_api(&fx, "gamma", "[\"8100\"]", &e), -EINVAL);
		assert_int_equal(e.n, 1);
		assert_non_null(strstr(e.msgs[0], "8100/tcp conflicts with service 'beta'"));
		verr_free(&e);
	}
	/* the repair */
	assert_int_equal(registry_release(r, 7300, IPPROTO_TCP, NULL, &e), 0);
	rejected_text(r, text, sizeof(text));
	assert_string_equal(text, "");
	registry_close(r);
}

/* A temp file left by a crash mid-write is not the registry and does not stop a reopen. */
static void test_leftover_temp_file(void **state)
{
	struct fx *f = *state;

	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	registry_close(f->r);
	f->r = NULL;
	write_text(f->dir, ".registry.json.tmp.12345", "{\"format\": 1, \"revis", NULL);
	write_text(f->dir, "registry.json.tmp", "garbage", NULL);
	fx_open(f);
	{
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/.registry.json.tmp.12345", f->dir);
		assert_int_equal(access(p, F_OK), -1); /* removed: nobody else writes here */
	}
	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_int_equal(registry_state(f->r)->n_svcs, 1);
	assert_int_equal(registry_state(f->r)->n_resv, 1);
	apply_ok(f, "beta", "[\"8200\"]");
	fx_reopen(f);
	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(registry_state(f->r)->n_svcs, 2);
}

/* ---- the log: torn tails, compaction, crash between snapshot and truncation ---- */

static void append_text(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "a");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static size_t file_size(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) ? 0 : (size_t)sb.st_size;
}

/* A kill during an append leaves part of a line: it was never acknowledged and is cut off. */
static void test_wal_torn_tail(void **state)
{
	struct fx *f = *state;
	size_t good;

	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	registry_close(f->r);
	f->r = NULL;
	good = file_size(f->dir, "registry.wal");
	append_text(f->dir, "registry.wal",
		    "{\"rev\":3,\"ops\":[{\"put\":\"reservations/7001/tcp\",\"val");
	fx_open(f);
	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_int_equal(registry_state(f->r)->n_resv, 1);
	assert_int_equal(file_size(f->dir, "registry.wal"), good);
	/* the next transaction is revision 3, and it survives a reopen */
	reserve_ok(f, 7002, IPPROTO_TCP, "alpha");
	assert_int_equal(registry_state(f->r)->rev, 3);
	fx_reopen(f);
	assert_int_equal(registry_state(f->r)->rev, 3);
	assert_int_equal(registry_state(f->r)->n_resv, 2);
	assert_non_null(registry_owner(f->r, 7002, IPPROTO_TCP, NULL));
	assert_null(registry_owner(f->r, 7001, IPPROTO_TCP, NULL));
}

/* A line in the middle that is not a transaction, or a revision out of order: corrupt. */
static char logged[4096];

static void log_keep(enum log_level lvl, const char *text)
{
	(void)lvl;
	strncat(logged, text, sizeof(logged) - strlen(logged) - 1);
}

/* Damage in mid-log: refused (acknowledged transactions follow it), saying how far the
 * registry is readable and how to go on from there. */
static void test_wal_corrupt_hint(void **state)
{
	char *dir = *state, want[1024];
	struct registry_backend *b = NULL;

	write_text(dir, "registry.wal",
		   "{\"rev\":1,\"ops\":[{\"put\":\"a\",\"value\":1}]}\n"
		   "{\"rev\":2,\"ops\":[{\"put\":\"b\",\"value\":2}]}\nnot json\n"
		   "{\"rev\":3,\"ops\":[]}\n",
		   NULL);
	logged[0] = '\0';
	log_set_sink(log_keep);
	assert_int_equal(registry_file_open(dir, &b), -EINVAL);
	log_set_sink(NULL);
	assert_null(b);
	snprintf(want, sizeof(want), "registry log '%s/registry.wal' is corrupt at byte 80 of 108",
		 dir);
	assert_non_null(strstr(logged, want));
	assert_non_null(strstr(logged, "make revision 2."));
	snprintf(want, sizeof(want), "truncate -s 80 %s/registry.wal", dir);
	assert_non_null(strstr(logged, want));
}

static void test_wal_corrupt(void **state)
{
	static const char *const bad[] = {
		"{\"rev\":1,\"ops\":[]}\nnot json\n{\"rev\":2,\"ops\":[]}\n",
		"{\"rev\":1,\"ops\":[]}\n{\"rev\":3,\"ops\":[]}\n{\"rev\":4,\"ops\":[]}\n",
		"{\"rev\":1,\"ops\":[{\"put\":5,\"value\":{}}]}\n{\"rev\":2,\"ops\":[]}\n",
	};
	char *dir = *state;
	struct registry_backend *b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = NULL;
		write_text(dir, "registry.wal", bad[i], NULL);
		if (registry_file_open(dir, &b) != -EINVAL)
			fail_msg("case %zu was not refused with -EINVAL", i);
		assert_null(b);
	}
}

static void reserve_many(struct fx *f, uint16_t from, int n)
{
	for (int i = 0; i < n; i++)
		reserve_ok(f, (uint16_t)(from + i), IPPROTO_TCP, "alpha");
}

/* The log is folded into the snapshot once it outgrows it; nothing is lost either way. */
static void test_wal_compaction(void **state)
{
	struct fx *f = *state;
	struct registry_backend *b = NULL;
	struct verr e = {};

	registry_close(f->r);
	assert_int_equal(registry_file_open(f->dir, &b), 0);
	registry_file_set_compaction(b, 2048);
	assert_int_equal(registry_open(b, &f->r, &e), 0);
	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_many(f, 7000, 200);
	assert_int_equal(registry_state(f->r)->rev, 201);
	/* compacted at least once: a snapshot exists and the log is shorter than 200 lines */
	assert_true(file_size(f->dir, "registry.json") > 0);
	assert_true(file_size(f->dir, "registry.wal") < 200 * 60);
	fx_reopen(f);
	assert_int_equal(registry_state(f->r)->rev, 201);
	assert_int_equal(registry_state(f->r)->n_resv, 200);
	assert_int_equal(registry_state(f->r)->resv[199].port, 7199);
	assert_int_equal(registry_state(f->r)->resv[199].mod_rev, 201);
}

/* Killed after the new snapshot was renamed in, before the log was cut: the log's lines up
 * to the snapshot's revision are skipped, the later ones replayed. */
static void test_wal_replay_after_snapshot(void **state)
{
	struct fx *f = *state;
	struct registry_backend *b = NULL;
	struct verr e = {};
	char path[PATH_MAX], *old_log;

	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_many(f, 7000, 3);
	snprintf(path, sizeof(path), "%s/registry.wal", f->dir);
	old_log = read_text(path, NULL);
	assert_non_null(old_log);
	registry_close(f->r);
	/* force a snapshot at revision 5 */
	assert_int_equal(registry_file_open(f->dir, &b), 0);
	registry_file_set_compaction(b, 1);
	assert_int_equal(registry_open(b, &f->r, &e), 0);
	reserve_many(f, 7003, 1);
	assert_int_equal(file_size(f->dir, "registry.wal"), 0);
	registry_close(f->r);
	f->r = NULL;
	/* the old log comes back (revisions 1..4, all in the snapshot), plus revision 6 */
	write_text(f->dir, "registry.wal", old_log, NULL);
	append_text(f->dir, "registry.wal",
		    "{\"rev\":6,\"ops\":[{\"put\":\"reservations/7100/"
		    "tcp\",\"value\":{\"service\":\"alpha\",\"origin\":\"runtime\"}}]}\n");
	fx_open(f);
	assert_int_equal(registry_state(f->r)->rev, 6);
	assert_int_equal(registry_state(f->r)->n_resv, 5);
	assert_non_null(registry_owner(f->r, 7100, IPPROTO_TCP, NULL));
	free(old_log);
}

/* A retried reservation of a port the service already holds is a no-op success. */
static void test_reserve_retry_noop(void **state)
{
	struct fx *f = *state;
	size_t log;

	apply_ok(f, "alpha", "[\"8100\"]");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	log = file_size(f->dir, "registry.wal");
	reserve_ok(f, 7000, IPPROTO_TCP, "alpha");
	reserve_ok(f, 8100, IPPROTO_TCP, "alpha"); /* declared by its spec */
	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_int_equal(file_size(f->dir, "registry.wal"), log);
}

/*
 * Another writer took the key between our look-up and our commit: the compare fails, and
 * the continuation runs once the model caught up, naming the winner from the model (no
 * blocking read of the backend); the winner being our own service is a success.
 */
static void test_lost_race_named_from_caught_up_model(void **state)
{
	struct fx *f = *state;
	struct kv_op beta = { KV_PUT, "reservations/7100/tcp",
			      "{\"service\":\"beta\",\"origin\":\"runtime\"}", KV_REV_ABSENT };
	struct kv_op alpha = { KV_PUT, "reservations/7101/tcp",
			       "{\"service\":\"alpha\",\"origin\":\"runtime\"}", KV_REV_ABSENT };
	struct outcome o1 = {}, o2 = {};
	struct reg_async as1 = { on_outcome, &o1 }, as2 = { on_outcome, &o2 };
	struct reg_commit *c1, *c2;
	struct verr e = {};
	size_t failed;
	uint64_t rev;

	apply_ok(f, "alpha", "[\"8100\"]");
	apply_ok(f, "beta", "[\"8101\"]");
	assert_int_equal(be_txn(f->b, &beta, 1, &rev, &failed), 0);
	assert_int_equal(be_txn(f->b, &alpha, 1, &rev, &failed), 0);
	/* the model has not seen them: both look free */
	assert_int_equal(
		registry_reserve_async(f->r, 7100, IPPROTO_TCP, NULL, "alpha", &as1, &c1, &e),
		REG_PENDING);
	assert_int_equal(
		registry_reserve_async(f->r, 7101, IPPROTO_TCP, NULL, "alpha", &as2, &c2, &e),
		REG_PENDING);
	assert_int_equal(o1.calls + o2.calls, 0);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o1.calls, 1);
	assert_int_equal(o1.err, -EEXIST);
	assert_string_equal(o1.msg, "7100/tcp: already reserved by service 'beta' (runtime "
				    "reservation, committed concurrently)");
	assert_int_equal(o2.calls, 1);
	assert_int_equal(o2.err, 0);
	assert_int_equal(o2.rev, 0); /* nothing of ours was committed */
	assert_int_equal(registry_state(f->r)->rev, rev);
}

/* A caller that waits for its own commit (a reload) runs only its own continuation: the
 * others in flight go on from the next registry_poll, after it recorded its apply. */
static void test_wait_runs_only_its_own_commit(void **state)
{
	struct fx *f = *state;
	struct outcome o = {};
	struct reg_async as = { on_outcome, &o };
	struct reg_commit *c;
	struct verr e = {};

	apply_ok(f, "alpha", "[\"8100\"]");
	assert_int_equal(
		registry_reserve_async(f->r, 7200, IPPROTO_TCP, NULL, "alpha", &as, &c, &e),
		REG_PENDING);
	assert_int_equal(registry_reserve(f->r, 7201, IPPROTO_TCP, NULL, "alpha", &e), 0);
	/* both are in the model; the first one's continuation has not run */
	assert_string_equal(registry_owner(f->r, 7200, IPPROTO_TCP, NULL), "alpha");
	assert_int_equal(o.calls, 0);
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.rev, 2);
}

/* A change committed by someone else reaches the model and the watchers the same way. */
static void test_foreign_change_reaches_model(void **state)
{
	struct fx *f = *state;
	struct kv_op op = { KV_PUT, "reservations/7000/udp",
			    "{\"service\":\"alpha\",\"origin\":\"runtime\"}", KV_REV_ABSENT };
	size_t failed;
	uint64_t rev;

	apply_ok(f, "alpha", "[\"8100\"]");
	f->notified[0] = 0;
	assert_int_equal(be_txn(f->b, &op, 1, &rev, &failed), 0);
	assert_int_equal(rev, 2);
	/* nothing changes until the watch is read */
	assert_null(registry_owner(f->r, 7000, IPPROTO_UDP, NULL));
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(f->notified[0], 1);
	assert_int_equal(registry_state(f->r)->rev, 2);
	assert_string_equal(registry_owner(f->r, 7000, IPPROTO_UDP, NULL), "alpha");
	assert_int_equal(f->n_last_slots, 1);
	assert_int_equal(f->last_slots[0], REG_SLOT(7000, IPPROTO_UDP));
	/* a commit of ours after it sees it: the owner is known */
	assert_int_equal(registry_state(f->r)->resv[0].mod_rev, 2);
	assert_int_equal(registry_poll(f->r), 0); /* nothing new: no call */
	assert_int_equal(f->notified[0], 1);
}

/* More services than the kernel's maps hold: refused with the numbers, nothing written. */
static void test_too_many_services(void **state)
{
	struct fx *f = *state;
	size_t n = REG_MAX_SERVICES + 1;
	struct service_spec *specs = calloc(n, sizeof(*specs));
	struct verr e = {};
	char name[32], want[128];

	assert_non_null(specs);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "s%05zu", i);
		mkspec(&specs[i], name, "[]", SRC("x"));
	}
	assert_int_equal(registry_sync_files(f->r, specs, n, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 "registry: services: %zu services: at most %d fit the kernel's maps", n,
		 REG_MAX_SERVICES);
	assert_verr_one(&e, want, "one too many");
	verr_free(&e);
	assert_int_equal(registry_state(f->r)->rev, 0);
	assert_int_equal(registry_state(f->r)->n_svcs, 0);
	/* exactly the limit fits */
	assert_int_equal(registry_sync_files(f->r, specs, n - 1, &e), 0);
	assert_int_equal(registry_state(f->r)->n_svcs, n - 1);
	specs_free(specs, n);
}

/* ---- per-host reservations ---- */

static void reserve_host_ok(struct fx *f, uint16_t port, uint8_t proto, const char *host,
			    const char *svc)
{
	struct verr e = {};

	if (registry_reserve(f->r, port, proto, host, svc, &e)) {
		char *all = verr_join(&e);

		fail_msg("reserve %u on %s for %s: %s", port, host, svc, all ? all : "(none)");
	}
}

static int count_claims(const struct reg_claim *c, size_t n, uint16_t port, const char *host,
			const char *svc)
{
	int k = 0;

	for (size_t i = 0; i < n; i++)
		k += c[i].port == port && !strcmp(c[i].service, svc) &&
		     (host ? c[i].host && !strcmp(c[i].host, host) : !c[i].host);
	return k;
}

/* A host-only reservation is in force on its host only; two hosts may differ; the same
 * host may not; it persists under its own key and is released on its own. */
static void test_host_reserve(void **state)
{
	struct fx *f = *state;
	struct reg_claim *c;
	struct verr e = {};
	char *disk;
	size_t n;

	registry_set_host(f->r, "host-a");
	apply_ok(f, "alpha", "[\"8100\"]");
	apply_ok(f, "beta", "[]");
	reserve_host_ok(f, 7000, IPPROTO_TCP, "host-b", "alpha");
	assert_owner(f, 7000, IPPROTO_TCP, NULL, 0); /* not here */
	assert_null(registry_slot_owner(registry_state(f->r), REG_SLOT(7000, IPPROTO_TCP)));
	reserve_host_ok(f, 7000, IPPROTO_TCP, "host-a", "beta");
	assert_owner(f, 7000, IPPROTO_TCP, "beta", ORIGIN_RUNTIME);
	assert_string_equal(registry_slot_owner(registry_state(f->r), REG_SLOT(7000, IPPROTO_TCP)),
			    "beta");
	assert_int_equal(registry_state(f->r)->rev, 4);

	/* on this host: beta only; everywhere: both, with their hosts */
	assert_int_equal(registry_claims(registry_state(f->r), &c, &n), 0);
	assert_int_equal(count_claims(c, n, 7000, "host-a", "beta"), 1);
	assert_int_equal(count_claims(c, n, 7000, "host-b", "alpha"), 0);
	free(c);
	assert_int_equal(registry_claims_all(registry_state(f->r), &c, &n), 0);
	assert_int_equal(count_claims(c, n, 7000, "host-a", "beta"), 1);
	assert_int_equal(count_claims(c, n, 7000, "host-b", "alpha"), 1);
	free(c);

	/* refused: the same host for another service, a spec port, a cluster-wide reservation
	 * over host-only ones of another service, a malformed host; nothing written */
	assert_int_equal(registry_reserve(f->r, 7000, IPPROTO_TCP, "host-b", "beta", &e), -EEXIST);
	assert_verr_one(&e,
			"7000/tcp on host 'host-b': already reserved on host 'host-b' by service "
			"'alpha' (runtime reservation)",
			"same host");
	verr_free(&e);
	assert_int_equal(registry_reserve(f->r, 8100, IPPROTO_TCP, "host-b", "beta", &e), -EEXIST);
	assert_verr_one(&e,
			"8100/tcp on host 'host-b': already reserved by service 'alpha' (declared "
			"in its spec)",
			"spec port");
	verr_free(&e);
	assert_int_equal(registry_reserve(f->r, 7000, IPPROTO_TCP, NULL, "alpha", &e), -EEXIST);
	assert_verr_one(&e,
			"7000/tcp: already reserved on host 'host-a' by service 'beta' (runtime "
			"reservation)",
			"cluster-wide over host-only");
	verr_free(&e);
	assert_int_equal(registry_reserve(f->r, 7001, IPPROTO_TCP, "bad_host", "beta", &e),
			 -EINVAL);
	assert_verr_one(&e, "host: invalid host name 'bad_host'", "bad host");
	verr_free(&e);
	assert_int_equal(registry_release(f->r, 7000, IPPROTO_TCP, "-x", &e), -EINVAL);
	verr_free(&e);
	/* already the service's: no write */
	reserve_host_ok(f, 7000, IPPROTO_TCP, "host-b", "alpha");
	reserve_host_ok(f, 8100, IPPROTO_TCP, "host-b", "alpha");
	assert_int_equal(registry_state(f->r)->rev, 4);

	/* persisted under hostreservations/ with the guard beside it */
	disk = registry_file(f);
	assert_non_null(strstr(disk, "hostreservations/host-b/7000/tcp"));
	assert_non_null(strstr(disk, "portowners/7000/tcp"));
	free(disk);
	fx_reopen(f);
	registry_set_host(f->r, "host-b");
	assert_owner(f, 7000, IPPROTO_TCP, "alpha", ORIGIN_RUNTIME);

	/* release: one host's only */
	assert_int_equal(registry_release(f->r, 7000, IPPROTO_TCP, NULL, &e), -ENOENT);
	verr_free(&e);
	assert_int_equal(registry_release(f->r, 7000, IPPROTO_TCP, "host-b", &e), 0);
	assert_owner(f, 7000, IPPROTO_TCP, NULL, 0);
	assert_int_equal(registry_release(f->r, 7000, IPPROTO_TCP, "host-b", &e), -ENOENT);
	assert_verr_one(&e, "7000/tcp on host 'host-b': not reserved", "released twice");
	verr_free(&e);
	registry_set_host(f->r, "host-a");
	assert_owner(f, 7000, IPPROTO_TCP, "beta", ORIGIN_RUNTIME);
	/* taken on some host: not free for a reservation on every host */
	assert_false(registry_port_free(registry_state(f->r), 7000, IPPROTO_TCP));
	assert_false(registry_port_free(registry_state(f->r), 8100, IPPROTO_TCP));
	assert_true(registry_port_free(registry_state(f->r), 7000, IPPROTO_UDP));
	assert_true(registry_port_free(registry_state(f->r), 6999, IPPROTO_TCP));
}

/* A cluster-wide owner excludes host-only reservations of other services; its own service's
 * host-only reservation adds nothing; deleting a service drops its host-only ones. */
static void test_host_vs_cluster(void **state)
{
	struct fx *f = *state;
	struct verr e = {};
	uint64_t rev;

	registry_set_host(f->r, "host-a");
	apply_ok(f, "alpha", "[]");
	apply_ok(f, "beta", "[]");
	reserve_ok(f, 7001, IPPROTO_UDP, "alpha");
	assert_int_equal(registry_reserve(f->r, 7001, IPPROTO_UDP, "host-b", "beta", &e), -EEXIST);
	assert_verr_one(&e,
			"7001/udp on host 'host-b': already reserved by service 'alpha' (runtime "
			"reservation)",
			"host-only under cluster-wide");
	verr_free(&e);
	rev = registry_state(f->r)->rev;
	reserve_host_ok(f, 7001, IPPROTO_UDP, "host-b", "alpha");
	assert_int_equal(registry_state(f->r)->rev, rev);

	reserve_host_ok(f, 7002, IPPROTO_UDP, "host-a", "beta");
	reserve_host_ok(f, 7002, IPPROTO_UDP, "host-b", "beta");
	/* the service's own host-only reservations do not stop it reserving everywhere */
	reserve_ok(f, 7002, IPPROTO_UDP, "beta");
	assert_owner(f, 7002, IPPROTO_UDP, "beta", ORIGIN_RUNTIME);
	assert_int_equal(registry_service_delete(f->r, "beta", &e), 0);
	for (size_t i = 0; i < registry_state(f->r)->n_resv; i++)
		assert_string_equal(registry_state(f->r)->resv[i].service, "alpha");
	assert_owner(f, 7002, IPPROTO_UDP, NULL, 0);
}

/* What another host writes for (port, proto): the guard written with it. */
static void other_host_reserves(struct fx *f, const char *key, const char *svc,
				const char *guard_key)
{
	char value[128];
	struct kv_op ops[2] = {
		{ KV_PUT, key, value, KV_REV_ABSENT },
		{ KV_PUT, guard_key, "{\"service\":\"x\"}", KV_REV_ANY },
	};
	size_t failed;
	uint64_t rev;

	snprintf(value, sizeof(value), "{\"service\":\"%s\",\"origin\":\"runtime\"}", svc);
	assert_int_equal(be_txn(f->b, ops, 2, &rev, &failed), 0);
}

/*
 * The race etcd cannot see through the keys alone: a cluster-wide reservation and a
 * host-only one are different keys. Another host's commit that the model has not seen yet
 * moved the guard: our compare fails, the store is read again, the owner is named. A
 * commit for another host's different service moved it too: that is no conflict, the retry
 * commits.
 */
static void test_host_cluster_race(void **state)
{
	struct fx *f = *state;
	struct verr e = {};

	registry_set_host(f->r, "host-a");
	apply_ok(f, "alpha", "[]");
	apply_ok(f, "beta", "[]");
	other_host_reserves(f, "reservations/7002/tcp", "beta", "portowners/7002/tcp");
	assert_null(registry_owner(f->r, 7002, IPPROTO_TCP, NULL)); /* not seen yet */
	assert_int_equal(registry_reserve(f->r, 7002, IPPROTO_TCP, "host-b", "alpha", &e), -EEXIST);
	assert_verr_one(&e,
			"7002/tcp on host 'host-b': already reserved by service 'beta' (runtime "
			"reservation, committed concurrently)",
			"lost race, host-only");
	verr_free(&e);
	assert_null(registry_resv(registry_state(f->r), 7002, IPPROTO_TCP, "host-b"));

	other_host_reserves(f, "hostreservations/host-c/7003/tcp", "beta", "portowners/7003/tcp");
	assert_int_equal(registry_reserve(f->r, 7003, IPPROTO_TCP, NULL, "alpha", &e), -EEXIST);
	assert_verr_one(&e,
			"7003/tcp: already reserved on host 'host-c' by service 'beta' (runtime "
			"reservation, committed concurrently)",
			"lost race, cluster-wide");
	verr_free(&e);

	other_host_reserves(f, "hostreservations/host-c/7004/tcp", "beta", "portowners/7004/tcp");
	reserve_host_ok(f, 7004, IPPROTO_TCP, "host-a", "alpha");
	assert_owner(f, 7004, IPPROTO_TCP, "alpha", ORIGIN_RUNTIME);
	assert_non_null(registry_resv(registry_state(f->r), 7004, IPPROTO_TCP, "host-c"));
}

/* Another host's host-only reservation of this host reaches the kernel's slot (delta). */
static void test_host_foreign_change(void **state)
{
	struct fx *f = *state;

	registry_set_host(f->r, "host-a");
	apply_ok(f, "alpha", "[]");
	other_host_reserves(f, "hostreservations/host-a/7005/udp", "alpha", "portowners/7005/udp");
	assert_int_equal(registry_poll(f->r), 0);
	assert_int_equal(f->n_last_slots, 1);
	assert_int_equal(f->last_slots[0], REG_SLOT(7005, IPPROTO_UDP));
	assert_string_equal(registry_slot_owner(f->seen_st, REG_SLOT(7005, IPPROTO_UDP)), "alpha");
}

#define F(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)
#define D(t) cmocka_unit_test_setup_teardown(t, tmpdir_setup, tmpdir_teardown)

static void db_of(struct db_spec *d, const char *name, const char *address)
{
	struct json_object *o = json_object_new_object();
	struct verr e = {};

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "kind", json_object_new_string("postgresql"));
	json_object_object_add(o, "address", json_object_new_string(address));
	assert_int_equal(dbspec_from_json(o, "test", d, &e), 0);
	json_object_put(o);
}

static void assert_verr_has(struct verr *e, const char *part)
{
	char *all = verr_join(e);

	if (!all || !strstr(all, part))
		fail_msg("want '%s' in '%s'", part, all ? all : "(none)");
	free(all);
	verr_free(e);
}

/* A host-only database is in this host's view on its host only; every host's stay in the
 * model; a name is cluster-wide or host-only, never both; a bad host changes nothing. */
static void test_host_db(void **state)
{
	struct fx *f = *state;
	const struct reg_state *st;
	struct db_spec a, b, c;
	struct verr e = {};
	char *disk;

	registry_set_host(f->r, "host-a");
	db_of(&a, "pg", "10.0.0.1:5432");
	db_of(&b, "pg", "10.0.0.2:5432");
	db_of(&c, "shared", "10.0.0.3:5432");
	assert_int_equal(registry_db_apply(f->r, &b, ORIGIN_API, "host-b", &e), 0);
	st = registry_state(f->r);
	assert_null(registry_db(f->r, "pg")); /* host-b's: not here */
	assert_false(registry_db_here(st, registry_db_at(st, "pg", "host-b")));
	assert_int_equal(registry_db_apply(f->r, &a, ORIGIN_API, "host-a", &e), 0);
	st = registry_state(f->r);
	assert_int_equal(st->n_dbs, 2);
	assert_string_equal(registry_db(f->r, "pg")->spec.host, "10.0.0.1");
	assert_string_equal(registry_db(f->r, "pg")->host, "host-a");

	/* refused: the other kind of one name (both named), a bad host; nothing written */
	assert_int_equal(registry_db_apply(f->r, &a, ORIGIN_API, NULL, &e), -EEXIST);
	assert_verr_has(&e, "database 'pg' is defined on host 'host-a'");
	assert_int_equal(registry_db_apply(f->r, &c, ORIGIN_API, NULL, &e), 0);
	assert_int_equal(registry_db_apply(f->r, &c, ORIGIN_API, "host-b", &e), -EEXIST);
	assert_verr_has(&e, "database 'shared' is defined on every host; a definition on host "
			    "'host-b'");
	assert_int_equal(registry_db_apply(f->r, &c, ORIGIN_API, "bad_host", &e), -EINVAL);
	assert_verr_has(&e, "invalid host name 'bad_host'");
	assert_int_equal(registry_state(f->r)->n_dbs, 3);

	/* persisted under hostdatabases/, read back with the host */
	disk = registry_file(f);
	assert_non_null(strstr(disk, "hostdatabases/host-b/pg"));
	free(disk);
	fx_reopen(f);
	registry_set_host(f->r, "host-b");
	assert_string_equal(registry_db(f->r, "pg")->spec.host, "10.0.0.2");
	assert_string_equal(registry_db(f->r, "shared")->spec.host, "10.0.0.3");

	/* delete: one host's only */
	assert_int_equal(registry_db_delete(f->r, "pg", NULL, &e), -ENOENT);
	verr_free(&e);
	assert_int_equal(registry_db_delete(f->r, "pg", "host-b", &e), 0);
	assert_null(registry_db(f->r, "pg"));
	registry_set_host(f->r, "host-a");
	assert_non_null(registry_db(f->r, "pg"));
	dbspec_free(&a);
	dbspec_free(&b);
	dbspec_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		F(test_apply_persists),
		F(test_host_db),
		F(test_reserve_persists),
		F(test_reserve_refused),
		F(test_release),
		F(test_sync_files),
		F(test_sync_conflict_changes_nothing),
		F(test_sync_with_prior_messages),
		F(test_spec_vs_runtime_reservation),
		F(test_file_spec_vs_runtime_reservation),
		F(test_delete_drops_reservations),
		F(test_origin_ownership),
		F(test_watchers),
		F(test_claims),
		F(test_claims_empty),
		D(test_backend_txn_cas),
		D(test_concurrent_change_refused),
		D(test_lock),
		D(test_corrupt_file),
		D(test_snapshot_layouts),
		D(test_snapshot_values_in_file),
		D(test_corrupt_value),
		D(test_inconsistent_registry_opens),
		F(test_unreadable_put_keeps_last_good),
		F(test_leftover_temp_file),
		F(test_wal_torn_tail),
		D(test_wal_corrupt),
		D(test_wal_corrupt_hint),
		F(test_wal_compaction),
		F(test_wal_replay_after_snapshot),
		F(test_reserve_retry_noop),
		F(test_too_many_services),
		F(test_foreign_change_reaches_model),
		F(test_lost_race_named_from_caught_up_model),
		F(test_wait_runs_only_its_own_commit),
		F(test_host_reserve),
		F(test_host_vs_cluster),
		F(test_host_cluster_race),
		F(test_host_foreign_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
