// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The transport table and the loops over it. To add a transport: implement struct
 * transport_ops in user/enforce/<name>.c and add one line to table[] below.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "connlimit.h"
#include "handlers.h"
#include "http.h"
#include "log.h"
#include "mcp.h"
#include "mcp_http.h"
#include "peers.h"
#include "rpc.h"
#include "transports.h"

/* In start order; stopped in reverse. */
static const struct transport_ops *const table[] = {
	&rpc_transport,
	&api_transport,
	&mcp_http_transport,
	&peers_transport,
};

#define N_TABLE (sizeof(table) / sizeof(table[0]))
_Static_assert(N_TABLE <= TRANSPORTS_MAX, "TRANSPORTS_MAX is too small");

/* From the lws thread through the loop: the request goes to the transport of its listener. */
static void on_http_request(void *ctx, struct http_request *r)
{
	struct transports *t = ctx;

	for (size_t i = 0; i < N_TABLE; i++)
		if (table[i]->listener == r->listener && t->self[i] && table[i]->request) {
			table[i]->request(t->self[i], r);
			break;
		}
	http_request_free(r);
}

static int http_setup(struct transports *t, const struct config *cfg, char *token)
{
	struct http_opts o = {};
	int err;

	if (!cfg->http.enabled && !cfg->mcp.enabled && !cfg->n_peers)
		return 0;
	err = token_load(cfg->state_dir, token);
	if (err) {
		p_err("%s/%s: %s", cfg->state_dir, TOKEN_FILE,
		      err == -EINVAL
			      ? "not a token (64 hex characters); remove it to make a new one"
			      : strerror(-err));
		return EXIT_CONFIG;
	}
	o.listen[HTTP_DASH] = &cfg->http;
	o.listen[HTTP_MCP] = &cfg->mcp;
	o.mcp_auth_none = cfg->mcp_auth_none;
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (!strncmp(cfg->peers[i].url, "ws", 2))
			o.client = true;
	o.token = token;
	o.on_request = on_http_request;
	o.ctx = t;
	return http_start(&t->env.http, t->env.loop, &o) ? EXIT_UNAVAILABLE : 0;
}

int transports_start(struct transports *t, const struct config *cfg, const struct handler_ctx *hx,
		     struct events *ev, struct loop *loop, char token[TOKEN_LEN + 1])
{
	int err;

	memset(t, 0, sizeof(*t));
	t->env = (struct transport_env){ .cfg = cfg, .hx = hx, .ev = ev, .loop = loop };
	err = mcp_open(&t->env.mcp, hx, ev);
	if (err) {
		p_err("mcp: failed to start: %s", strerror(-err));
		return EXIT_FAIL;
	}
	err = http_setup(t, cfg, token);
	if (err)
		return err;
	for (size_t i = 0; i < N_TABLE; i++) {
		err = table[i]->start(&t->env, &t->self[i]);
		if (err) {
			t->self[i] = NULL;
			p_err("failed to start transport '%s': %s", table[i]->name, strerror(-err));
			return EXIT_FAIL;
		}
	}
	return 0;
}

void transports_stop(struct transports *t)
{
	/* Peers and streams first (they send through the server), the server, then MCP. */
	for (size_t i = N_TABLE; i-- > 0;) {
		if (t->self[i])
			table[i]->stop(t->self[i]);
		t->self[i] = NULL;
	}
	http_stop(t->env.http);
	t->env.http = NULL;
	mcp_close(t->env.mcp);
	t->env.mcp = NULL;
}

void transports_tick(struct transports *t, uint64_t now_ns)
{
	if (t->env.mcp)
		mcp_tick(t->env.mcp, now_ns);
	for (size_t i = 0; i < N_TABLE; i++)
		if (t->self[i] && table[i]->tick)
			table[i]->tick(t->self[i], now_ns);
}

/* Transport `name`'s status object (new reference), or NULL. */
static struct json_object *status_of(struct transports *t, const char *name)
{
	for (size_t i = 0; i < N_TABLE; i++)
		if (!strcmp(table[i]->name, name))
			return t->self[i] && table[i]->status ? table[i]->status(t->self[i]) : NULL;
	return NULL;
}

/* Every field of src (consumed) into dst. */
static void merge(struct json_object *dst, struct json_object *src)
{
	if (!src)
		return;
	json_object_object_foreach (src, k, v)
		json_object_object_add(dst, k, json_object_get(v));
	json_object_put(src);
}

static struct json_object *listener_json(const struct listen_cfg *l, uint16_t port)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "listen", json_object_new_string(l->spec));
	json_object_object_add(o, "port", json_object_new_int(port));
	json_object_object_add(o, "tls", json_object_new_boolean(l->cert[0] != '\0'));
	return o;
}

/* The HTTP server's counters, for /metrics (metrics.c reads them from status). */
static void http_counters(struct json_object *o, const struct http_stats *st)
{
	static const char *const classes[] = { "", "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct json_object *x = json_object_new_object();

	json_object_object_add(x, "dashboard", json_object_new_uint64(st->requests[HTTP_DASH]));
	json_object_object_add(x, "mcp", json_object_new_uint64(st->requests[HTTP_MCP]));
	json_object_object_add(o, "requests_by_listener", x);
	x = json_object_new_object();
	for (size_t i = 1; i < 6; i++)
		json_object_object_add(x, classes[i], json_object_new_uint64(st->responses[i]));
	json_object_object_add(o, "responses", x);
	x = json_object_new_object();
	json_object_object_add(x, "unauthorized", json_object_new_uint64(st->denied_auth));
	json_object_object_add(x, "forbidden_origin_or_host",
			       json_object_new_uint64(st->denied_origin));
	json_object_object_add(o, "refused", x);
	x = json_object_new_object();
	for (int i = 0; i < CL_REASONS; i++)
		json_object_object_add(x, connlimit_reason_name(i),
				       json_object_new_uint64(st->refused[i]));
	json_object_object_add(o, "connections_refused", x);
	x = json_object_new_object();
	for (int i = 0; i < CL_REASONS; i++)
		json_object_object_add(x, connlimit_reason_name(i),
				       json_object_new_uint64(st->evicted[i]));
	json_object_object_add(o, "connections_evicted", x);
	json_object_object_add(o, "body_incomplete", json_object_new_uint64(st->body_incomplete));
	x = json_object_new_object();
	json_object_object_add(x, "connections", json_object_new_uint64(st->conn_slots));
	json_object_object_add(x, "unauthenticated", json_object_new_uint64(st->conn_unauth_max));
	json_object_object_add(x, "per_address", json_object_new_uint64(st->conn_per_addr_max));
	json_object_object_add(o, "connection_limits", x);
	json_object_object_add(o, "fd_limit", json_object_new_uint64(st->fd_limit));
	json_object_object_add(o, "streams", json_object_new_uint64(st->streams));
}

static struct json_object *http_status(struct transports *t)
{
	const struct config *cfg = t->env.cfg;
	struct json_object *o = json_object_new_object(), *mcp, *api, *peers, *v;
	struct http_stats st;

	if (!t->env.http) {
		json_object_object_add(o, "enabled", json_object_new_boolean(false));
		return o;
	}
	http_get_stats(t->env.http, &st);
	json_object_object_add(o, "enabled", json_object_new_boolean(true));
	json_object_object_add(o, "dashboard",
			       listener_json(&cfg->http, http_port(t->env.http, HTTP_DASH)));
	mcp = listener_json(&cfg->mcp, http_port(t->env.http, HTTP_MCP));
	json_object_object_add(mcp, "auth",
			       json_object_new_string(cfg->mcp_auth_none ? "none" : "token"));
	if (t->env.mcp)
		merge(mcp, mcp_status_json(t->env.mcp));
	merge(mcp, status_of(t, "mcp"));
	peers = status_of(t, "peers");
	json_object_object_add(mcp, "peers", peers ? peers : json_object_new_array());
	json_object_object_add(o, "mcp", mcp);
	json_object_object_add(o, "connections", json_object_new_int((int)st.connections));
	api = status_of(t, "api");
	json_object_object_add(o, "event_streams",
			       json_object_object_get_ex(api, "event_streams", &v)
				       ? json_object_get(v)
				       : json_object_new_int(0));
	json_object_object_add(o, "websockets", json_object_new_int((int)st.websockets));
	json_object_object_add(
		o, "requests",
		json_object_new_uint64(st.requests[HTTP_DASH] + st.requests[HTTP_MCP]));
	json_object_object_add(o, "stream_drops",
			       json_object_object_get_ex(api, "stream_drops", &v)
				       ? json_object_get(v)
				       : json_object_new_uint64(0));
	json_object_put(api);
	http_counters(o, &st);
	return o;
}

void transports_status(struct transports *t, struct json_object *status)
{
	struct json_object *ctl = status_of(t, "control");

	json_object_object_add(status, "http", http_status(t));
	if (ctl)
		json_object_object_add(status, "control_socket", ctl);
}

void transports_set_token(struct transports *t, const char *token)
{
	if (t->env.http)
		http_set_token(t->env.http, token);
}
