// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api.h"
#include "config.h"
#include "dbspec.h"
#include "events.h"
#include "handlers.h"
#include "http.h"
#include "jsonv.h"
#include "log.h"
#include "metrics.h"

#define KEEPALIVE_NS (15ULL * 1000000000ULL)
#define MAX_STREAMS  512

struct sse {
	uint64_t conn;
	struct hstream hs; /* its filter */
	bool live;
};

/* A request whose handler waits for its commit: answered from the continuation. */
struct api_call {
	struct api *a;
	uint64_t conn; /* a closed connection's reply is dropped by http.c */
	int ok_status;
	struct hcall *call;
	struct api_call *next;
};

struct api {
	struct http *http;
	struct api_call *calls; /* pending */
	const struct handler_ctx *hx;
	struct events *ev;
	struct sse streams[MAX_STREAMS];
	size_t n_streams;
	int sub_id; /* one events subscription feeds every stream */
	uint64_t drops;
	uint64_t last_keepalive_ns;
};

static const struct http_header no_store[] = { { "Cache-Control", "no-store" } };

/* ---- errors ---- */

static int status_of(const struct herr *e)
{
	if (e->not_found || e->unknown_method)
		return 404;
	switch (e->exit) {
	case EXIT_USAGE:
		return 400;
	case EXIT_NOPERM:
		return 403;
	case EXIT_CONFIG:
		return 422;
	case EXIT_UNAVAILABLE:
		return 503;
	}
	return 500;
}

static void reply_error(struct api *a, uint64_t conn, int status, int code, const char *msg,
			struct json_object *errors)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(e, "status", json_object_new_int(status));
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	if (errors)
		json_object_object_add(e, "errors", json_object_get(errors));
	json_object_object_add(o, "error", e);
	http_reply_json(a->http, conn, status, o, no_store, 1);
	json_object_put(o);
}

static void reply_fmt(struct api *a, uint64_t conn, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void reply_fmt(struct api *a, uint64_t conn, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_error(a, conn, status, status == 404 ? EXIT_FAIL : EXIT_USAGE, msg, NULL);
}

/* 405 with the Allow header RFC 9110 section 15.5.6 requires: use is "GET", "GET or POST",
 * ...; every GET resource has HEAD too (http.c answers it as GET without the body). */
static void reply_not_allowed(struct api *a, const struct http_request *r, const char *use)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();
	struct http_header hd[2] = { { "Cache-Control", "no-store" }, { "Allow", NULL } };
	char list[64] = "", msg[600], word[16];
	const char *p = use;
	int n;

	while (sscanf(p, "%15s%n", word, &n) == 1) {
		p += n;
		if (!strcmp(word, "or"))
			continue;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s%s",
			 list[0] ? ", " : "", word, !strcmp(word, "GET") ? ", HEAD" : "");
	}
	hd[1].value = list;
	snprintf(msg, sizeof(msg), "%s: %s is not allowed, use %s", r->path,
		 r->head ? "HEAD" : r->method, use);
	json_object_object_add(e, "status", json_object_new_int(405));
	json_object_object_add(e, "code", json_object_new_int(EXIT_USAGE));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(o, "error", e);
	http_reply_json(a->http, r->conn, 405, o, hd, 2);
	json_object_put(o);
}

static void answer(struct api *a, uint64_t conn, int ok_status, int rc, struct json_object *res,
		   struct herr *err)
{
	if (rc) {
		reply_error(a, conn, status_of(err), err->exit, err->message, err->errors);
		json_object_put(err->errors);
	} else {
		http_reply_json(a->http, conn, ok_status, res, no_store, 1);
		json_object_put(res);
	}
}

static void call_replied(void *arg, int rc, struct json_object *res, struct herr *err)
{
	struct api_call *pc = arg;
	struct api *a = pc->a;

	for (struct api_call **pp = &a->calls; *pp; pp = &(*pp)->next)
		if (*pp == pc) {
			*pp = pc->next;
			break;
		}
	answer(a, pc->conn, pc->ok_status, rc, res, err);
	free(pc);
}

/* Call a handler and answer with its result or its error (now, or when its commit is in). */
static void call_reply(struct api *a, const struct http_request *r, const char *method,
		       struct json_object *params, int ok_status)
{
	struct caller who = { .uid = (uid_t)-1, .pid = 0, .transport = "http" };
	struct api_call *pc = calloc(1, sizeof(*pc));
	struct hreply reply = { call_replied, pc };
	struct json_object *res;
	struct herr err;
	int rc;

	if (!pc) {
		reply_fmt(a, r->conn, 500, "out of memory");
		json_object_put(params);
		return;
	}
	*pc = (struct api_call){ .a = a, .conn = r->conn, .ok_status = ok_status };
	rc = handlers_call_async(a->hx, method, params, &who, &res, &err, NULL, &reply, &pc->call);
	json_object_put(params);
	if (rc == HANDLERS_PENDING) {
		pc->next = a->calls;
		a->calls = pc;
		return;
	}
	free(pc);
	answer(a, r->conn, ok_status, rc, res, &err);
}

/* ---- query strings ---- */

/* lws hands the arguments decoded, joined by '&'. Each allowed key at most once; integer
 * keys are converted. 0, or -1 after answering 400. */
static int query_params(struct api *a, const struct http_request *r, const char *const *str_keys,
			const char *const *int_keys, struct json_object **out)
{
	struct json_object *p = json_object_new_object();
	char q[sizeof(r->query)], *save = NULL, *kv;

	snprintf(q, sizeof(q), "%s", r->query);
	for (kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *val = strchr(kv, '=');
		bool known = false;

		if (val)
			*val++ = '\0';
		else
			val = "";
		if (json_object_object_get_ex(p, kv, NULL)) {
			reply_fmt(a, r->conn, 400, "query: %s: given twice", kv);
			goto fail;
		}
		for (size_t i = 0; str_keys && str_keys[i]; i++)
			if (!strcmp(kv, str_keys[i])) {
				json_object_object_add(p, kv, json_object_new_string(val));
				known = true;
			}
		for (size_t i = 0; int_keys && int_keys[i] && !known; i++) {
			char *end;
			long long x;

			if (strcmp(kv, int_keys[i]))
				continue;
			errno = 0;
			x = strtoll(val, &end, 10);
			if (!*val || *end || errno) {
				reply_fmt(a, r->conn, 400, "query: %s: \"%.64s\" is not an integer",
					  kv, val);
				goto fail;
			}
			json_object_object_add(p, kv, json_object_new_int64(x));
			known = true;
		}
		if (!known) {
			reply_fmt(a, r->conn, 400, "query: unknown parameter \"%.64s\"", kv);
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	json_object_put(p);
	return -1;
}

static int no_query(struct api *a, const struct http_request *r)
{
	if (!r->query[0])
		return 0;
	reply_fmt(a, r->conn, 400, "query: %s takes no parameters", r->path);
	return -1;
}

/* The JSON body as an object. 0, or -1 after answering 400/415. */
static int body_object(struct api *a, const struct http_request *r, struct json_object **out)
{
	struct verr e = {};
	char *msg;

	if (r->content_type[0] && strncasecmp(r->content_type, "application/json", 16)) {
		reply_fmt(a, r->conn, 415, "body: Content-Type must be application/json, not %s",
			  r->content_type);
		return -1;
	}
	if (!r->body_len) {
		reply_fmt(a, r->conn, 400, "body: expected a JSON object");
		return -1;
	}
	if (jv_parse_string("body", r->body, r->body_len, out, &e) ||
	    !jv_expect(*out, json_type_object, "body", NULL, &e)) {
		msg = verr_join(&e);
		reply_error(a, r->conn, 400, EXIT_USAGE, msg ? msg : "body: invalid JSON", NULL);
		free(msg);
		verr_free(&e);
		if (*out)
			json_object_put(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* ---- Server-Sent Events ---- */

static void sse_remove(struct api *a, size_t i)
{
	a->streams[i] = a->streams[--a->n_streams];
	if (!a->n_streams && a->sub_id) {
		events_unsubscribe(a->ev, a->sub_id);
		a->sub_id = 0;
	}
}

static int sse_frame(char **buf, size_t *cap, struct json_object *e, size_t *len)
{
	struct json_object *id;
	size_t jl;
	const char *j = json_object_to_json_string_length(
		e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &jl);

	if (jl + 64 > *cap) {
		char *nb = realloc(*buf, jl + 64);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = jl + 64;
	}
	json_object_object_get_ex(e, "id", &id);
	*len = (size_t)snprintf(*buf, *cap, "id: %lld\ndata: %s\n\n",
				(long long)json_object_get_int64(id), j);
	return 0;
}

static void on_event(void *ctx, struct json_object *e)
{
	struct api *a = ctx;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	bool framed = false;

	for (size_t i = 0; i < a->n_streams; i++) {
		struct sse *s = &a->streams[i];
		int err;

		if (!s->live || !event_matches(e, &s->hs.filter))
			continue;
		if (!framed) {
			if (sse_frame(&buf, &cap, e, &len))
				break;
			framed = true;
		}
		err = http_send(a->http, s->conn, buf, len);
		if (err == -ENOBUFS)
			a->drops++;
		else if (err)
			s->live = false; /* gone: removed when the close reaches the loop */
	}
	free(buf);
}

static void sse_open(struct api *a, const struct http_request *r)
{
	static const char *const skeys[] = { "type", "service", "host", NULL };
	static const char *const ikeys[] = { "since", "limit", NULL };
	struct caller who = { .uid = (uid_t)-1, .transport = "http" };
	struct json_object *params, *backlog;
	struct events_counters ec;
	struct hstream hs = {};
	char *buf = NULL;
	size_t cap = 0, len;
	struct herr err;
	struct sse *s;

	if (query_params(a, r, skeys, ikeys, &params))
		return;
	if (a->n_streams == MAX_STREAMS) {
		json_object_put(params);
		reply_fmt(a, r->conn, 503, "too many event streams (%d)", MAX_STREAMS);
		return;
	}
	/* Resume after Last-Event-ID; with neither it nor since/limit, live events only. */
	if (r->last_event_id[0]) {
		char *end;
		unsigned long long id;

		errno = 0;
		id = strtoull(r->last_event_id, &end, 10);
		/* digits only: strtoull takes "-1" (wrapping) and " 1" */
		if (*end || errno ||
		    strspn(r->last_event_id, "0123456789") != strlen(r->last_event_id)) {
			json_object_put(params);
			reply_fmt(a, r->conn, 400, "Last-Event-ID: \"%s\" is not an event id",
				  r->last_event_id);
			return;
		}
		json_object_object_add(params, "since", json_object_new_uint64(id));
	} else if (!json_object_object_get_ex(params, "since", NULL) &&
		   !json_object_object_get_ex(params, "limit", NULL)) {
		events_get_counters(a->ev, &ec);
		json_object_object_add(params, "since", json_object_new_uint64(ec.last_id));
	}
	if (handlers_call(a->hx, "events.follow", params, &who, &backlog, &err, &hs)) {
		json_object_put(params);
		reply_error(a, r->conn, status_of(&err), err.exit, err.message, err.errors);
		json_object_put(err.errors);
		return;
	}
	json_object_put(params);
	if (http_stream_begin(a->http, r->conn, NULL, 0)) {
		json_object_put(backlog);
		return;
	}
	http_send(a->http, r->conn, "retry: 2000\n\n", 13);
	for (size_t i = 0; i < json_object_array_length(backlog); i++)
		if (!sse_frame(&buf, &cap, json_object_array_get_idx(backlog, i), &len) &&
		    http_send(a->http, r->conn, buf, len) == -ENOBUFS)
			a->drops++;
	free(buf);
	json_object_put(backlog);
	s = &a->streams[a->n_streams++];
	s->conn = r->conn;
	s->hs = hs;
	/* The filter points into hs: re-point it at this copy. */
	s->hs.filter.type = hs.filter.type ? s->hs.type : NULL;
	s->hs.filter.service = hs.filter.service ? s->hs.service : NULL;
	s->hs.filter.host = hs.filter.host ? s->hs.host : NULL;
	s->hs.filter.since_id = 0;
	s->live = true;
	if (!a->sub_id) {
		a->sub_id = events_subscribe(a->ev, on_event, a);
		if (a->sub_id <= 0) {
			a->sub_id = 0;
			http_end(a->http, r->conn);
			sse_remove(a, a->n_streams - 1);
		}
	}
}

/* ---- routes ---- */

static bool is(const struct http_request *r, const char *method)
{
	return !strcmp(r->method, method);
}

/* "/api/v1/ports/8100/udp" with prefix "/api/v1/ports/" -> "8100/udp" */
static const char *tail(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	return !strncmp(path, prefix, n) && path[n] ? path + n : NULL;
}

static struct json_object *name_param(const char *key, const char *value)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, key, json_object_new_string(value));
	return p;
}

static void route_ports(struct api *a, const struct http_request *r)
{
	const char *t = tail(r->path, "/api/v1/ports/");
	struct json_object *p;

	if (!strcmp(r->path, "/api/v1/ports")) {
		if (is(r, "GET") && !no_query(a, r))
			call_reply(a, r, "port.list", NULL, 200);
		else if (is(r, "POST") && !no_query(a, r) && !body_object(a, r, &p))
			call_reply(a, r,
				   json_object_object_get_ex(p, "port", NULL) ? "port.reserve"
									      : "port.alloc",
				   p, 201);
		else if (!is(r, "GET") && !is(r, "POST"))
			reply_not_allowed(a, r, "GET or POST");
		return;
	}
	if (!strcmp(r->path, "/api/v1/ports/map")) {
		if (!is(r, "GET"))
			reply_not_allowed(a, r, "GET");
		else if (!no_query(a, r))
			call_reply(a, r, "port.map", NULL, 200);
		return;
	}
	if (t) {
		char buf[32], *slash;
		char *end;
		long port;

		snprintf(buf, sizeof(buf), "%s", t);
		slash = strchr(buf, '/');
		if (slash)
			*slash++ = '\0';
		port = strtol(buf, &end, 10);
		if (!buf[0] || *end || port < 1 || port > 65535) {
			reply_fmt(a, r->conn, 400, "path: \"%.32s\" is not a port (1-65535)", buf);
			return;
		}
		if (!is(r, "DELETE")) {
			reply_not_allowed(a, r, "DELETE");
			return;
		}
		/* ?host=H: that host's reservation; without: the cluster-wide one */
		if (query_params(a, r, (const char *const[]){ "host", NULL }, NULL, &p))
			return;
		json_object_object_add(p, "port", json_object_new_int((int)port));
		if (slash)
			json_object_object_add(p, "proto", json_object_new_string(slash));
		call_reply(a, r, "port.release", p, 200);
		return;
	}
	reply_fmt(a, r->conn, 404, "no such resource: %s", r->path);
}

/* POST /api/v1/databases/NAME/resolve: look the name up again now (db.resolve). */
static bool route_db_resolve(struct api *a, const struct http_request *r, const char *name)
{
	const char *slash = strchr(name, '/');
	char db[DB_NAME_MAX + 2];

	if (!slash || strcmp(slash, "/resolve") || (size_t)(slash - name) >= sizeof(db))
		return false;
	if (!is(r, "POST")) {
		reply_not_allowed(a, r, "POST");
		return true;
	}
	if (no_query(a, r))
		return true;
	snprintf(db, sizeof(db), "%.*s", (int)(slash - name), name);
	call_reply(a, r, "db.resolve", name_param("name", db), 202);
	return true;
}

/* /api/v1/services/NAME/where: the hosts that run it (machine registry). */
static bool route_service_where(struct api *a, const struct http_request *r, const char *name)
{
	const char *slash = strchr(name, '/');
	char svc[128];

	if (!slash || strcmp(slash, "/where") || (size_t)(slash - name) >= sizeof(svc))
		return false;
	if (!is(r, "GET")) {
		reply_not_allowed(a, r, "GET");
		return true;
	}
	if (no_query(a, r))
		return true;
	snprintf(svc, sizeof(svc), "%.*s", (int)(slash - name), name);
	call_reply(a, r, "service.where", name_param("name", svc), 200);
	return true;
}

/* /api/v1/services[/NAME][/where], /api/v1/databases[/NAME][/resolve] */
static void route_collection(struct api *a, const struct http_request *r, const char *base,
			     const char *prefix)
{
	const char *name = tail(r->path, prefix);
	struct json_object *p;
	char m[32];

	if (!strcmp(r->path, base)) {
		if (is(r, "GET") && !no_query(a, r)) {
			snprintf(m, sizeof(m), "%s.list",
				 !strcmp(base, "/api/v1/services") ? "service" : "db");
			call_reply(a, r, m, NULL, 200);
		} else if (is(r, "POST") && !no_query(a, r) && !body_object(a, r, &p)) {
			struct json_object *params = json_object_new_object(), *host;
			bool db = !strcmp(base, "/api/v1/databases");

			/* a database's "host" (on that host only) is beside the spec, not in it */
			if (db && json_object_object_get_ex(p, "host", &host)) {
				json_object_object_add(params, "host", json_object_get(host));
				json_object_object_del(p, "host");
			}
			json_object_object_add(params, "spec", p);
			snprintf(m, sizeof(m), "%s.apply",
				 !strcmp(base, "/api/v1/services") ? "service" : "db");
			call_reply(a, r, m, params, 201);
		} else if (!is(r, "GET") && !is(r, "POST")) {
			reply_not_allowed(a, r, "GET or POST");
		}
		return;
	}
	if (name && !strcmp(base, "/api/v1/databases") && route_db_resolve(a, r, name))
		return;
	if (name && !strcmp(base, "/api/v1/services") && route_service_where(a, r, name))
		return;
	if (!name || strchr(name, '/')) {
		reply_fmt(a, r->conn, 404, "no such resource: %s", r->path);
		return;
	}
	/* DELETE /api/v1/databases/NAME?host=H: that host's definition */
	if (!strcmp(base, "/api/v1/databases") && is(r, "DELETE")) {
		if (query_params(a, r, (const char *const[]){ "host", NULL }, NULL, &p))
			return;
		json_object_object_add(p, "name", json_object_new_string(name));
		call_reply(a, r, "db.delete", p, 200);
		return;
	}
	if (no_query(a, r))
		return;
	snprintf(m, sizeof(m), "%s.%s", !strcmp(base, "/api/v1/services") ? "service" : "db",
		 is(r, "GET") ? "show" : "delete");
	if (is(r, "GET") || is(r, "DELETE"))
		call_reply(a, r, m, name_param("name", name), 200);
	else
		reply_not_allowed(a, r, "GET or DELETE");
}

/* The handler's result for metrics, or NULL (its error is dropped: the family is left out). */
static struct json_object *metrics_doc(struct api *a, const char *method)
{
	struct caller who = { .uid = (uid_t)-1, .transport = "metrics" };
	struct json_object *res = NULL;
	struct herr err;

	if (handlers_call(a->hx, method, NULL, &who, &res, &err, NULL)) {
		json_object_put(err.errors);
		return NULL;
	}
	return res;
}

/* /metrics: the exposition of the same documents status, resources and service.list give. */
static void route_metrics(struct api *a, const struct http_request *r)
{
	static const struct http_header h[] = { { "Cache-Control", "no-store" } };
	struct json_object *status, *res, *svcs;
	char *text = NULL;
	size_t len = 0;
	int err;

	if (!is(r, "GET")) {
		reply_not_allowed(a, r, "GET");
		return;
	}
	if (no_query(a, r))
		return;
	status = metrics_doc(a, "status");
	res = metrics_doc(a, "resources");
	svcs = metrics_doc(a, "service.list");
	err = status ? metrics_render(status, res, svcs, &text, &len) : -ENODATA;
	json_object_put(status);
	json_object_put(res);
	json_object_put(svcs);
	if (err) {
		reply_fmt(a, r->conn, 500, "failed to render metrics");
		return;
	}
	http_reply(a->http, r->conn, 200, "text/plain; version=0.0.4; charset=utf-8", h, 1, text,
		   len);
	free(text);
}

static void route(struct api *a, const struct http_request *r)
{
	static const struct {
		const char *path, *method, *handler;
	} simple[] = {
		{ "/api/v1/status", "GET", "status" },
		{ "/api/v1/resources", "GET", "resources" },
		{ "/api/v1/reload", "POST", "reload" },
		{ "/api/v1/verify", "POST", "verify" },
		{ "/api/v1/hosts", "GET", "host.list" },
	};
	static const char *const ev_str[] = { "type", "service", "host", NULL };
	static const char *const ev_int[] = { "since", "limit", NULL };
	static const char *const tl_int[] = { "minutes", NULL };
	struct json_object *p;

	if (!strcmp(r->path, "/metrics"))
		return route_metrics(a, r);
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcmp(r->path, simple[i].path))
			continue;
		if (!is(r, simple[i].method))
			reply_not_allowed(a, r, simple[i].method);
		else if (!no_query(a, r))
			call_reply(a, r, simple[i].handler, NULL, 200);
		return;
	}
	if (!strcmp(r->path, "/api/v1/events") || !strcmp(r->path, "/api/v1/events/stream") ||
	    !strcmp(r->path, "/api/v1/events/timeline")) {
		if (!is(r, "GET"))
			reply_not_allowed(a, r, "GET");
		else if (!strcmp(r->path, "/api/v1/events/stream"))
			sse_open(a, r);
		else if (!strcmp(r->path, "/api/v1/events/timeline")) {
			if (!query_params(a, r, NULL, tl_int, &p))
				call_reply(a, r, "events.timeline", p, 200);
		} else if (!query_params(a, r, ev_str, ev_int, &p)) {
			call_reply(a, r, "events.list", p, 200);
		}
		return;
	}
	if (!strncmp(r->path, "/api/v1/ports", 13) && (!r->path[13] || r->path[13] == '/'))
		return route_ports(a, r);
	if (!strncmp(r->path, "/api/v1/services", 16) && (!r->path[16] || r->path[16] == '/'))
		return route_collection(a, r, "/api/v1/services", "/api/v1/services/");
	if (!strncmp(r->path, "/api/v1/databases", 17) && (!r->path[17] || r->path[17] == '/'))
		return route_collection(a, r, "/api/v1/databases", "/api/v1/databases/");
	reply_fmt(a, r->conn, 404, "no such resource: %s", r->path);
}

/* A request or a close on the dashboard listener. */
static void api_request(void *self, struct http_request *r)
{
	struct api *a = self;

	if (r->kind == HTTP_REQUEST) {
		route(a, r);
	} else if (r->kind == HTTP_CLOSED) {
		for (size_t i = 0; i < a->n_streams; i++)
			if (a->streams[i].conn == r->conn) {
				sse_remove(a, i);
				break;
			}
	}
}

static int api_start(const struct transport_env *env, void **self)
{
	const struct listen_cfg *l = &env->cfg->http;
	struct api *a;

	*self = NULL;
	if (!env->http || !l->enabled)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->http = env->http;
	a->hx = env->hx;
	a->ev = env->ev;
	p_info("dashboard and API on http%s://%s%s%s:%u/", l->cert[0] ? "s" : "",
	       strchr(l->addr, ':') ? "[" : "", l->addr, strchr(l->addr, ':') ? "]" : "",
	       http_port(a->http, HTTP_DASH));
	*self = a;
	return 0;
}

static void api_stop(void *self)
{
	struct api *a = self;

	if (a->sub_id)
		events_unsubscribe(a->ev, a->sub_id);
	while (a->calls) {
		struct api_call *pc = a->calls;

		a->calls = pc->next;
		handlers_cancel(pc->call);
		free(pc);
	}
	free(a);
}

/* Keep-alive comments on idle streams. */
static void api_tick(void *self, uint64_t now)
{
	struct api *a = self;

	if (now - a->last_keepalive_ns < KEEPALIVE_NS)
		return;
	a->last_keepalive_ns = now;
	for (size_t i = 0; i < a->n_streams; i++)
		if (a->streams[i].live)
			http_send(a->http, a->streams[i].conn, ":\n\n", 3);
}

/* Its part of status "http": open event streams, and events not sent to a stream because
 * the client fell behind. */
static struct json_object *api_status(void *self)
{
	struct api *a = self;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "event_streams", json_object_new_int((int)a->n_streams));
	json_object_object_add(o, "stream_drops", json_object_new_uint64(a->drops));
	return o;
}

const struct transport_ops api_transport = {
	.name = "api",
	.listener = HTTP_DASH,
	.start = api_start,
	.stop = api_stop,
	.tick = api_tick,
	.status = api_status,
	.request = api_request,
};
