// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"
#include "connect_user.h"
#include "daemon.h"
#include "databases.h"
#include "dbprobe.h"
#include "log.h"
#include "dbresolve.h"
#include "hostaddr.h"
#include "probe.h"
#include "verify.h"

#define REACH_INTERVAL_NS (10ULL * 1000000000ULL)
#define REACH_TIMEOUT_MS  2000

static int watch_open(struct daemon *d);
static int source_sync(void *ctx, const struct reg_state *st);

int databases_setup(struct daemon *d)
{
	const char *path;
	int err;

	err = svcs_internal(&d->svcs, PROBE_CGROUP, &d->probe_cgid, &path);
	if (err)
		return err;
	snprintf(d->probe_cgroup, sizeof(d->probe_cgroup), "%s", path);
	err = watch_open(d);
	if (err)
		return err;
	/* The databases component's sync writes its maps from this runtime. */
	if (daemon_connect(d))
		connect_set_source(daemon_connect(d), source_sync, d);
	return 0;
}

const struct db_rt *databases_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_dbs; i++)
		if (!strcmp(d->dbs[i].name, name))
			return &d->dbs[i];
	return NULL;
}

const char *databases_name_of(struct daemon *d, uint32_t id)
{
	for (size_t i = 0; i < d->n_dbs; i++)
		if (d->dbs[i].id == id)
			return d->dbs[i].name;
	return NULL;
}

/* ---- resolution ---- */

enum { TRIGGER_INTERVAL, TRIGGER_REQUEST, TRIGGER_RELOAD, TRIGGER_MAX };
static const char *const trigger_names[TRIGGER_MAX] = { "interval", "request", "reload" };

struct db_watch {
	struct dbresolve *res;
	struct hostaddr *host; /* NULL: netlink unavailable, addresses read at start only */
	struct host_addr addrs[CAELUM_MAX_HOST_ADDRS];
	size_t n_addrs;
};

static bool host_is_name(const struct db_rt *rt)
{
	struct db_addr tmp[DB_MAX_ADDRS];
	size_t n;

	return !db_resolve_static(rt->host, rt->port, tmp, DB_MAX_ADDRS, &n);
}

/* Blocking lookup for a database that is new or got a new address (startup, apply). */
static void resolve_now(struct db_rt *rt, const struct db_spec *s, uint64_t now)
{
	snprintf(rt->host, sizeof(rt->host), "%s", s->host);
	rt->port = s->port;
	rt->resolve_error[0] = '\0';
	rt->n_addrs = 0;
	rt->n_prev_addrs = 0;
	rt->last_resolve_ns = now;
	if (db_resolve(s, rt->addrs, DB_MAX_ADDRS, &rt->n_addrs, rt->resolve_error,
		       sizeof(rt->resolve_error)))
		p_warn("database '%s': %s", s->name, rt->resolve_error);
}

static void resolve_start(struct daemon *d, struct db_rt *rt, uint32_t trigger, uint64_t now)
{
	int err;

	rt->last_resolve_ns = now;
	if (!d->db_watch)
		return;
	err = dbresolve_start(d->db_watch->res, rt->name, rt->host, rt->port, trigger);
	if (err && err != -EALREADY)
		p_warn("failed to start resolving database '%s' host '%s': %s", rt->name, rt->host,
		       strerror(-err));
}

/* The runtime table follows the registry: kept entries keep their state and addresses. */
static int table_update(struct daemon *d, bool force)
{
	const struct reg_state *st = registry_state(d->reg);
	struct db_rt *v = calloc(st->n_dbs + 1, sizeof(*v));
	uint64_t now = time_now_ns();
	size_t k = 0;

	if (!v)
		return -ENOMEM;
	/* Only the definitions in force here (cluster-wide, this host's) reach the kernel. */
	for (size_t j = 0; j < st->n_dbs; j++) {
		const struct db_spec *s = &st->dbs[j].spec;
		const struct db_rt *old;
		size_t i = k;

		if (!registry_db_here(st, &st->dbs[j]))
			continue;
		k++;
		old = databases_find(d, s->name);
		bool same = old && old->port == s->port && !strcmp(old->host, s->host);

		if (old)
			v[i] = *old;
		else
			v[i] = (struct db_rt){ .reachable = -1 };
		snprintf(v[i].name, sizeof(v[i].name), "%s", s->name);
		v[i].id = db_id_of(s->name);
		if (!same)
			resolve_now(&v[i], s, now);
		else if (force && host_is_name(&v[i]))
			resolve_start(d, &v[i], TRIGGER_RELOAD,
				      now); /* keeps the last until then */
	}
	/* Probes in flight for databases that are gone. */
	for (size_t i = 0; i < d->n_dbs; i++)
		if (d->dbs[i].inflight && !registry_db(d->reg, d->dbs[i].name))
			probe_cancel(d->dbs[i].inflight);
	free(d->dbs);
	d->dbs = v;
	d->n_dbs = k;
	return 0;
}

/* ---- kernel maps ---- */

/*
 * The addresses of dbs[i] the kernel gets (into out): one whose key another database with a
 * smaller name holds too (two databases on one local port) is that database's; this one is
 * then shadowed by it. keys[i * DB_MAX_ADDRS + j] is the key of d->dbs[i].addrs[j].
 */
static size_t addrs_owned(struct daemon *d, size_t i, const struct caelum_db_addr_key *keys,
			  struct db_addr *out)
{
	struct db_rt *rt = &d->dbs[i];
	size_t n = 0;

	rt->shadowed_by[0] = '\0';
	for (size_t j = 0; j < rt->n_addrs; j++) {
		const struct caelum_db_addr_key *k = &keys[i * DB_MAX_ADDRS + j];
		const struct db_rt *owner = NULL;

		for (size_t m = 0; m < d->n_dbs && !owner; m++) {
			if (m == i || strcmp(d->dbs[m].name, rt->name) >= 0)
				continue;
			for (size_t x = 0; x < d->dbs[m].n_addrs && !owner; x++)
				if (!memcmp(&keys[m * DB_MAX_ADDRS + x], k, sizeof(*k)))
					owner = &d->dbs[m];
		}
		if (owner)
			snprintf(rt->shadowed_by, sizeof(rt->shadowed_by), "%s", owner->name);
		else
			out[n++] = rt->addrs[j];
	}
	return n;
}

static int decls_fill(struct daemon *d, struct conn_decl *decls, size_t k)
{
	const struct reg_state *st = registry_state(d->reg);

	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct service_spec *s = &st->svcs[i].spec;
		uint64_t cgid;
		uint16_t level;

		svcs_ident(&d->svcs, s->name, &cgid, &level);
		for (size_t j = 0; cgid != CAELUM_CGID_NONE && j < s->n_dbs; j++)
			decls[k++] = (struct conn_decl){ cgid, db_id_of(s->dbs[j].name),
							 (uint64_t)s->dbs[j].max_connections };
	}
	return (int)k;
}

static int maps_sync(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	struct conn_db *dbs = calloc(d->n_dbs + 1, sizeof(*dbs));
	struct db_addr *owned = calloc(d->n_dbs * DB_MAX_ADDRS + 1, sizeof(*owned));
	struct caelum_db_addr_key *keys = calloc(d->n_dbs * DB_MAX_ADDRS + 1, sizeof(*keys));
	struct conn_decl *decls;
	size_t n = d->n_dbs, k = 0;
	int err = -ENOMEM;

	for (size_t i = 0; i < st->n_svcs; i++)
		n += st->svcs[i].spec.n_dbs;
	decls = calloc(n + 1, sizeof(*decls));
	if (!dbs || !decls || !owned || !keys)
		goto out;
	for (size_t i = 0; i < d->n_dbs; i++)
		for (size_t j = 0; j < d->dbs[i].n_addrs; j++)
			connect_key(daemon_connect(d), &d->dbs[i].addrs[j],
				    &keys[i * DB_MAX_ADDRS + j]);
	for (size_t i = 0; i < d->n_dbs; i++) {
		const struct reg_db *rd = registry_db(d->reg, d->dbs[i].name);
		struct db_addr *mine = &owned[i * DB_MAX_ADDRS];

		dbs[i] = (struct conn_db){ d->dbs[i].id, rd && rd->spec.unmanaged_allow, mine,
					   addrs_owned(d, i, keys, mine) };
		/* Caelum's own probes may reach every database. */
		decls[k++] = (struct conn_decl){ d->probe_cgid, d->dbs[i].id, 0 };
	}
	k = (size_t)decls_fill(d, decls, k);
	err = connect_sync(daemon_connect(d), dbs, d->n_dbs, decls, k);
	/* connect_sync keeps exactly the databases' keys: put the canary back. */
	if (!err)
		err = verify_canaries(d);
out:
	free(keys);
	free(owned);
	free(dbs);
	free(decls);
	return err;
}

int databases_follow(struct daemon *d, bool force_resolve)
{
	int err = table_update(d, force_resolve);

	if (err)
		p_err("failed to follow the registry's databases: %s", strerror(-err));
	return err;
}

/* The databases component's sync (connect_set_source): the maps from the runtime table,
 * which databases_follow() brought to the registry first. */
static int source_sync(void *ctx, const struct reg_state *st)
{
	struct daemon *d = ctx;
	int err;

	(void)st; /* the same model: registry_state(d->reg) */
	err = maps_sync(d);
	if (err)
		p_err("failed to apply database rules: %s", strerror(-err));
	return err;
}

static struct json_object *addrs_json(const struct db_addr *a, size_t n)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		char buf[64];

		db_addr_fmt(&a[i], buf, sizeof(buf));
		json_object_array_add(arr, json_object_new_string(buf));
	}
	return arr;
}

static void emit_resolved(struct daemon *d, const struct db_rt *rt, const char *type,
			  uint32_t trigger)
{
	struct json_object *e = event_new(d->ev, type, "detected");

	json_object_object_add(e, "database", json_object_new_string(rt->name));
	json_object_object_add(e, "host", json_object_new_string(rt->host));
	json_object_object_add(e, "trigger", json_object_new_string(trigger_names[trigger]));
	if (!strcmp(type, "db_address_changed")) {
		json_object_object_add(e, "from", addrs_json(rt->prev_addrs, rt->n_prev_addrs));
		json_object_object_add(e, "to", addrs_json(rt->addrs, rt->n_addrs));
	} else {
		json_object_object_add(e, "severity", json_object_new_string("warning"));
		json_object_object_add(e, "detail", json_object_new_string(rt->resolve_error));
		json_object_object_add(e, "addresses", addrs_json(rt->addrs, rt->n_addrs));
	}
	events_emit(d->ev, e);
}

static void on_resolved(void *ctx, const struct dbresolve_result *r)
{
	struct daemon *d = ctx;
	struct db_rt *rt = (struct db_rt *)databases_find(d, r->name);
	int err;

	if (!rt || strcmp(rt->host, r->host) || rt->port != r->port)
		return; /* deleted, or given another address meanwhile */
	rt->resolutions++;
	if (r->err) {
		bool first = !rt->resolve_error[0];

		snprintf(rt->resolve_error, sizeof(rt->resolve_error), "%s", r->why);
		if (first) {
			p_warn("database '%s': %s; keeping its last addresses", rt->name, r->why);
			emit_resolved(d, rt, "db_resolve_failed", r->trigger);
		}
		return;
	}
	rt->resolve_error[0] = '\0';
	if (db_addrs_same(rt->addrs, rt->n_addrs, r->addrs, r->n))
		return;
	memcpy(rt->prev_addrs, rt->addrs, sizeof(rt->addrs));
	rt->n_prev_addrs = rt->n_addrs;
	memcpy(rt->addrs, r->addrs, sizeof(rt->addrs));
	rt->n_addrs = r->n;
	rt->addrs_changed_ns = time_now_ns();
	err = daemon_connect(d) ? maps_sync(d) : 0;
	if (err)
		p_err("failed to swap database '%s' addresses in the kernel: %s", rt->name,
		      strerror(-err));
	emit_resolved(d, rt, "db_address_changed", r->trigger);
}

int databases_resolve(struct daemon *d, const char *name, uint64_t *resolutions)
{
	struct db_rt *rt = (struct db_rt *)databases_find(d, name);
	int err;

	if (!rt)
		return -ENOENT;
	if (!d->db_watch)
		return -ENODEV;
	*resolutions = rt->resolutions;
	if (!host_is_name(rt)) {
		rt->resolutions++; /* a literal or localhost: nothing to look up */
		return 0;
	}
	rt->last_resolve_ns = time_now_ns();
	err = dbresolve_start(d->db_watch->res, rt->name, rt->host, rt->port, TRIGGER_REQUEST);
	if (err == -EALREADY) {
		/* The lookup in flight may predate the caller's change: wait for the next one. */
		rt->resolve_again = true;
		(*resolutions)++;
		err = 0;
	}
	return err;
}

/* ---- host addresses ---- */

static void host_sync(struct daemon *d)
{
	struct db_watch *w = d->db_watch;
	bool truncated;
	int err;

	err = hostaddr_list(w->addrs, CAELUM_MAX_HOST_ADDRS, &w->n_addrs, &truncated);
	if (err) {
		p_warn("failed to list host addresses: %s; keeping the last list", strerror(-err));
		return;
	}
	if (truncated)
		p_warn("the host has more than %d addresses; the rest are not LOCAL for databases",
		       CAELUM_MAX_HOST_ADDRS);
	if (!daemon_connect(d))
		return;
	err = connect_host_sync(daemon_connect(d), w->addrs, w->n_addrs);
	if (err)
		p_warn("failed to write host addresses to cm_db_host: %s", strerror(-err));
}

static void watch_tick(struct daemon *d, uint64_t now)
{
	struct db_watch *w = d->db_watch;

	if (!w)
		return;
	if (w->host && hostaddr_changed(w->host)) {
		host_sync(d);
		if (daemon_connect(d) && maps_sync(d))
			p_err("failed to re-sync database rules after a host address change");
	}
	dbresolve_poll(w->res, on_resolved, d);
	for (size_t i = 0; i < d->n_dbs; i++) {
		struct db_rt *rt = &d->dbs[i];
		const struct reg_db *rd = registry_db(d->reg, rt->name);
		uint64_t every = rd ? rd->spec.resolve_interval_s * 1000000000ULL : 0;

		if (rt->resolve_again && !dbresolve_pending(w->res, rt->name)) {
			rt->resolve_again = false;
			resolve_start(d, rt, TRIGGER_REQUEST, now);
		} else if (rd && now - rt->last_resolve_ns >= every && host_is_name(rt) &&
			   !dbresolve_pending(w->res, rt->name)) {
			resolve_start(d, rt, TRIGGER_INTERVAL, now);
		}
	}
}

static int watch_open(struct daemon *d)
{
	struct db_watch *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	err = dbresolve_new(&w->res);
	if (err) {
		free(w);
		return err;
	}
	err = hostaddr_open(&w->host);
	if (err) {
		w->host = NULL;
		p_warn("failed to open rtnetlink for host addresses: %s; read once at start",
		       strerror(-err));
	}
	d->db_watch = w;
	host_sync(d);
	return 0;
}

static void watch_close(struct daemon *d)
{
	if (!d->db_watch)
		return;
	dbresolve_free(d->db_watch->res);
	hostaddr_close(d->db_watch->host);
	free(d->db_watch);
	d->db_watch = NULL;
}

/* ---- reachability ---- */

static void emit_reach(struct daemon *d, struct db_rt *rt, bool up, const char *detail)
{
	struct json_object *e =
		event_new(d->ev, up ? "db_recovered" : "db_unreachable", "detected");

	json_object_object_add(e, "database", json_object_new_string(rt->name));
	json_object_object_add(e, "detail", json_object_new_string(detail));
	events_emit(d->ev, e);
}

struct reach_ctx {
	struct daemon *d;
	char name[DB_NAME_MAX + 1];
};

static void on_reach(void *ctx, const struct probe_result *r)
{
	struct reach_ctx *rc = ctx;
	struct db_rt *rt = (struct db_rt *)databases_find(rc->d, rc->name);

	if (rt) {
		rt->inflight = NULL;
		snprintf(rt->detail, sizeof(rt->detail), "%s", r->detail);
		/* The first result only sets the state: an event says it changed. */
		if (rt->reachable >= 0 && rt->reachable != r->ok)
			emit_reach(rc->d, rt, r->ok, r->detail);
		rt->reachable = r->ok;
	}
	free(rc);
}

static void reach_start(struct daemon *d, struct db_rt *rt, const struct db_spec *s)
{
	struct probe_spec ps = { .kind = PROBE_DB,
				 .db_kind = s->kind,
				 .timeout_ms = REACH_TIMEOUT_MS };
	struct reach_ctx *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return;
	rc->d = d;
	snprintf(rc->name, sizeof(rc->name), "%s", rt->name);
	if (strchr(s->host, ':'))
		snprintf(ps.target, sizeof(ps.target), "[%s]:%u", s->host, s->port);
	else
		snprintf(ps.target, sizeof(ps.target), "%s:%u", s->host, s->port);
	snprintf(ps.cgroup, sizeof(ps.cgroup), "%s", d->probe_cgroup);
	if (probe_start(d->loop, &ps, on_reach, rc, &rt->inflight)) {
		rt->inflight = NULL;
		free(rc);
	}
}

void databases_tick(struct daemon *d, uint64_t now)
{
	watch_tick(d, now);
	for (size_t i = 0; i < d->n_dbs; i++) {
		struct db_rt *rt = &d->dbs[i];
		const struct reg_db *rd = registry_db(d->reg, rt->name);

		if (!rd || rt->inflight || now - rt->last_probe_ns < REACH_INTERVAL_NS)
			continue;
		rt->last_probe_ns = now;
		reach_start(d, rt, &rd->spec);
	}
}

static bool rt_local(const struct daemon *d, const struct db_rt *rt)
{
	for (size_t i = 0; i < rt->n_addrs; i++) {
		struct caelum_db_addr_key k;

		connect_key(daemon_connect(d), &rt->addrs[i], &k);
		if (k.scope == CAELUM_DB_SCOPE_LOCAL)
			return true;
	}
	return false;
}

/* addresses, their previous set and when it changed, and whether they are LOCAL. */
static void db_json_addrs(struct daemon *d, const struct db_rt *rt, struct json_object *o)
{
	char when[64];

	json_object_object_add(o, "addresses",
			       rt ? addrs_json(rt->addrs, rt->n_addrs) : json_object_new_array());
	json_object_object_add(
		o, "previous_addresses",
		rt && rt->addrs_changed_ns ? addrs_json(rt->prev_addrs, rt->n_prev_addrs) : NULL);
	if (rt && rt->addrs_changed_ns)
		time_format_rfc3339(rt->addrs_changed_ns, when, sizeof(when));
	json_object_object_add(o, "addresses_changed_at",
			       rt && rt->addrs_changed_ns ? json_object_new_string(when) : NULL);
	json_object_object_add(o, "local", json_object_new_boolean(rt && rt_local(d, rt)));
	json_object_object_add(o, "shadowed_by",
			       rt && rt->shadowed_by[0] ? json_object_new_string(rt->shadowed_by)
							: NULL);
	json_object_object_add(o, "resolutions",
			       json_object_new_int64(rt ? (int64_t)rt->resolutions : 0));
}

static struct json_object *db_json(struct daemon *d, const struct reg_db *rd)
{
	/* another host's definition: its addresses and reachability are that host's */
	const struct db_rt *rt = registry_db_here(registry_state(d->reg), rd)
					 ? databases_find(d, rd->spec.name)
					 : NULL;
	struct json_object *o = dbspec_to_json(&rd->spec);

	/* a host-only definition's host; absent: on every host */
	if (rd->host)
		json_object_object_add(o, "host", json_object_new_string(rd->host));
	json_object_object_add(o, "origin", json_object_new_string(origin_name(rd->origin)));
	json_object_object_add(o, "source",
			       rd->spec.source ? json_object_new_string(rd->spec.source) : NULL);
	db_json_addrs(d, rt, o);
	json_object_object_add(
		o, "resolve_error",
		rt && rt->resolve_error[0] ? json_object_new_string(rt->resolve_error) : NULL);
	json_object_object_add(o, "reachable",
			       !rt || rt->reachable < 0 ? NULL
							: json_object_new_boolean(rt->reachable));
	json_object_object_add(o, "detail",
			       rt && rt->detail[0] ? json_object_new_string(rt->detail) : NULL);
	return o;
}

struct json_object *databases_json(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < st->n_dbs; i++)
		json_object_array_add(arr, db_json(d, &st->dbs[i]));
	return arr;
}

struct json_object *database_json(struct daemon *d, const char *name)
{
	const struct reg_state *st = registry_state(d->reg);
	const struct reg_db *rd = registry_db(d->reg, name);
	struct json_object *o, *users = json_object_new_array();

	/* not defined here: another host's definition (the first) */
	for (size_t i = 0; !rd && i < st->n_dbs; i++)
		if (!strcmp(st->dbs[i].spec.name, name))
			rd = &st->dbs[i];

	if (!rd) {
		json_object_put(users);
		return NULL;
	}
	o = db_json(d, rd);
	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct service_spec *s = &st->svcs[i].spec;

		for (size_t j = 0; j < s->n_dbs; j++) {
			struct json_object *u;
			uint64_t cgid;
			uint16_t level;

			if (strcmp(s->dbs[j].name, name))
				continue;
			svcs_ident(&d->svcs, s->name, &cgid, &level);
			u = json_object_new_object();
			json_object_object_add(u, "service", json_object_new_string(s->name));
			json_object_object_add(
				u, "max_connections",
				s->dbs[j].max_connections
					? json_object_new_int64(s->dbs[j].max_connections)
					: NULL);
			json_object_object_add(
				u, "connections",
				daemon_connect(d)
					? json_object_new_int64(connect_count(daemon_connect(d),
									      cgid, db_id_of(name)))
					: NULL);
			json_object_array_add(users, u);
		}
	}
	json_object_object_add(o, "services", users);
	return o;
}

void databases_close(struct daemon *d)
{
	for (size_t i = 0; i < d->n_dbs; i++)
		probe_cancel(d->dbs[i].inflight);
	free(d->dbs);
	d->dbs = NULL;
	d->n_dbs = 0;
	watch_close(d);
}
