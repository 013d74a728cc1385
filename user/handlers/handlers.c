// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cgroup.h"
#include "handlers.h"
#include "handlers_int.h"
#include "health.h"
#include "log.h"
#include "sockets.h"

int hc_fail(struct hcall *c, int exit_code, const char *fmt, ...)
{
	va_list ap;

	c->err->exit = exit_code;
	va_start(ap, fmt);
	vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
	va_end(ap);
	return -1;
}

int hc_not_found(struct hcall *c, const char *fmt, ...)
{
	va_list ap;

	c->err->exit = EXIT_FAIL;
	c->err->not_found = true;
	va_start(ap, fmt);
	vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* Refusal with every reason: message = first, errors = all. */
int hc_registry_exit(int err)
{
	if (registry_err_unavailable(err))
		return EXIT_UNAVAILABLE;
	return err == -ENOENT ? EXIT_FAIL : EXIT_CONFIG;
}

int hc_fail_verr(struct hcall *c, int exit_code, struct verr *e)
{
	c->err->exit = exit_code;
	snprintf(c->err->message, sizeof(c->err->message), "%s", e->n ? e->msgs[0] : "refused");
	c->err->errors = verr_to_json(e);
	verr_free(e);
	return -1;
}

int hc_unavailable(struct hcall *c, const char *what)
{
	return hc_fail(c, EXIT_UNAVAILABLE, "%s is not available here", what);
}

/* ---- parameters ---- */

int hc_params_check(struct hcall *c, const char *const *allowed)
{
	struct verr e = {};

	if (!c->params)
		return 0;
	if (!jv_expect(c->params, json_type_object, P, NULL, &e) ||
	    !jv_check_keys(c->params, P, NULL, allowed, &e))
		return hc_fail_verr(c, EXIT_USAGE, &e);
	return 0;
}

struct json_object *hc_param(struct hcall *c, const char *key)
{
	struct json_object *v = NULL;

	if (c->params)
		json_object_object_get_ex(c->params, key, &v);
	return v;
}

int hc_param_str(struct hcall *c, const char *key, bool required, const char **out)
{
	struct json_object *v = hc_param(c, key);

	*out = NULL;
	if (!v)
		return required ? hc_fail(c, EXIT_USAGE, "params: %s: missing required key", key)
				: 0;
	if (!json_object_is_type(v, json_type_string)) {
		struct verr e = {};

		jv_expect(v, json_type_string, P, key, &e); /* "expected string, got integer 5" */
		return hc_fail_verr(c, EXIT_USAGE, &e);
	}
	*out = json_object_get_string(v);
	return 0;
}

int hc_param_service(struct hcall *c, const char *key, const char **out)
{
	if (hc_param_str(c, key, true, out))
		return -1;
	if (!service_name_valid(*out))
		return hc_fail(c, EXIT_USAGE,
			       "params: %s: invalid service name \"%s\" (expected "
			       "[a-z0-9][a-z0-9-]{0,62})",
			       key, *out);
	return 0;
}

int hc_param_host(struct hcall *c, const char **out)
{
	if (hc_param_str(c, "host", false, out))
		return -1;
	if (*out && !host_name_valid(*out))
		return hc_fail(c, EXIT_USAGE,
			       "params: host: invalid host name \"%s\" (expected an RFC 1123 host "
			       "name: labels of [A-Za-z0-9-], dots between)",
			       *out);
	return 0;
}

int hc_param_proto(struct hcall *c, uint8_t *proto)
{
	const char *s;
	int p;

	if (hc_param_str(c, "proto", false, &s))
		return -1;
	*proto = IPPROTO_TCP;
	if (!s)
		return 0;
	p = proto_parse(s);
	if (p < 0)
		return hc_fail(c, EXIT_USAGE,
			       "params: proto: unknown protocol '%s' (expected tcp or udp)", s);
	*proto = (uint8_t)p;
	return 0;
}

int hc_param_port(struct hcall *c, uint16_t *port)
{
	struct verr e = {};
	struct json_object *v = hc_param(c, "port");
	int64_t x;

	if (!v)
		return hc_fail(c, EXIT_USAGE, "params: port: missing required key");
	if (!jv_get_int(v, 1, 65535, P, "port", &x, &e))
		return hc_fail_verr(c, EXIT_USAGE, &e);
	*port = (uint16_t)x;
	return 0;
}

/* ---- shared views ---- */

static const char *state_name(const struct svc_rt *rt)
{
	return rt && rt->running ? "running" : "stopped";
}

void hc_fmt_port(char *buf, size_t len, uint16_t port, uint8_t proto)
{
	snprintf(buf, len, "%u/%s", port, proto_name(proto));
}

static struct json_object *service_json(const struct handler_ctx *x, const struct reg_service *s)
{
	struct json_object *o = spec_to_json(&s->spec), *ports, *rt_ports = json_object_new_array();
	struct json_object *host_ports = json_object_new_array();
	const struct reg_state *st = registry_state(x->reg);
	struct svc_rt *rt = svcs_find(x->svcs, s->spec.name);
	char buf[32];

	json_object_object_get_ex(o, "ports", &ports);
	for (size_t i = 0; i < st->n_resv; i++) {
		const struct reg_resv *r = &st->resv[i];
		struct json_object *h;

		if (strcmp(r->service, s->spec.name))
			continue;
		hc_fmt_port(buf, sizeof(buf), r->port, r->proto);
		if (r->host) {
			h = json_object_new_object();
			json_object_object_add(h, "port", json_object_new_string(buf));
			json_object_object_add(h, "host", json_object_new_string(r->host));
			json_object_array_add(host_ports, h);
		}
		/* ports and runtime_ports: what it holds on this host */
		if (r->host && strcmp(r->host, x->cfg->host))
			continue;
		json_object_array_add(ports, json_object_new_string(buf));
		json_object_array_add(rt_ports, json_object_new_string(buf));
	}
	json_object_object_add(o, "runtime_ports", rt_ports);
	/* its host-only reservations on every host: [{"port": "7000/tcp", "host"}] */
	json_object_object_add(o, "host_ports", host_ports);
	json_object_object_add(o, "origin", json_object_new_string(origin_name(s->origin)));
	json_object_object_add(o, "source",
			       s->spec.source ? json_object_new_string(s->spec.source) : NULL);
	json_object_object_add(o, "state", json_object_new_string(state_name(rt)));
	json_object_object_add(o, "cgroup", rt ? json_object_new_string(rt->cgroup) : NULL);
	json_object_object_add(o, "cgroup_id", rt ? json_object_new_uint64(rt->cgid) : NULL);
	/* true: an existing cgroup (spec key "cgroup") followed, never made by caelumd */
	json_object_object_add(o, "cgroup_followed", json_object_new_boolean(rt && rt->followed));
	return o;
}

bool hc_port_managed(const struct config *cfg, uint16_t port, uint8_t proto)
{
	for (size_t i = 0; i < cfg->n_managed; i++) {
		const struct port_range *r = &cfg->managed[i];

		if (port >= r->lo && port <= r->hi && (r->proto == PROTO_BOTH || r->proto == proto))
			return true;
	}
	return false;
}

/*
 * Live holders of (port, proto) outside the service's cgroup (any holder if svc is NULL)
 * that would make the service's bind fail: with SO_REUSEADDR (run, check, reserve: closing
 * sockets of a previous instance do not count), or without it (plain: port alloc).
 */
int hc_foreign_holders(const struct handler_ctx *x, const char *svc, uint16_t port, uint8_t proto,
		       bool plain, struct verr *e, const char *label)
{
	struct svc_rt *rt = svc ? svcs_find(x->svcs, svc) : NULL;
	struct sock_holder *h = NULL;
	size_t n = 0, found = 0;
	int err;

	err = sockets_find(port, proto, &h, &n);
	if (err) {
		verr_add(e, label, NULL, "cannot list sockets: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		if (!sock_blocks_bind(&h[i], !plain))
			continue;
		if (rt && h[i].pid && svcs_path_inside(x->svcs, rt, h[i].cgroup))
			continue;
		if (h[i].pid)
			verr_add(e, label, NULL, "%u/%s is bound by pid %d (%s) in cgroup %s", port,
				 proto_name(proto), h[i].pid, h[i].comm, h[i].cgroup);
		else
			verr_add(e, label, NULL,
				 "%u/%s is bound by a socket of an unknown process (%s)", port,
				 proto_name(proto), sock_state_name(&h[i]));
		found++;
	}
	free(h);
	return found ? -EBUSY : 0;
}

/* on: the host of a host-only reservation ("on_host"; an event's "host" is its emitter). */
static void emit_port_event(const struct handler_ctx *x, const char *type, uint16_t port,
			    uint8_t proto, const char *on, const char *service)
{
	struct json_object *e = event_new(x->ev, type, "changed");

	json_object_object_add(e, "service", json_object_new_string(service));
	json_object_object_add(e, "owner", json_object_new_string(service));
	json_object_object_add(e, "port", json_object_new_int(port));
	json_object_object_add(e, "proto", json_object_new_string(proto_name(proto)));
	if (on)
		json_object_object_add(e, "on_host", json_object_new_string(on));
	events_emit(x->ev, e);
}

/* {"port", "proto", "service", "host"?}: what reserve and release answer. */
static struct json_object *port_result(uint16_t port, uint8_t proto, const char *on,
				       const char *service)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "port", json_object_new_int(port));
	json_object_object_add(o, "proto", json_object_new_string(proto_name(proto)));
	json_object_object_add(o, "service", json_object_new_string(service));
	if (on)
		json_object_object_add(o, "host", json_object_new_string(on));
	return o;
}

static void emit_service_event(const struct handler_ctx *x, const char *type, const char *name)
{
	struct json_object *e = event_new(x->ev, type, "changed");

	json_object_object_add(e, "service", json_object_new_string(name));
	events_emit(x->ev, e);
}

/*
 * Registry operations commit asynchronously. The mutation is validated and submitted; its
 * continuation runs once the model is at the revision it committed; the kernel side of that
 * revision ran in the registry's watchers (the same path as every other change), and its
 * outcome is looked up here by revision.
 */
static void call_finish(struct hcall *c, int rc);

/* How the kernel took the revision the call committed (nothing committed: 0). */
static int applied(struct hcall *c)
{
	uint64_t rev = c->committed;
	int err;

	if (!rev)
		return 0;
	err = apply_log_result(c->x->applied, rev);
	if (err == -EAGAIN)
		return hc_fail(c, EXIT_FAIL,
			       "registry updated at revision %llu but not yet applied",
			       (unsigned long long)rev);
	if (err)
		return hc_fail(c, EXIT_FAIL,
			       "registry updated at revision %llu but the kernel policy could not "
			       "be applied: %s",
			       (unsigned long long)rev, strerror(-err));
	return 0;
}

static void committed(void *arg, int err, uint64_t rev, struct verr *e)
{
	struct hcall *c = arg;
	int rc;

	c->commit = NULL;
	if (c->retry) {
		rc = c->retry(c, err, rev);
		if (rc == HC_PENDING)
			return;
		if (rc < 0) {
			call_finish(c, rc);
			return;
		}
	}
	c->committed = rev;
	if (err) {
		c->err->not_found = err == -ENOENT;
		rc = hc_fail_verr(c, err == -ESHUTDOWN ? EXIT_UNAVAILABLE : hc_registry_exit(err),
				  e);
	} else {
		rc = c->then(c);
		if (!rc && applied(c))
			rc = -1;
	}
	call_finish(c, rc);
}

const struct reg_async *hc_async(struct hcall *c)
{
	c->as = (struct reg_async){ committed, c };
	return &c->as;
}

int hc_commit(struct hcall *c, int rc, int (*then)(struct hcall *c))
{
	if (rc != REG_PENDING)
		return then(c); /* nothing to commit: a no-op succeeds as it is */
	c->then = then;
	return HC_PENDING;
}

/* ---- methods ---- */

static int h_ping(struct hcall *c)
{
	c->result = json_object_new_object();
	json_object_object_add(c->result, "pid", json_object_new_int(getpid()));
	return 0;
}

static struct json_object *denial_counts(const struct handler_ctx *x, const char *name);

static int h_service_list(struct hcall *c)
{
	const struct reg_state *st = registry_state(c->x->reg);

	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	c->result = json_object_new_array();
	for (size_t i = 0; i < st->n_svcs; i++) {
		struct json_object *o = service_json(c->x, &st->svcs[i]);
		struct svc_rt *rt = svcs_find(c->x->svcs, st->svcs[i].spec.name);

		/* What the dashboard shows per row, without a call per service. */
		json_object_object_add(o, "health", rt ? health_json(rt) : NULL);
		json_object_object_add(o, "recent_denials",
				       denial_counts(c->x, st->svcs[i].spec.name));
		json_object_array_add(c->result, o);
	}
	return 0;
}

static struct json_object *denial_counts(const struct handler_ctx *x, const char *name)
{
	struct event_filter f = { .type = "bind_denied", .service = name };
	struct json_object *arr = events_query(x->ev, &f), *o = json_object_new_object();
	int64_t as_offender = 0, as_owner = 0;

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *e = json_object_array_get_idx(arr, i), *v, *cnt;
		int64_t n = json_object_object_get_ex(e, "count", &cnt) ? json_object_get_int64(cnt)
									: 1;

		if (json_object_object_get_ex(e, "service", &v) && v &&
		    !strcmp(json_object_get_string(v), name))
			as_offender += n;
		else
			as_owner += n;
	}
	json_object_put(arr);
	json_object_object_add(o, "by_service", json_object_new_int64(as_offender));
	json_object_object_add(o, "against_service", json_object_new_int64(as_owner));
	return o;
}

static int h_service_show(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	const struct reg_service *s;
	struct svc_rt *rt;
	const char *name;
	int procs;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	s = registry_service(c->x->reg, name);
	if (!s)
		return hc_not_found(c, "service '%s' not found", name);
	rt = svcs_find(c->x->svcs, name);
	procs = rt ? cgroup_nr_procs(rt->cgroup) : 0;
	c->result = service_json(c->x, s);
	json_object_object_add(c->result, "processes", json_object_new_int(procs > 0 ? procs : 0));
	json_object_object_add(c->result, "main_pid",
			       rt && rt->main_pid ? json_object_new_int(rt->main_pid) : NULL);
	json_object_object_add(c->result, "recent_denials", denial_counts(c->x, name));
	json_object_object_add(c->result, "resources",
			       c->x->ops && c->x->ops->service_resources
				       ? c->x->ops->service_resources(c->x->owner, s)
				       : NULL);
	if (rt)
		json_object_object_add(c->result, "health", health_json(rt));
	return 0;
}

static int service_applied(struct hcall *c)
{
	const struct reg_service *s = registry_service(c->x->reg, c->name);

	if (c->committed) /* a no-op changed nothing: no event */
		emit_service_event(c->x, "service_applied", c->name);
	if (!s)
		return hc_not_found(c, "service '%s' was deleted concurrently", c->name);
	c->result = service_json(c->x, s);
	return 0;
}

static int h_service_apply(struct hcall *c)
{
	static const char *const keys[] = { "spec", "file", NULL };
	struct json_object *spec_obj = hc_param(c, "spec");
	struct service_spec spec;
	struct verr e = {};
	const char *file;
	int rc;

	if (hc_params_check(c, keys) || hc_param_str(c, "file", false, &file))
		return -1;
	if (!spec_obj)
		return hc_fail(c, EXIT_USAGE, "params: spec: missing required key");
	if (spec_from_json(spec_obj, file ? file : "spec", &spec, &e))
		return hc_fail_verr(c, EXIT_CONFIG, &e);
	snprintf(c->name, sizeof(c->name), "%s", spec.name);
	rc = registry_service_apply_async(c->x->reg, &spec, ORIGIN_API, hc_async(c), &c->commit,
					  &e);
	spec_free(&spec);
	if (rc < 0)
		return hc_fail_verr(
			c, registry_err_unavailable(rc) ? EXIT_UNAVAILABLE : EXIT_CONFIG, &e);
	return hc_commit(c, rc, service_applied);
}

static int service_deleted(struct hcall *c)
{
	if (c->committed) /* a no-op changed nothing: no event */
		emit_service_event(c->x, "service_deleted", c->name);
	c->result = json_object_new_object();
	json_object_object_add(c->result, "deleted", json_object_new_string(c->name));
	return 0;
}

static int h_service_delete(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	struct verr e = {};
	struct svc_rt *rt;
	const char *name;
	int rc, procs;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	rt = svcs_find(c->x->svcs, name);
	procs = rt ? cgroup_nr_procs(rt->cgroup) : 0;
	if (rt && rt->running)
		return hc_fail(c, EXIT_CONFIG,
			       "service '%s' is running (%d processes in %s); stop it first", name,
			       procs > 0 ? procs : 0, rt->cgroup);
	snprintf(c->name, sizeof(c->name), "%s", name);
	rc = registry_service_delete_async(c->x->reg, name, hc_async(c), &c->commit, &e);
	if (rc < 0) {
		c->err->not_found = rc == -ENOENT;
		return hc_fail_verr(c, hc_registry_exit(rc), &e);
	}
	return hc_commit(c, rc, service_deleted);
}

static struct json_object *claim_json(const struct config *cfg, const struct reg_claim *cl)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "port", json_object_new_int(cl->port));
	json_object_object_add(o, "proto", json_object_new_string(proto_name(cl->proto)));
	json_object_object_add(o, "service", json_object_new_string(cl->service));
	json_object_object_add(
		o, "origin",
		json_object_new_string(cl->origin == ORIGIN_RUNTIME ? "runtime" : "spec"));
	json_object_object_add(o, "managed",
			       json_object_new_boolean(hc_port_managed(cfg, cl->port, cl->proto)));
	/* a host-only reservation's host; absent: on every host */
	if (cl->host)
		json_object_object_add(o, "host", json_object_new_string(cl->host));
	return o;
}

static int h_port_list(struct hcall *c)
{
	struct reg_claim *cl;
	size_t n;
	int err;

	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	err = registry_claims_all(registry_state(c->x->reg), &cl, &n);
	if (err)
		return hc_fail(c, EXIT_FAIL, "failed to list reservations: %s", strerror(-err));
	c->result = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(c->result, claim_json(c->x->cfg, &cl[i]));
	free(cl);
	return 0;
}

static int reserved(struct hcall *c)
{
	const char *on = c->host[0] ? c->host : NULL;

	if (c->committed) /* a no-op changed nothing: no event */
		emit_port_event(c->x, "port_reserved", c->port, c->proto, on, c->name);
	c->result = port_result(c->port, c->proto, on, c->name);
	return 0;
}

/* Reserve on every host (on NULL) or on host on only. */
static int reserve(struct hcall *c, uint16_t port, uint8_t proto, const char *on, const char *svc)
{
	bool here = !on || !strcmp(on, c->x->cfg->host);
	struct verr e = {};
	char what[32];
	int rc;

	hc_fmt_port(what, sizeof(what), port, proto);
	if (!registry_service(c->x->reg, svc))
		return hc_fail(c, EXIT_CONFIG, "%s: unknown service '%s'", what, svc);
	/* this host's sockets: another host's are that host's business */
	if (here && hc_foreign_holders(c->x, svc, port, proto, false, &e, what))
		return hc_fail_verr(c, EXIT_CONFIG, &e);
	c->port = port;
	c->proto = proto;
	snprintf(c->name, sizeof(c->name), "%s", svc);
	snprintf(c->host, sizeof(c->host), "%s", on ? on : "");
	rc = registry_reserve_async(c->x->reg, port, proto, on, svc, hc_async(c), &c->commit, &e);
	if (rc < 0)
		return hc_fail_verr(
			c, registry_err_unavailable(rc) ? EXIT_UNAVAILABLE : EXIT_CONFIG, &e);
	return hc_commit(c, rc, reserved);
}

static int h_port_reserve(struct hcall *c)
{
	static const char *const keys[] = { "port", "proto", "service", "host", NULL };
	const char *svc, *on;
	uint16_t port;
	uint8_t proto;

	if (hc_params_check(c, keys) || hc_param_port(c, &port) || hc_param_proto(c, &proto) ||
	    hc_param_service(c, "service", &svc) || hc_param_host(c, &on))
		return -1;
	return reserve(c, port, proto, on, svc);
}

static int released(struct hcall *c)
{
	const char *on = c->host[0] ? c->host : NULL;

	if (c->committed) /* a no-op changed nothing: no event */
		emit_port_event(c->x, "port_released", c->port, c->proto, on, c->name);
	c->result = port_result(c->port, c->proto, on, c->name);
	return 0;
}

static int h_port_release(struct hcall *c)
{
	static const char *const keys[] = { "port", "proto", "host", NULL };
	const struct reg_resv *cur;
	struct verr e = {};
	const char *on;
	uint16_t port;
	uint8_t proto;
	int rc;

	if (hc_params_check(c, keys) || hc_param_port(c, &port) || hc_param_proto(c, &proto) ||
	    hc_param_host(c, &on))
		return -1;
	cur = registry_resv(registry_state(c->x->reg), port, proto, on);
	snprintf(c->name, sizeof(c->name), "%s", cur ? cur->service : "");
	snprintf(c->host, sizeof(c->host), "%s", on ? on : "");
	c->port = port;
	c->proto = proto;
	rc = registry_release_async(c->x->reg, port, proto, on, hc_async(c), &c->commit, &e);
	if (rc < 0) {
		c->err->not_found = rc == -ENOENT;
		return hc_fail_verr(c, hc_registry_exit(rc), &e);
	}
	return hc_commit(c, rc, released);
}

/* The first port after from that alloc may hand out: managed, free on every host (alloc
 * reserves on every host), and no socket from before Caelum on it. 0 when none is left. */
static uint16_t alloc_next(struct hcall *c, uint32_t from, uint8_t proto)
{
	for (uint32_t port = from + 1; port <= 65535; port++) {
		struct verr e = {};

		if (!hc_port_managed(c->x->cfg, (uint16_t)port, proto) ||
		    !registry_port_free(registry_state(c->x->reg), (uint16_t)port, proto))
			continue;
		if (hc_foreign_holders(c->x, NULL, (uint16_t)port, proto, true, &e, "alloc")) {
			verr_free(&e);
			continue;
		}
		return (uint16_t)port;
	}
	return 0;
}

/*
 * Another alloc took the port first: whoever it was for (this service too: then "already
 * reserved" would hand one port to two callers), go on with the next free one. rev 0 with
 * no error is a lost race the registry found to be this service's.
 */
static int alloc_retry(struct hcall *c, int err, uint64_t rev)
{
	unsigned int r;
	uint16_t port;
	struct verr e = {};
	int rc;

	if (!(err == -EEXIST || (!err && !rev)))
		return 0;
	/* Everyone who lost the same race would try the same next port: skip a random few
	 * of the free ones (more the more often this call lost), then take the next. */
	port = c->port;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (unsigned int)c->retries * 2654435761U; /* no entropy yet: still spread */
	for (unsigned int skip = r % (2 + 2 * (unsigned int)c->retries); port && skip; skip--)
		port = alloc_next(c, port, c->proto);
	port = port ? alloc_next(c, port, c->proto) : 0;
	if (!port) /* the skip ran past the last free port: from the start */
		port = alloc_next(c, 0, c->proto);
	if (!port || ++c->retries > HC_RETRIES)
		return hc_fail(
			c, EXIT_CONFIG,
			!port ? "no free %s port left in the managed ranges"
			      : "other allocations took every %s port this one tried; try again",
			proto_name(c->proto));
	c->port = port;
	rc = registry_reserve_async(c->x->reg, port, c->proto, NULL, c->name, hc_async(c),
				    &c->commit, &e);
	verr_free(&e);
	return rc == REG_PENDING ? HC_PENDING : 0;
}

static int h_port_alloc(struct hcall *c)
{
	static const char *const keys[] = { "service", "proto", NULL };
	const char *svc;
	uint16_t port;
	uint8_t proto;

	if (hc_params_check(c, keys) || hc_param_service(c, "service", &svc) ||
	    hc_param_proto(c, &proto))
		return -1;
	if (!registry_service(c->x->reg, svc))
		return hc_fail(c, EXIT_CONFIG, "unknown service '%s'", svc);
	port = alloc_next(c, 0, proto);
	if (!port)
		return hc_fail(c, EXIT_CONFIG, "no free %s port left in the managed ranges",
			       proto_name(proto));
	c->retry = alloc_retry;
	return reserve(c, port, proto, NULL, svc);
}

static int h_port_who(struct hcall *c)
{
	static const char *const keys[] = { "port", "proto", NULL };
	struct sock_holder *h = NULL;
	struct json_object *arr;
	enum reg_origin origin;
	struct svc_rt *rt;
	const char *owner;
	size_t n = 0;
	uint16_t port;
	uint8_t proto;
	int err;

	if (hc_params_check(c, keys) || hc_param_port(c, &port) || hc_param_proto(c, &proto))
		return -1;
	owner = registry_owner(c->x->reg, port, proto, &origin);
	rt = owner ? svcs_find(c->x->svcs, owner) : NULL;
	err = sockets_find(port, proto, &h, &n);
	if (err)
		return hc_fail(c, EXIT_FAIL, "failed to list sockets: %s", strerror(-err));
	c->result = json_object_new_object();
	json_object_object_add(c->result, "port", json_object_new_int(port));
	json_object_object_add(c->result, "proto", json_object_new_string(proto_name(proto)));
	json_object_object_add(c->result, "owner", owner ? json_object_new_string(owner) : NULL);
	json_object_object_add(
		c->result, "origin",
		owner ? json_object_new_string(origin == ORIGIN_RUNTIME ? "runtime" : "spec")
		      : NULL);
	json_object_object_add(c->result, "managed",
			       json_object_new_boolean(hc_port_managed(c->x->cfg, port, proto)));
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(h[i].pid));
		json_object_object_add(o, "comm", json_object_new_string(h[i].comm));
		json_object_object_add(o, "cgroup", json_object_new_string(h[i].cgroup));
		json_object_object_add(o, "addr", json_object_new_string(h[i].addr));
		json_object_object_add(
			o, "family",
			json_object_new_string(h[i].family == AF_INET6 ? "ipv6" : "ipv4"));
		json_object_object_add(o, "listening", json_object_new_boolean(h[i].listening));
		json_object_object_add(o, "state", json_object_new_string(sock_state_name(&h[i])));
		json_object_object_add(
			o, "in_owner",
			json_object_new_boolean(rt && h[i].pid &&
						svcs_path_inside(c->x->svcs, rt, h[i].cgroup)));
		json_object_array_add(arr, o);
	}
	free(h);
	json_object_object_add(c->result, "listeners", arr);
	return 0;
}

static int parse_filter(struct hcall *c, struct hstream *s)
{
	struct json_object *v;
	const char *type, *svc, *host;
	struct verr e = {};
	int64_t x;

	memset(s, 0, sizeof(*s));
	if (hc_param_str(c, "type", false, &type) || hc_param_str(c, "service", false, &svc) ||
	    hc_param_str(c, "host", false, &host))
		return -1;
	/* A filter nothing could ever match is a mistake, not an empty answer. */
	if (svc && !service_name_valid(svc))
		return hc_fail(c, EXIT_USAGE,
			       "params: service: invalid service name \"%s\" (expected "
			       "[a-z0-9][a-z0-9-]{0,62})",
			       svc);
	if (type && (!*type || strlen(type) >= sizeof(s->type) ||
		     strspn(type, "abcdefghijklmnopqrstuvwxyz_") != strlen(type)))
		return hc_fail(c, EXIT_USAGE,
			       "params: type: invalid event type \"%s\" (expected [a-z_]+, e.g. "
			       "bind_denied)",
			       type);
	if (host)
		snprintf(s->host, sizeof(s->host), "%s", host);
	s->filter.host = host ? s->host : NULL;
	if (type)
		snprintf(s->type, sizeof(s->type), "%s", type);
	if (svc)
		snprintf(s->service, sizeof(s->service), "%s", svc);
	s->filter.type = type ? s->type : NULL;
	s->filter.service = svc ? s->service : NULL;
	if ((v = hc_param(c, "limit"))) {
		if (!jv_get_int(v, 1, EVENTS_WINDOW, P, "limit", &x, &e))
			return hc_fail_verr(c, EXIT_USAGE, &e);
		s->filter.limit = (size_t)x;
	}
	if ((v = hc_param(c, "since"))) {
		if (!jv_get_int(v, 0, INT64_MAX, P, "since", &x, &e))
			return hc_fail_verr(c, EXIT_USAGE, &e);
		s->filter.since_id = (uint64_t)x;
	}
	return 0;
}

static int h_events_list(struct hcall *c)
{
	static const char *const keys[] = { "type", "service", "host", "limit", "since", NULL };
	struct hstream s;

	if (hc_params_check(c, keys) || parse_filter(c, &s))
		return -1;
	c->result = events_query(c->x->ev, &s.filter);
	return 0;
}

static int h_events_follow(struct hcall *c)
{
	static const char *const keys[] = { "type", "service", "host", "limit", "since", NULL };

	if (!c->stream)
		return hc_fail(c, EXIT_USAGE, "events.follow needs a streaming transport");
	if (hc_params_check(c, keys) || parse_filter(c, c->stream))
		return -1;
	c->stream->follow = true;
	/* The backlog first (limit/since select it), then live events. */
	c->result = events_query(c->x->ev, &c->stream->filter);
	c->stream->filter.limit = 0;
	return 0;
}

/* A reload's outcome as the call's: exit 69 when the registry could not be reached (nothing
 * changed), 78 when it was refused. e is shared with the reload's other callers: copied. */
static int reload_result(struct hcall *c, int err, struct verr *e, size_t entries)
{
	struct verr mine = {};

	if (err) {
		for (size_t i = 0; i < e->n; i++)
			verr_add_raw(&mine, e->msgs[i]);
		if (!mine.n)
			verr_add_raw(&mine, strerror(-err));
		return hc_fail_verr(c,
				    registry_err_unavailable(err) || err == -ESHUTDOWN
					    ? EXIT_UNAVAILABLE
					    : EXIT_CONFIG,
				    &mine);
	}
	c->result = json_object_new_object();
	json_object_object_add(c->result, "registry_revision",
			       json_object_new_uint64(registry_state(c->x->reg)->rev));
	json_object_object_add(c->result, "services",
			       json_object_new_int64((int64_t)registry_state(c->x->reg)->n_svcs));
	json_object_object_add(c->result, "port_entries", json_object_new_int64((int64_t)entries));
	return 0;
}

static void reloaded(struct hreload *w, int err, struct verr *e, size_t entries)
{
	struct hcall *c = (struct hcall *)((char *)w - offsetof(struct hcall, reload));

	c->reloading = false;
	call_finish(c, reload_result(c, err, e, entries));
}

static int h_reload(struct hcall *c)
{
	struct verr e = {};
	size_t entries = 0;
	int rc;

	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (!c->x->ops || !c->x->ops->reload)
		return hc_unavailable(c, "reload");
	c->reload.done = reloaded;
	rc = c->x->ops->reload(c->x->owner, &c->reload, &e, &entries);
	if (rc == 1) {
		c->reloading = true;
		return HC_PENDING;
	}
	rc = reload_result(c, rc, &e, entries);
	verr_free(&e);
	return rc;
}

static int h_verify(struct hcall *c)
{
	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (!c->x->ops || !c->x->ops->verify)
		return hc_unavailable(c, "verification");
	c->result = c->x->ops->verify(c->x->owner);
	return 0;
}

static int h_resources(struct hcall *c)
{
	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (!c->x->ops || !c->x->ops->resources)
		return hc_unavailable(c, "the resources view");
	c->result = c->x->ops->resources(c->x->owner);
	return 0;
}

static int h_status(struct hcall *c)
{
	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (!c->x->ops || !c->x->ops->status)
		return hc_unavailable(c, "status");
	if (c->x->ops->status(c->x->owner, &c->result))
		return hc_fail(c, EXIT_FAIL, "failed to collect status");
	return 0;
}

static const struct handler_entry methods[] = {
	{ "ping", h_ping },
	{ "status", h_status },
	{ "resources", h_resources },
	{ "verify", h_verify },
	{ "service.list", h_service_list },
	{ "service.show", h_service_show },
	{ "service.apply", h_service_apply },
	{ "service.delete", h_service_delete },
	{ "port.list", h_port_list },
	{ "port.reserve", h_port_reserve },
	{ "port.release", h_port_release },
	{ "port.alloc", h_port_alloc },
	{ "port.who", h_port_who },
	{ "events.list", h_events_list },
	{ "events.follow", h_events_follow },
	{ "reload", h_reload },
	{ "run.check", h_run_check },
	{ "run.started", h_run_started },
	{ "db.list", h_db_list },
	{ "db.show", h_db_show },
	{ "db.apply", h_db_apply },
	{ "db.delete", h_db_delete },
	{ "db.resolve", h_db_resolve },
	{ "host.list", h_host_list },
	{ "host.show", h_host_show },
	{ "service.where", h_service_where },
	{ NULL, NULL },
};

static const struct handler_entry *const tables[] = { methods, handlers_view };

static void call_free(struct hcall *c)
{
	json_object_put(c->params);
	free(c);
}

/* The call has its outcome: a transport's reply, or the waiting handlers_call's. */
static void call_finish(struct hcall *c, int rc)
{
	c->err->revision = c->committed;
	if (rc) {
		json_object_put(c->result);
		c->result = NULL;
	} else if (!c->result) {
		c->result = json_object_new_object();
	}
	c->rc = rc ? -1 : 0;
	c->done = true;
	if (c->sync)
		return;
	c->reply.fn(c->reply.arg, c->rc, c->result, c->err);
	call_free(c);
}

static handler_fn method_find(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct handler_entry *m = tables[t]; m->name; m++)
			if (!strcmp(m->name, name))
				return m->fn;
	return NULL;
}

/*
 * A pending call's caller cannot answer later (handlers_call): its own commit is waited for
 * (registry_wait); a call waiting for something else (a reload) runs the registry as the
 * loop would until it is answered (every commit's deadline bounds it).
 */
static void call_wait(struct hcall *c)
{
	struct pollfd pfd = { .fd = registry_watch_fd(c->x->reg), .events = POLLIN };

	if (c->commit) {
		registry_wait(c->x->reg, c->commit, &c->done);
		return;
	}
	while (!c->done) {
		poll(&pfd, 1, 100);
		registry_poll(c->x->reg);
		registry_tick(c->x->reg);
	}
}

int handlers_call_async(const struct handler_ctx *x, const char *method, struct json_object *params,
			const struct caller *who, struct json_object **result, struct herr *err,
			struct hstream *stream, const struct hreply *reply, struct hcall **pending)
{
	handler_fn fn = method_find(method);
	struct hcall *c;
	int rc;

	memset(err, 0, sizeof(*err));
	*result = NULL;
	if (pending)
		*pending = NULL;
	if (!fn) {
		err->exit = EXIT_USAGE;
		err->unknown_method = true;
		snprintf(err->message, sizeof(err->message), "unknown method '%s'", method);
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		err->exit = EXIT_FAIL;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return -1;
	}
	*c = (struct hcall){
		.x = x, .params = json_object_get(params), .who = who, .stream = stream
	};
	c->err = &c->own_err;
	rc = fn(c);
	if (rc == HC_PENDING && reply) {
		c->reply = *reply;
		c->who = NULL;
		c->stream = NULL;
		*pending = c;
		return HANDLERS_PENDING;
	}
	if (rc == HC_PENDING) {
		c->sync = true;
		call_wait(c);
		rc = c->rc;
	} else {
		c->sync = true;
		call_finish(c, rc);
		rc = c->rc;
	}
	*err = c->own_err;
	*result = c->result;
	call_free(c);
	return rc;
}

int handlers_call(const struct handler_ctx *x, const char *method, struct json_object *params,
		  const struct caller *who, struct json_object **result, struct herr *err,
		  struct hstream *stream)
{
	return handlers_call_async(x, method, params, who, result, err, stream, NULL, NULL);
}

void handlers_cancel(struct hcall *c)
{
	if (!c)
		return;
	registry_commit_cancel(c->commit);
	if (c->reloading && c->x->ops->reload_cancel)
		c->x->ops->reload_cancel(c->x->owner, &c->reload);
	call_free(c);
}
