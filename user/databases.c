// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"
#include "connect.h"
#include "daemon.h"
#include "databases.h"
#include "dbprobe.h"
#include "log.h"
#include "probe.h"

#define REACH_INTERVAL_NS (10ULL * 1000000000ULL)
#define REACH_TIMEOUT_MS 2000

static void comp_unavailable(struct daemon *d, const char *what, int err)
{
	snprintf(d->comp_error[CAELUM_COMP_DATABASES], sizeof(d->comp_error[0]),
		 "unavailable: %s: %s", what, strerror(-err));
	p_warn("component 'databases' %s; continuing without it",
	       d->comp_error[CAELUM_COMP_DATABASES]);
}

int databases_setup(struct daemon *d)
{
	const char *path;
	int err;

	err = svcs_internal(&d->svcs, PROBE_CGROUP, &d->probe_cgid, &path);
	if (err)
		return err;
	snprintf(d->probe_cgroup, sizeof(d->probe_cgroup), "%s", path);
	err = connect_load(&d->env, &d->connect);
	if (!err)
		err = connect_attach(d->connect, &d->env);
	if (err) {
		connect_close(d->connect);
		d->connect = NULL;
		comp_unavailable(d, "cgroup connect/sendmsg/sock_release programs", err);
		return 0;
	}
	return databases_apply(d, true);
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

static void resolve(struct db_rt *rt, const struct db_spec *s)
{
	snprintf(rt->host, sizeof(rt->host), "%s", s->host);
	rt->port = s->port;
	rt->resolve_error[0] = '\0';
	if (db_resolve(s, rt->addrs, DB_MAX_ADDRS, &rt->n_addrs, rt->resolve_error,
		       sizeof(rt->resolve_error)))
		p_warn("database '%s': %s", s->name, rt->resolve_error);
}

/* The runtime table follows the registry: kept entries keep their state and addresses. */
static int table_update(struct daemon *d, bool force)
{
	const struct reg_state *st = registry_state(d->reg);
	struct db_rt *v = calloc(st->n_dbs + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_dbs; i++) {
		const struct db_spec *s = &st->dbs[i].spec;
		const struct db_rt *old = databases_find(d, s->name);
		bool same = old && old->port == s->port && !strcmp(old->host, s->host);

		if (old)
			v[i] = *old;
		else
			v[i] = (struct db_rt){ .reachable = -1 };
		snprintf(v[i].name, sizeof(v[i].name), "%s", s->name);
		v[i].id = db_id_of(s->name);
		if (force || !same)
			resolve(&v[i], s);
	}
	/* Probes in flight for databases that are gone. */
	for (size_t i = 0; i < d->n_dbs; i++)
		if (d->dbs[i].inflight && !registry_db(d->reg, d->dbs[i].name))
			probe_cancel(d->dbs[i].inflight);
	free(d->dbs);
	d->dbs = v;
	d->n_dbs = st->n_dbs;
	return 0;
}

static int maps_sync(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	struct conn_db *dbs = calloc(d->n_dbs + 1, sizeof(*dbs));
	struct conn_decl *decls;
	size_t n = d->n_dbs, k = 0;
	int err;

	for (size_t i = 0; i < st->n_svcs; i++)
		n += st->svcs[i].spec.n_dbs;
	decls = calloc(n + 1, sizeof(*decls));
	if (!dbs || !decls) {
		free(dbs);
		free(decls);
		return -ENOMEM;
	}
	for (size_t i = 0; i < d->n_dbs; i++) {
		const struct reg_db *rd = registry_db(d->reg, d->dbs[i].name);

		dbs[i] = (struct conn_db){ d->dbs[i].id, rd && rd->spec.unmanaged_allow, d->dbs[i].addrs,
					   d->dbs[i].n_addrs };
		/* Caelum's own probes may reach every database. */
		decls[k++] = (struct conn_decl){ d->probe_cgid, d->dbs[i].id, 0 };
	}
	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct service_spec *s = &st->svcs[i].spec;
		uint64_t cgid;
		uint16_t level;

		svcs_ident(&d->svcs, s->name, &cgid, &level);
		for (size_t j = 0; cgid != CAELUM_CGID_NONE && j < s->n_dbs; j++)
			decls[k++] = (struct conn_decl){ cgid, db_id_of(s->dbs[j].name),
							 (uint64_t)s->dbs[j].max_connections };
	}
	err = connect_sync(d->connect, dbs, d->n_dbs, decls, k);
	free(dbs);
	free(decls);
	return err;
}

int databases_apply(struct daemon *d, bool force_resolve)
{
	int err = table_update(d, force_resolve);

	if (!err && d->connect)
		err = maps_sync(d);
	if (err)
		p_err("failed to apply database rules: %s", strerror(-err));
	return err;
}

static void emit_reach(struct daemon *d, struct db_rt *rt, bool up, const char *detail)
{
	struct json_object *e = event_new(d->ev, up ? "db_recovered" : "db_unreachable", "detected");

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
	struct probe_spec ps = { .kind = PROBE_DB, .db_kind = s->kind, .timeout_ms = REACH_TIMEOUT_MS };
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
	for (size_t i = 0; i < d->n_dbs; i++) {
		struct db_rt *rt = &d->dbs[i];
		const struct reg_db *rd = registry_db(d->reg, rt->name);

		if (!rd || rt->inflight || now - rt->last_probe_ns < REACH_INTERVAL_NS)
			continue;
		rt->last_probe_ns = now;
		reach_start(d, rt, &rd->spec);
	}
}

static struct json_object *addrs_json(const struct db_rt *rt)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < rt->n_addrs; i++) {
		char buf[64];

		db_addr_fmt(&rt->addrs[i], buf, sizeof(buf));
		json_object_array_add(arr, json_object_new_string(buf));
	}
	return arr;
}

static struct json_object *db_json(struct daemon *d, const struct reg_db *rd)
{
	const struct db_rt *rt = databases_find(d, rd->spec.name);
	struct json_object *o = dbspec_to_json(&rd->spec);

	json_object_object_add(o, "origin", json_object_new_string(origin_name(rd->origin)));
	json_object_object_add(o, "source",
			       rd->spec.source ? json_object_new_string(rd->spec.source) : NULL);
	json_object_object_add(o, "addresses", rt ? addrs_json(rt) : json_object_new_array());
	json_object_object_add(o, "resolve_error", rt && rt->resolve_error[0]
							   ? json_object_new_string(rt->resolve_error)
							   : NULL);
	json_object_object_add(o, "reachable", !rt || rt->reachable < 0
						       ? NULL
						       : json_object_new_boolean(rt->reachable));
	json_object_object_add(o, "detail", rt && rt->detail[0] ? json_object_new_string(rt->detail)
								: NULL);
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
			json_object_object_add(u, "max_connections",
					       s->dbs[j].max_connections ? json_object_new_int64(s->dbs[j].max_connections)
									 : NULL);
			json_object_object_add(u, "connections",
					       d->connect ? json_object_new_int64(connect_count(d->connect, cgid, db_id_of(name)))
							  : NULL);
			json_object_array_add(users, u);
		}
	}
	json_object_object_add(o, "services", users);
	return o;
}

void databases_status(struct daemon *d, struct json_object *components)
{
	struct json_object *o = json_object_new_object(), *progs = json_object_new_array(), *a;
	int mode = d->cfg.comp_mode[CAELUM_COMP_DATABASES];
	bool all = d->connect != NULL;

	for (int i = 0; d->connect && i < CONNECT_NPROGS; i++) {
		const char *name;
		int type, fd = connect_prog_fd(d->connect, i, &name, &type);
		struct json_object *p = bpfinfo_prog(fd);

		if (!p)
			p = json_object_new_object();
		json_object_object_add(p, "attach_type",
				       json_object_new_string(libbpf_bpf_attach_type_str(type)));
		json_object_object_add(p, "attached",
				       json_object_new_boolean(bpfinfo_attached(d->env.cg_fd, type,
										bpfinfo_prog_id(fd))));
		json_object_object_add(p, "link", bpfinfo_link(connect_link_fd(d->connect, i)));
		json_object_object_add(p, "link_at_start",
				       json_object_new_string(connect_link_outcome(d->connect, i)));
		if (!json_object_object_get_ex(p, "attached", &a) || !json_object_get_boolean(a))
			all = false;
		json_object_array_add(progs, p);
	}
	json_object_object_add(o, "name", json_object_new_string("databases"));
	json_object_object_add(o, "mode", json_object_new_string(mode_name(mode)));
	json_object_object_add(o, "attached", json_object_new_boolean(all));
	json_object_object_add(o, "enforcing", json_object_new_boolean(all && mode == CAELUM_MODE_ENFORCE));
	json_object_object_add(o, "programs", progs);
	if (d->comp_error[CAELUM_COMP_DATABASES][0])
		json_object_object_add(o, "error",
				       json_object_new_string(d->comp_error[CAELUM_COMP_DATABASES]));
	json_object_array_add(components, o);
}

void databases_close(struct daemon *d)
{
	for (size_t i = 0; i < d->n_dbs; i++)
		probe_cancel(d->dbs[i].inflight);
	free(d->dbs);
	d->dbs = NULL;
	d->n_dbs = 0;
	connect_close(d->connect);
}
