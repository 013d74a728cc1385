// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Views the dashboard and MCP need beyond the CLI's: the port map, the violation timeline,
 * and the API token (root over the control socket only). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers_int.h"
#include "portrange.h"
#include "token.h"

struct port_stat {
	uint16_t port;
	uint8_t proto;
	uint64_t denials;
	const char *last_service, *last_comm; /* the last offender, borrowed from the window */
};

static int port_stat_cmp(const void *a, const void *b)
{
	const struct port_stat *x = a, *y = b;

	return x->port != y->port ? (int)x->port - (int)y->port : (int)x->proto - (int)y->proto;
}

/* Denied binds per (port, proto) in the in-memory window: the squatting attempts. */
static struct port_stat *denials_by_port(struct json_object *evs, size_t *n_out)
{
	size_t n = json_object_array_length(evs), k = 0;
	struct port_stat *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(evs, i), *x;
		struct port_stat key = {};
		const char *proto;
		size_t j;

		if (!json_object_object_get_ex(e, "port", &x) || !x)
			continue;
		key.port = (uint16_t)json_object_get_int(x);
		proto = json_object_object_get_ex(e, "proto", &x) && x ? json_object_get_string(x)
								       : "tcp";
		key.proto = proto_parse(proto) > 0 ? (uint8_t)proto_parse(proto) : IPPROTO_TCP;
		for (j = 0; j < k; j++)
			if (v[j].port == key.port && v[j].proto == key.proto)
				break;
		if (j == k)
			v[k++] = key;
		v[j].denials += json_object_object_get_ex(e, "count", &x) && x
					? (uint64_t)json_object_get_int64(x)
					: 1;
		/* The last offender: its service, or (outside any service) its command. */
		v[j].last_service = json_object_object_get_ex(e, "service", &x) && x
					    ? json_object_get_string(x)
					    : NULL;
		v[j].last_comm = json_object_object_get_ex(e, "comm", &x) && x
					 ? json_object_get_string(x)
					 : NULL;
	}
	qsort(v, k, sizeof(*v), port_stat_cmp);
	*n_out = k;
	return v;
}

static int h_port_map(struct hcall *c)
{
	const struct config *cfg = c->x->cfg;
	struct event_filter f = { .type = "bind_denied" };
	struct json_object *ranges = json_object_new_array(), *ports = json_object_new_array();
	struct json_object *evs;
	struct port_stat *st;
	struct reg_claim *cl;
	size_t n_cl, n_st, i, j;
	uint64_t managed = 0;
	char buf[32];

	if (hc_params_check(c, (const char *const[]){ NULL }))
		goto fail;
	if (registry_claims(registry_state(c->x->reg), &cl, &n_cl)) {
		hc_fail(c, EXIT_FAIL, "failed to list reservations");
		goto fail;
	}
	evs = events_query(c->x->ev, &f);
	st = denials_by_port(evs, &n_st);
	for (i = 0; i < cfg->n_managed; i++) {
		const struct port_range *r = &cfg->managed[i];
		struct json_object *o = json_object_new_object();

		port_range_fmt(r, buf, sizeof(buf));
		json_object_object_add(o, "range", json_object_new_string(buf));
		json_object_object_add(o, "lo", json_object_new_int(r->lo));
		json_object_object_add(o, "hi", json_object_new_int(r->hi));
		json_object_object_add(o, "proto",
				       json_object_new_string(r->proto == PROTO_BOTH
								      ? "both"
								      : proto_name(r->proto)));
		json_object_array_add(ranges, o);
		managed += (uint64_t)(r->hi - r->lo + 1) * (r->proto == PROTO_BOTH ? 2 : 1);
	}
	/* Claims and denials merged by (port, proto), both sorted. */
	for (i = 0, j = 0; st && (i < n_cl || j < n_st);) {
		struct json_object *o = json_object_new_object();
		const struct reg_claim *a = i < n_cl ? &cl[i] : NULL;
		const struct port_stat *b = j < n_st ? &st[j] : NULL;
		int cmp = !a		       ? 1
			  : !b		       ? -1
			  : a->port != b->port ? (int)a->port - (int)b->port
					       : (int)a->proto - (int)b->proto;
		uint16_t port = cmp <= 0 ? a->port : b->port;
		uint8_t proto = cmp <= 0 ? a->proto : b->proto;

		json_object_object_add(o, "port", json_object_new_int(port));
		json_object_object_add(o, "proto", json_object_new_string(proto_name(proto)));
		json_object_object_add(o, "service",
				       cmp <= 0 ? json_object_new_string(a->service) : NULL);
		json_object_object_add(o, "managed",
				       json_object_new_boolean(hc_port_managed(cfg, port, proto)));
		json_object_object_add(o, "denials",
				       json_object_new_uint64(cmp >= 0 ? b->denials : 0));
		json_object_object_add(o, "last_offender_service",
				       cmp >= 0 && b->last_service
					       ? json_object_new_string(b->last_service)
					       : NULL);
		json_object_object_add(
			o, "last_offender_comm",
			cmp >= 0 && b->last_comm ? json_object_new_string(b->last_comm) : NULL);
		json_object_array_add(ports, o);
		if (cmp <= 0)
			i++;
		if (cmp >= 0)
			j++;
	}
	c->result = json_object_new_object();
	json_object_object_add(c->result, "ranges", ranges);
	json_object_object_add(c->result, "managed_ports", json_object_new_uint64(managed));
	json_object_object_add(c->result, "ports", ports);
	json_object_put(evs);
	free(st);
	free(cl);
	if (!st)
		return hc_fail(c, EXIT_FAIL, "out of memory");
	return 0;
fail:
	json_object_put(ranges);
	json_object_put(ports);
	return -1;
}

static int h_events_timeline(struct hcall *c)
{
	static const char *const keys[] = { "minutes", NULL };
	struct json_object *v = hc_param(c, "minutes");
	struct verr e = {};
	int64_t m = 60;

	if (hc_params_check(c, keys))
		return -1;
	if (v && !jv_get_int(v, 1, 60, P, "minutes", &m, &e))
		return hc_fail_verr(c, EXIT_USAGE, &e);
	c->result = events_timeline(c->x->ev, (unsigned int)m);
	return 0;
}

static int token_result(struct hcall *c, const char *tok)
{
	c->result = json_object_new_object();
	json_object_object_add(c->result, "token", json_object_new_string(tok));
	json_object_object_add(c->result, "header",
			       json_object_new_string_len("Authorization: Bearer ", 22));
	return 0;
}

static int h_token_show(struct hcall *c)
{
	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (strcmp(c->who->transport, "socket"))
		return hc_fail(c, EXIT_NOPERM, "the token is only shown over the control socket");
	if (!c->x->token)
		return hc_unavailable(c, "the API token");
	return token_result(c, c->x->token);
}

static int h_token_rotate(struct hcall *c)
{
	char tok[TOKEN_LEN + 1];
	int err;

	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (strcmp(c->who->transport, "socket"))
		return hc_fail(c, EXIT_NOPERM, "the token is only rotated over the control socket");
	if (!c->x->token)
		return hc_unavailable(c, "the API token");
	err = token_rotate(c->x->cfg->state_dir, tok);
	if (err)
		return hc_fail(c, EXIT_FAIL, "failed to write %s/%s: %s", c->x->cfg->state_dir,
			       TOKEN_FILE, strerror(-err));
	memcpy(c->x->token, tok, sizeof(tok));
	if (c->x->ops && c->x->ops->token_changed)
		c->x->ops->token_changed(c->x->owner, tok);
	events_emit(c->x->ev, event_new(c->x->ev, "token_rotated", "changed"));
	return token_result(c, tok);
}

#define INGEST_MAX 1000

static bool host_name_ok(const char *h)
{
	size_t n = strlen(h);

	return n && n <= 253 &&
	       strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-") == n &&
	       h[0] != '-' && h[0] != '.';
}

/* One peer event: an object with string type and action (what every event has). */
static int ingest_check(struct json_object *ev, size_t i, struct verr *e)
{
	static const char *const strs[] = { "type", "action", "time" };
	char path[64];
	struct json_object *v;

	snprintf(path, sizeof(path), "events[%zu]", i);
	if (!jv_expect(ev, json_type_object, P, path, e))
		return -1;
	for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
		char kp[96];

		snprintf(kp, sizeof(kp), "%s.%s", path, strs[k]);
		if (!json_object_object_get_ex(ev, strs[k], &v)) {
			verr_add(e, P, kp, "missing required key");
			return -1;
		}
		if (!jv_expect(v, json_type_string, P, kp, e))
			return -1;
		if (json_object_get_string_len(v) > 64) {
			verr_add(e, P, kp, "\"%.32s...\" is longer than 64 characters (%d)",
				 json_object_get_string(v), json_object_get_string_len(v));
			return -1;
		}
	}
	if (json_object_object_get_ex(ev, "id", &v)) {
		int64_t x;

		snprintf(path, sizeof(path), "events[%zu].id", i);
		if (!jv_get_int(v, 1, INT64_MAX, P, path, &x, e))
			return -1;
	}
	return 0;
}

/* Events a peer sends (MCP tool ingest_events): stored with the peer's host. */
static int h_events_ingest(struct hcall *c)
{
	static const char *const keys[] = { "host", "events", NULL };
	struct json_object *evs = hc_param(c, "events");
	struct verr e = {};
	const char *host;
	size_t stored, skipped, n;

	if (hc_params_check(c, keys) || hc_param_str(c, "host", true, &host))
		return -1;
	if (!host_name_ok(host))
		return hc_fail(c, EXIT_USAGE, "params: host: \"%.64s\" is not a host name", host);
	if (!strcmp(host, c->x->cfg->host))
		return hc_fail(c, EXIT_USAGE,
			       "params: host: \"%s\" is this host: a peer sends its own events",
			       host);
	if (!evs)
		return hc_fail(c, EXIT_USAGE, "params: events: missing required key");
	if (!jv_expect(evs, json_type_array, P, "events", &e))
		return hc_fail_verr(c, EXIT_USAGE, &e);
	n = json_object_array_length(evs);
	if (n > INGEST_MAX)
		return hc_fail(c, EXIT_USAGE, "params: events: %zu events, at most %d per call", n,
			       INGEST_MAX);
	for (size_t i = 0; i < n; i++)
		if (ingest_check(json_object_array_get_idx(evs, i), i, &e))
			return hc_fail_verr(c, EXIT_USAGE, &e);
	stored = events_ingest(c->x->ev, host, evs, &skipped);
	c->result = json_object_new_object();
	json_object_object_add(c->result, "host", json_object_new_string(host));
	json_object_object_add(c->result, "stored", json_object_new_uint64(stored));
	json_object_object_add(c->result, "duplicates", json_object_new_uint64(skipped));
	return 0;
}

const struct handler_entry handlers_view[] = {
	{ "events.ingest", h_events_ingest },	  { "port.map", h_port_map },
	{ "events.timeline", h_events_timeline }, { "token.show", h_token_show },
	{ "token.rotate", h_token_rotate },	  { NULL, NULL },
};
