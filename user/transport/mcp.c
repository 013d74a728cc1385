// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "events.h"
#include "handlers.h"
#include "log.h"
#include "mcp.h"
#include "mcp_era.h"
#include "mcp_tools.h"
#include "schema.h"
#include "version.h"

#define MAX_SESSIONS	    1024 /* every kind: HTTP, WebSocket, stdio, listen streams */
#define MAX_HTTP_SESSIONS   256	 /* legacy Streamable HTTP sessions; idle ones are evicted */
#define MAX_HTTP_PER_CLIENT 64	 /* ... of one client address: it evicts only its own */
#define MAX_LISTENS	    8	 /* subscriptions/listen per session (WebSocket, stdio) */
#define SESSION_IDLE_NS	    (3600ULL * 1000000000ULL) /* HTTP sessions without traffic expire */
#define STATUS_NOTE_NS	    (100ULL * 1000000ULL)     /* status updates at most every 100 ms */

static const char *const versions[] = { "2025-11-25", "2025-06-18", "2025-03-26" };

/* MCP log levels, RFC 5424 order. */
static const char *const levels[] = { "debug", "info",	   "notice", "warning",
				      "error", "critical", "alert",  "emergency" };
#define LEVEL_DEFAULT 3 /* warning */

enum { R_STATUS, R_SERVICES, R_PORTS, R_EVENTS, N_RESOURCES };

static const struct resource {
	const char *uri, *name, *title, *description, *method, *params;
} resources[N_RESOURCES] = {
	[R_STATUS] = { "caelum://status", "status", "Host status",
		       "caelumd's status: components (attached, mode), verification, policy, "
		       "event counters, registry.",
		       "status", NULL },
	[R_SERVICES] = { "caelum://registry/services", "services", "Registered services",
			 "Every service of the registry with its ports, state and declarations.",
			 "service.list", NULL },
	[R_PORTS] = { "caelum://registry/ports", "ports", "Port reservations",
		      "Every port reservation: port, protocol, owner, origin, managed.",
		      "port.list", NULL },
	[R_EVENTS] = { "caelum://events/recent", "recent-events", "Recent events",
		       "The last 100 events (denials, registry changes, health, verification).",
		       "events.list", "{\"limit\": 100}" },
};

struct listen {
	struct json_object *id; /* the listen request's id: the subscription id */
	unsigned int subs;	/* bit per resource */
};

struct mcp_session {
	struct mcp_session *next;
	struct listen listens[MAX_LISTENS];
	size_t n_listens;
	char peer[64]; /* the client's address (HTTP) */
	char id[33];
	char transport[8];
	char version[16];
	bool initialized;
	int level;
	unsigned int subs; /* bit per resource */
	bool status_pending;
	uint64_t last_status_ns, last_active_ns;
	mcp_send_fn send;
	void *ctx;
	char client[128];
};

/* A tools/call waiting for its commit: answered through the transport's mcp_later. */
struct mcp_pending {
	struct mcp *m;
	struct json_object *id;
	bool modern;
	size_t tool;
	struct mcp_later later;
	struct hcall *call;
	struct mcp_pending *next;
};

struct mcp {
	const struct handler_ctx *hx;
	struct mcp_pending *pending;
	/* the message being dispatched: where a waiting tools/call answers, its era */
	const struct mcp_later *later;
	bool modern_now;
	struct events *ev;
	struct mcp_tools *tools;
	struct mcp_session *sessions;
	size_t n_sessions;
	int sub_id;
	bool in_log; /* a log message being forwarded: do not forward its own logs */
	pthread_t loop_thread;
	uint64_t notes_sent, notes_dropped;
	struct mcp_stats st;
};

#define INSTRUCTIONS                                                                               \
	"Caelum enforces this host's infrastructure registry in the kernel: port "                 \
	"reservations, database access, GPU devices and task budgets. Read with "                  \
	"get_status, list_services, list_ports, recent_events; change reservations with "          \
	"reserve_port, allocate_port, release_port; validate a service with check_service "        \
	"before starting it. Denials are events (recent_events, or subscribe to "                  \
	"caelum://events/recent)."

static struct mcp *log_target; /* the instance that receives caelumd's log messages */

/* ---- messages ---- */

static struct json_object *envelope(struct json_object *id)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(o, "id", json_object_get(id));
	return o;
}

static struct json_object *result(struct json_object *id, struct json_object *res)
{
	struct json_object *o = envelope(id);

	json_object_object_add(o, "result", res ? res : json_object_new_object());
	return o;
}

static void notify(struct mcp *m, struct mcp_session *s, const char *method,
		   struct json_object *params)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(o, "method", json_object_new_string(method));
	json_object_object_add(o, "params", params);
	if (s->send && s->send(s->ctx, o))
		m->notes_sent++;
	else
		m->notes_dropped++;
	json_object_put(o);
}

bool mcp_version_supported(const char *v)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		if (!strcmp(v, versions[i]))
			return true;
	return false;
}

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) &&
			       json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

bool mcp_is_initialize(struct json_object *msg)
{
	const char *m = str_of(msg, "method");

	return m && !strcmp(m, "initialize") && json_object_object_get_ex(msg, "id", NULL);
}

/* ---- sessions ---- */

struct mcp_session *mcp_session_new(struct mcp *m, const char *transport, mcp_send_fn send,
				    void *ctx)
{
	static const char hex[] = "0123456789abcdef";
	struct mcp_session *s;
	unsigned char raw[16];

	if (m->n_sessions >= MAX_SESSIONS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		s->id[2 * i] = hex[raw[i] >> 4];
		s->id[2 * i + 1] = hex[raw[i] & 15];
	}
	snprintf(s->transport, sizeof(s->transport), "%s", transport);
	s->level = LEVEL_DEFAULT;
	s->send = send;
	s->ctx = ctx;
	s->last_active_ns = time_now_ns();
	s->next = m->sessions;
	m->sessions = s;
	m->n_sessions++;
	return s;
}

static void listens_clear(struct mcp_session *s)
{
	for (size_t i = 0; i < s->n_listens; i++)
		json_object_put(s->listens[i].id);
	s->n_listens = 0;
}

void mcp_session_free(struct mcp *m, struct mcp_session *s)
{
	for (struct mcp_session **pp = &m->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			m->n_sessions--;
			listens_clear(s);
			free(s);
			return;
		}
}

/* A legacy HTTP session no stream serves: nothing is lost but the session when it goes. */
static bool evictable(const struct mcp_session *s, const char *peer)
{
	return !strcmp(s->transport, "http") && !s->send && (!peer || !strcmp(s->peer, peer));
}

/* The least recently used evictable session (of peer, when not NULL), or NULL. */
static struct mcp_session *lru(struct mcp *m, const char *peer)
{
	struct mcp_session *best = NULL;

	for (struct mcp_session *s = m->sessions; s; s = s->next)
		if (evictable(s, peer) && (!best || s->last_active_ns < best->last_active_ns))
			best = s;
	return best;
}

struct mcp_session *mcp_session_new_http(struct mcp *m, const char *peer)
{
	size_t total = 0, mine = 0;
	struct mcp_session *s, *victim = NULL;

	for (s = m->sessions; s; s = s->next)
		if (!strcmp(s->transport, "http")) {
			total++;
			mine += !strcmp(s->peer, peer);
		}
	/* A client at its limit makes room among its own sessions only. */
	if (mine >= MAX_HTTP_PER_CLIENT) {
		victim = lru(m, peer);
		if (victim)
			m->st.evicted_per_client++;
	} else if (total >= MAX_HTTP_SESSIONS || m->n_sessions >= MAX_SESSIONS) {
		victim = lru(m, NULL);
		if (victim)
			m->st.evicted_lru++;
	}
	if (victim)
		mcp_session_free(m, victim);
	if ((mine >= MAX_HTTP_PER_CLIENT || total >= MAX_HTTP_SESSIONS) && !victim) {
		m->st.refused++;
		return NULL;
	}
	s = mcp_session_new(m, "http", NULL, NULL);
	if (!s) {
		m->st.refused++;
		return NULL;
	}
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	return s;
}

struct mcp_session *mcp_session_find(struct mcp *m, const char *id)
{
	for (struct mcp_session *s = m->sessions; s; s = s->next)
		if (!strcmp(s->id, id))
			return s;
	return NULL;
}

const char *mcp_session_id(const struct mcp_session *s)
{
	return s->id;
}

const char *mcp_session_version(const struct mcp_session *s)
{
	return s->version;
}

void mcp_session_set_sender(struct mcp_session *s, mcp_send_fn send, void *ctx)
{
	s->send = send;
	s->ctx = ctx;
}

void *mcp_session_sender_ctx(const struct mcp_session *s)
{
	return s->ctx;
}

/* ---- methods ---- */

static struct json_object *capabilities(bool legacy)
{
	struct json_object *caps = json_object_new_object(), *o = json_object_new_object();

	json_object_object_add(o, "listChanged", json_object_new_boolean(false));
	json_object_object_add(caps, "tools", o);
	o = json_object_new_object();
	json_object_object_add(o, "subscribe", json_object_new_boolean(true));
	json_object_object_add(o, "listChanged", json_object_new_boolean(false));
	json_object_object_add(caps, "resources", o);
	/* Logging is deprecated on 2026-07-28: offered to the legacy era only. There the
	 * (empty) prompts list is served without the capability, as it always was; 2026-07-28
	 * requires the capability of what is served. */
	if (legacy) {
		json_object_object_add(caps, "logging", json_object_new_object());
	} else {
		o = json_object_new_object();
		json_object_object_add(o, "listChanged", json_object_new_boolean(false));
		json_object_object_add(caps, "prompts", o);
	}
	return caps;
}

static struct json_object *do_initialize(struct mcp_session *s, struct json_object *id,
					 struct json_object *params)
{
	const char *want = str_of(params, "protocolVersion");
	struct json_object *res, *info, *ci;

	if (!want)
		return mcp_error(id, -32602, "initialize: params.protocolVersion must be a string");
	snprintf(s->version, sizeof(s->version), "%s",
		 mcp_version_supported(want) ? want : MCP_LATEST_VERSION);
	if (json_object_object_get_ex(params, "clientInfo", &ci) && str_of(ci, "name"))
		snprintf(s->client, sizeof(s->client), "%s", str_of(ci, "name"));
	s->initialized = true;
	res = json_object_new_object();
	json_object_object_add(res, "protocolVersion", json_object_new_string(s->version));
	json_object_object_add(res, "capabilities", capabilities(true));
	info = json_object_new_object();
	json_object_object_add(info, "name", json_object_new_string("caelumd"));
	json_object_object_add(info, "title", json_object_new_string("Caelum"));
	json_object_object_add(info, "version", json_object_new_string(CAELUM_VERSION));
	json_object_object_add(res, "serverInfo", info);
	json_object_object_add(res, "instructions", json_object_new_string(INSTRUCTIONS));
	return result(id, res);
}

static struct json_object *do_tools_list(struct mcp *m, struct json_object *id)
{
	return result(id, mcp_tools_list(m->tools));
}

/* What dispatch returns for a request answered later (a tools/call waiting for a commit). */
static char pending_mark;
#define PENDING ((struct json_object *)&pending_mark)

static void era_fix(struct json_object *r, const char *method);

static void tool_replied(void *arg, int rc, struct json_object *res, struct herr *err)
{
	struct mcp_pending *p = arg;
	struct mcp *m = p->m;
	struct json_object *out = NULL, *r;
	char msg[160];
	int code;

	for (struct mcp_pending **pp = &m->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	code = mcp_tools_finish(m->tools, p->tool, rc, res, err, &out, msg, sizeof(msg));
	r = code ? mcp_error(p->id, code, msg) : result(p->id, out);
	if (p->modern)
		era_fix(r, "tools/call");
	p->later.fn(p->later.ctx, p->later.conn, r);
	json_object_put(r);
	json_object_put(p->id);
	free(p);
}

static struct json_object *do_tools_call(struct mcp *m, struct json_object *id,
					 struct json_object *params)
{
	struct json_object *res = NULL;
	struct mcp_pending *p = m->later ? calloc(1, sizeof(*p)) : NULL;
	struct hreply reply = { tool_replied, p };
	char msg[160];
	int code;

	if (!p) {
		code = mcp_tools_call(m->tools, params, &res, msg, sizeof(msg));
		return code ? mcp_error(id, code, msg) : result(id, res);
	}
	code = mcp_tools_begin(m->tools, params, &res, msg, sizeof(msg), &reply, &p->call,
			       &p->tool);
	if (code == MCP_TOOLS_PENDING) {
		*p = (struct mcp_pending){ .m = m,
					   .id = json_object_get(id),
					   .modern = m->modern_now,
					   .tool = p->tool,
					   .later = *m->later,
					   .call = p->call,
					   .next = m->pending };
		m->pending = p;
		return PENDING;
	}
	free(p);
	return code ? mcp_error(id, code, msg) : result(id, res);
}

void mcp_cancel(struct mcp *m, const void *ctx)
{
	for (struct mcp_pending **pp = &m->pending, *p; (p = *pp);) {
		if (ctx && p->later.ctx != ctx) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		handlers_cancel(p->call);
		json_object_put(p->id);
		free(p);
	}
}

/* The resource's document, or NULL with the handler's refusal in err (its errors freed). */
static struct json_object *read_resource(struct mcp *m, int r, struct herr *err)
{
	struct caller who = { .uid = (uid_t)-1, .transport = "mcp" };
	struct json_object *params =
		resources[r].params ? json_tokener_parse(resources[r].params) : NULL;
	struct json_object *res = NULL;

	if (handlers_call(m->hx, resources[r].method, params, &who, &res, err, NULL)) {
		json_object_put(err->errors);
		err->errors = NULL;
		res = NULL;
	}
	json_object_put(params);
	return res;
}

static int resource_index(const char *uri)
{
	for (int i = 0; uri && i < N_RESOURCES; i++)
		if (!strcmp(uri, resources[i].uri))
			return i;
	return -1;
}

static struct json_object *do_resources_list(struct json_object *id)
{
	struct json_object *arr = json_object_new_array(), *res = json_object_new_object();

	for (int i = 0; i < N_RESOURCES; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "uri", json_object_new_string(resources[i].uri));
		json_object_object_add(o, "name", json_object_new_string(resources[i].name));
		json_object_object_add(o, "title", json_object_new_string(resources[i].title));
		json_object_object_add(o, "description",
				       json_object_new_string(resources[i].description));
		json_object_object_add(o, "mimeType", json_object_new_string("application/json"));
		json_object_array_add(arr, o);
	}
	json_object_object_add(res, "resources", arr);
	return result(id, res);
}

static struct json_object *unknown_resource(struct json_object *id, const char *uri)
{
	struct json_object *o = mcp_error(id, -32002, "Resource not found"), *e, *data;

	json_object_object_get_ex(o, "error", &e);
	data = json_object_new_object();
	json_object_object_add(data, "uri", uri ? json_object_new_string(uri) : NULL);
	json_object_object_add(e, "data", data);
	return o;
}

static struct json_object *do_resources_read(struct mcp *m, struct json_object *id,
					     struct json_object *params)
{
	const char *uri = str_of(params, "uri");
	int r = resource_index(uri);
	struct json_object *doc, *res, *contents, *c;
	struct herr err;

	if (!uri)
		return mcp_error(id, -32602, "resources/read: params.uri must be a string");
	if (r < 0)
		return unknown_resource(id, uri);
	doc = read_resource(m, r, &err);
	if (!doc) /* the handler's words, as caelumctl and the API give them */
		return mcp_error(id, -32603, err.message);
	c = json_object_new_object();
	json_object_object_add(c, "uri", json_object_new_string(uri));
	json_object_object_add(c, "mimeType", json_object_new_string("application/json"));
	json_object_object_add(
		c, "text",
		json_object_new_string(json_object_to_json_string_ext(
			doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)));
	json_object_put(doc);
	contents = json_object_new_array();
	json_object_array_add(contents, c);
	res = json_object_new_object();
	json_object_object_add(res, "contents", contents);
	return result(id, res);
}

static struct json_object *do_subscribe(struct mcp_session *s, struct json_object *id,
					struct json_object *params, bool on)
{
	const char *uri = str_of(params, "uri");
	int r = resource_index(uri);

	if (!uri)
		return mcp_error(id, -32602, "params.uri must be a string");
	/* A URI this server does not (yet) have is accepted and never updated. */
	if (r < 0)
		return result(id, NULL);
	if (on)
		s->subs |= 1U << r;
	else
		s->subs &= ~(1U << r);
	return result(id, NULL);
}

static struct json_object *do_set_level(struct mcp_session *s, struct json_object *id,
					struct json_object *params)
{
	const char *lvl = str_of(params, "level");

	for (int i = 0; lvl && i < (int)(sizeof(levels) / sizeof(levels[0])); i++)
		if (!strcmp(lvl, levels[i])) {
			s->level = i;
			return result(id, NULL);
		}
	return mcp_error(id, -32602,
			 "logging/setLevel: params.level must be one of debug, info, notice, "
			 "warning, error, critical, alert, emergency");
}

/* ---- 2026-07-28: discover and listen ---- */

static struct json_object *do_discover(struct json_object *id)
{
	struct json_object *res = json_object_new_object(), *v = json_object_new_array();

	json_object_array_add(v, json_object_new_string(MCP_MODERN_VERSION));
	json_object_object_add(res, "supportedVersions", v);
	json_object_object_add(res, "capabilities", capabilities(false));
	json_object_object_add(res, "instructions", json_object_new_string(INSTRUCTIONS));
	return result(id, res);
}

/* The honored part of a SubscriptionFilter: resource URIs (this server offers no list
 * changes); *subs the bits of the resources among them. NULL: the filter is invalid. */
static struct json_object *listen_filter(struct json_object *f, unsigned int *subs)
{
	static const char *const flags[] = { "toolsListChanged", "promptsListChanged",
					     "resourcesListChanged" };
	struct json_object *uris = NULL, *honored;

	*subs = 0;
	if (!f || !json_object_is_type(f, json_type_object))
		return NULL;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct json_object *b;

		if (json_object_object_get_ex(f, flags[i], &b) &&
		    !json_object_is_type(b, json_type_boolean))
			return NULL;
	}
	if (json_object_object_get_ex(f, "resourceSubscriptions", &uris)) {
		if (!json_object_is_type(uris, json_type_array))
			return NULL;
		for (size_t i = 0; i < json_object_array_length(uris); i++) {
			struct json_object *u = json_object_array_get_idx(uris, i);
			int r;

			if (!json_object_is_type(u, json_type_string))
				return NULL;
			r = resource_index(json_object_get_string(u));
			if (r >= 0)
				*subs |= 1U << r;
		}
	}
	honored = json_object_new_object();
	if (uris && json_object_array_length(uris))
		json_object_object_add(honored, "resourceSubscriptions", json_object_get(uris));
	return honored;
}

static struct json_object *subscription_meta(struct json_object *id)
{
	struct json_object *meta = json_object_new_object();

	json_object_object_add(meta, MCP_KEY_SUBSCRIPTION, json_object_get(id));
	return meta;
}

/* subscriptions/listen: the acknowledgement goes out now through the session's sender, the
 * changes later; no response until the subscription ends (NULL), or at once (the graceful
 * end) when nothing of the filter can be delivered. */
static struct json_object *do_listen(struct mcp *m, struct mcp_session *s, struct json_object *id,
				     struct json_object *params)
{
	struct json_object *f = NULL, *honored, *p, *res;
	unsigned int subs;
	bool open;

	json_object_object_get_ex(params, "notifications", &f);
	honored = listen_filter(f, &subs);
	if (!honored)
		return mcp_error(id, -32602,
				 "Invalid params: 'notifications' is required and must be a valid "
				 "SubscriptionFilter");
	if (s->n_listens == MAX_LISTENS) {
		json_object_put(honored);
		return mcp_error(id, -32603, "Subscription limit reached");
	}
	open = json_object_object_length(honored) > 0;
	p = json_object_new_object();
	json_object_object_add(p, "notifications", honored); /* p owns it */
	json_object_object_add(p, "_meta", subscription_meta(id));
	notify(m, s, "notifications/subscriptions/acknowledged", p);
	if (open) {
		s->listens[s->n_listens].id = json_object_get(id);
		s->listens[s->n_listens++].subs = subs;
		m->st.listens_opened++;
		return NULL;
	}
	res = json_object_new_object();
	json_object_object_add(res, "_meta", subscription_meta(id));
	return result(id, res);
}

/* notifications/cancelled of a listen: nothing more is delivered for it. */
static void listen_cancel(struct mcp_session *s, struct json_object *params)
{
	struct json_object *rid;

	if (!json_object_object_get_ex(params, "requestId", &rid))
		return;
	for (size_t i = 0; i < s->n_listens; i++)
		if (json_object_equal(s->listens[i].id, rid)) {
			json_object_put(s->listens[i].id);
			s->listens[i] = s->listens[--s->n_listens];
			return;
		}
}

/* ---- dispatch ---- */

/* What both eras share: the tools and resources. NULL when method is not one of them. */
static struct json_object *common(struct mcp *m, const char *method, struct json_object *id,
				  struct json_object *params)
{
	if (!strcmp(method, "tools/list"))
		return do_tools_list(m, id);
	if (!strcmp(method, "tools/call"))
		return do_tools_call(m, id, params);
	if (!strcmp(method, "resources/list"))
		return do_resources_list(id);
	if (!strcmp(method, "resources/templates/list")) {
		struct json_object *res = json_object_new_object();

		json_object_object_add(res, "resourceTemplates", json_object_new_array());
		return result(id, res);
	}
	if (!strcmp(method, "resources/read"))
		return do_resources_read(m, id, params);
	if (!strcmp(method, "prompts/list")) {
		/* No prompts (and no prompts capability); an empty list, not an error. */
		struct json_object *res = json_object_new_object();

		json_object_object_add(res, "prompts", json_object_new_array());
		return result(id, res);
	}
	return NULL;
}

static struct json_object *legacy(struct mcp *m, struct mcp_session *s, const char *method,
				  struct json_object *id, struct json_object *params)
{
	struct json_object *r;

	if (!strcmp(method, "initialize"))
		return do_initialize(s, id, params);
	if (!strcmp(method, "ping"))
		return result(id, NULL);
	if (!s->initialized)
		return mcp_error(id, -32600, "Invalid Request: initialize first");
	if ((r = common(m, method, id, params)))
		return r;
	if (!strcmp(method, "resources/subscribe"))
		return do_subscribe(s, id, params, true);
	if (!strcmp(method, "resources/unsubscribe"))
		return do_subscribe(s, id, params, false);
	if (!strcmp(method, "logging/setLevel"))
		return do_set_level(s, id, params);
	return mcp_error(id, -32601, "Method not found");
}

/* 2026-07-28: no session state but listens; results carry resultType and serverInfo. */
static struct json_object *modern(struct mcp *m, struct mcp_session *s, const char *method,
				  struct json_object *id, struct json_object *params)
{
	struct json_object *r = NULL;

	m->st.modern_requests++;
	if (!strcmp(method, "subscriptions/listen")) {
		if (!(r = do_listen(m, s, id, params)))
			return NULL; /* open: the response comes when it ends */
	} else if (!strcmp(method, "server/discover")) {
		r = do_discover(id);
	} else if (!(r = common(m, method, id, params))) {
		r = mcp_error(id, -32601, "Method not found");
	}
	if (r != PENDING)
		era_fix(r, method);
	return r;
}

/* A 2026-07-28 response: results carry resultType and serverInfo, error codes its own. */
static void era_fix(struct json_object *r, const char *method)
{
	struct json_object *v;

	if (json_object_object_get_ex(r, "result", &v)) {
		mcp_era_result(v, method);
	} else if (json_object_object_get_ex(r, "error", &v)) {
		struct json_object *c;

		if (json_object_object_get_ex(v, "code", &c))
			json_object_set_int(c, mcp_era_error_code(json_object_get_int(c)));
	}
}

static struct json_object *dispatch(struct mcp *m, struct mcp_session *s, struct json_object *msg,
				    const struct mcp_edge *edge, int *status)
{
	struct json_object *id = NULL, *params = NULL, *v, *err = NULL;
	enum mcp_era era;
	const char *method;
	bool request;

	*status = 200;
	s->last_active_ns = time_now_ns();
	if (!json_object_is_type(msg, json_type_object))
		return mcp_error(NULL, -32600, "Invalid Request: not a JSON-RPC object");
	request = json_object_object_get_ex(msg, "id", &id);
	if (!json_object_object_get_ex(msg, "jsonrpc", &v) ||
	    !json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "2.0"))
		return mcp_error(id, -32600, "Invalid Request: jsonrpc must be \"2.0\"");
	method = str_of(msg, "method");
	if (!method) {
		/* A response to a request of ours: the server sends none, so nothing waits. */
		if (json_object_object_get_ex(msg, "result", NULL) ||
		    json_object_object_get_ex(msg, "error", NULL))
			return NULL;
		return mcp_error(id, -32600, "Invalid Request: method must be a string");
	}
	if (request &&
	    !(json_object_is_type(id, json_type_string) || json_object_is_type(id, json_type_int)))
		return mcp_error(NULL, -32600,
				 "Invalid Request: id must be a string or an integer");
	if (json_object_object_get_ex(msg, "params", &params) && params &&
	    !json_object_is_type(params, json_type_object))
		return request ? mcp_error(id, -32602, "Invalid params: must be an object") : NULL;
	if (mcp_era_classify(msg, edge, &era, &err, status)) {
		m->st.era_refused++;
		if (request)
			return err;
		json_object_put(err);
		*status = 202;
		return NULL;
	}
	if (!request) {
		/* notifications/initialized, cancelled, roots/list_changed */
		if (era == MCP_ERA_MODERN && !strcmp(method, "notifications/cancelled"))
			listen_cancel(s, params);
		return NULL;
	}
	m->modern_now = era == MCP_ERA_MODERN;
	if (era == MCP_ERA_MODERN) {
		struct json_object *r = modern(m, s, method, id, params), *e, *c;

		/* A method this revision does not have is a 404 on Streamable HTTP. */
		if (r && r != PENDING && json_object_object_get_ex(r, "error", &e) &&
		    json_object_object_get_ex(e, "code", &c) && json_object_get_int(c) == -32601)
			*status = 404;
		return r;
	}
	return legacy(m, s, method, id, params);
}

/* dispatch with where a waiting tools/call answers (NULL: it waits here); *pending: it went
 * pending, nothing to send now. */
static struct json_object *handle(struct mcp *m, struct mcp_session *s, struct json_object *msg,
				  const struct mcp_edge *edge, int *status,
				  const struct mcp_later *later, bool *pending)
{
	const struct mcp_later *outer = m->later;
	struct json_object *r;

	m->later = later;
	r = dispatch(m, s, msg, edge, status);
	m->later = outer;
	if (pending)
		*pending = r == PENDING;
	return r == PENDING ? NULL : r;
}

struct json_object *mcp_handle(struct mcp *m, struct mcp_session *s, struct json_object *msg)
{
	int status;

	return handle(m, s, msg, NULL, &status, NULL, NULL);
}

struct json_object *mcp_handle_later(struct mcp *m, struct mcp_session *s, struct json_object *msg,
				     const struct mcp_later *later, bool *pending)
{
	int status;

	return handle(m, s, msg, NULL, &status, later, pending);
}

struct json_object *mcp_handle_edge(struct mcp *m, struct mcp_session *s, struct json_object *msg,
				    const struct mcp_edge *edge, int *http_status)
{
	return mcp_handle_edge_later(m, s, msg, edge, http_status, NULL, NULL);
}

struct json_object *mcp_handle_edge_later(struct mcp *m, struct mcp_session *s,
					  struct json_object *msg, const struct mcp_edge *edge,
					  int *http_status, const struct mcp_later *later,
					  bool *pending)
{
	struct mcp_session tmp = { .transport = "http", .level = LEVEL_DEFAULT };
	struct json_object *r = handle(m, s ? s : &tmp, msg, edge, http_status, later, pending);

	listens_clear(&tmp);
	return r;
}

/* ---- server-initiated messages ---- */

/* notifications/resources/updated for resource r: once for a legacy subscription, once per
 * listen that asked for it (stamped with its subscription id). */
static void updated(struct mcp *m, struct mcp_session *s, int r)
{
	struct json_object *p;

	if (s->subs & (1U << r)) {
		p = json_object_new_object();
		json_object_object_add(p, "uri", json_object_new_string(resources[r].uri));
		notify(m, s, "notifications/resources/updated", p);
	}
	for (size_t i = 0; i < s->n_listens; i++) {
		if (!(s->listens[i].subs & (1U << r)))
			continue;
		p = json_object_new_object();
		json_object_object_add(p, "uri", json_object_new_string(resources[r].uri));
		json_object_object_add(p, "_meta", subscription_meta(s->listens[i].id));
		notify(m, s, "notifications/resources/updated", p);
	}
}

static unsigned int wanted(const struct mcp_session *s)
{
	unsigned int w = s->subs;

	for (size_t i = 0; i < s->n_listens; i++)
		w |= s->listens[i].subs;
	return w;
}

static bool registry_event(const char *type)
{
	static const char *const types[] = { "port_reserved",	"port_released",  "service_applied",
					     "service_deleted", "policy_applied", "service_started",
					     "service_stopped", "db_applied",	  "db_deleted" };

	for (size_t i = 0; type && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(type, types[i]))
			return true;
	return false;
}

static void on_event(void *ctx, struct json_object *ev)
{
	struct mcp *m = ctx;
	const char *type = str_of(ev, "type");
	uint64_t now = time_now_ns();

	for (struct mcp_session *s = m->sessions; s; s = s->next) {
		unsigned int w = wanted(s);

		if (!w)
			continue;
		if (w & (1U << R_EVENTS))
			updated(m, s, R_EVENTS);
		if ((w & (1U << R_PORTS)) && registry_event(type))
			updated(m, s, R_PORTS);
		if ((w & (1U << R_SERVICES)) && registry_event(type))
			updated(m, s, R_SERVICES);
		if (w & (1U << R_STATUS)) {
			if (now - s->last_status_ns >= STATUS_NOTE_NS) {
				s->last_status_ns = now;
				s->status_pending = false;
				updated(m, s, R_STATUS);
			} else {
				s->status_pending = true;
			}
		}
	}
}

/* caelumd's own log messages, as notifications/message, on the loop thread only. */
static void on_log(enum log_level lvl, const char *text)
{
	static const int map[] = {
		[LOG_LVL_ERR] = 4, [LOG_LVL_WARN] = 3, [LOG_LVL_INFO] = 1, [LOG_LVL_DEBUG] = 0
	};
	struct mcp *m = log_target;

	if (!m || m->in_log || !pthread_equal(pthread_self(), m->loop_thread))
		return;
	m->in_log = true;
	for (struct mcp_session *s = m->sessions; s; s = s->next) {
		struct json_object *p;

		if (!s->initialized || map[lvl] < s->level)
			continue;
		p = json_object_new_object();
		json_object_object_add(p, "level", json_object_new_string(levels[map[lvl]]));
		json_object_object_add(p, "logger", json_object_new_string("caelumd"));
		json_object_object_add(p, "data", json_object_new_string(text));
		notify(m, s, "notifications/message", p);
	}
	m->in_log = false;
}

void mcp_tick(struct mcp *m, uint64_t now)
{
	struct mcp_session *s, *next;

	for (s = m->sessions; s; s = next) {
		next = s->next;
		if (s->status_pending && now - s->last_status_ns >= STATUS_NOTE_NS) {
			s->status_pending = false;
			s->last_status_ns = now;
			updated(m, s, R_STATUS);
		}
		/* Only HTTP sessions outlive their connection; they expire when idle. */
		if (!strcmp(s->transport, "http") && !s->send &&
		    now - s->last_active_ns > SESSION_IDLE_NS)
			mcp_session_free(m, s);
	}
}

struct json_object *mcp_status_json(struct mcp *m)
{
	struct json_object *o = json_object_new_object();
	uint64_t calls, errors;
	size_t by[3] = {};

	for (struct mcp_session *s = m->sessions; s; s = s->next)
		by[!strcmp(s->transport, "ws") ? 1 : !strcmp(s->transport, "stdio") ? 2 : 0]++;
	json_object_object_add(o, "sessions_http", json_object_new_uint64(by[0]));
	json_object_object_add(o, "sessions_websocket", json_object_new_uint64(by[1]));
	json_object_object_add(o, "sessions_stdio", json_object_new_uint64(by[2]));
	mcp_tools_counts(m->tools, &calls, &errors);
	json_object_object_add(o, "tool_calls", json_object_new_uint64(calls));
	json_object_object_add(o, "tool_errors", json_object_new_uint64(errors));
	json_object_object_add(o, "notifications_sent", json_object_new_uint64(m->notes_sent));
	json_object_object_add(o, "notifications_dropped",
			       json_object_new_uint64(m->notes_dropped));
	json_object_object_add(o, "sessions_evicted_lru",
			       json_object_new_uint64(m->st.evicted_lru));
	json_object_object_add(o, "sessions_evicted_per_client",
			       json_object_new_uint64(m->st.evicted_per_client));
	json_object_object_add(o, "sessions_refused", json_object_new_uint64(m->st.refused));
	json_object_object_add(o, "modern_requests", json_object_new_uint64(m->st.modern_requests));
	json_object_object_add(o, "listens_opened", json_object_new_uint64(m->st.listens_opened));
	json_object_object_add(o, "era_refused", json_object_new_uint64(m->st.era_refused));
	return o;
}

void mcp_get_stats(struct mcp *m, struct mcp_stats *st)
{
	*st = m->st;
	st->sessions = m->n_sessions;
	st->notes_sent = m->notes_sent;
	st->notes_dropped = m->notes_dropped;
}

int mcp_open(struct mcp **out, const struct handler_ctx *hx, struct events *ev)
{
	struct mcp *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	m->hx = hx;
	m->ev = ev;
	m->loop_thread = pthread_self();
	err = mcp_tools_open(&m->tools, hx);
	if (err) {
		mcp_close(m);
		return err;
	}
	m->sub_id = events_subscribe(ev, on_event, m);
	if (m->sub_id <= 0) {
		mcp_close(m);
		return -ENOSPC;
	}
	log_target = m;
	log_set_sink(on_log);
	*out = m;
	return 0;
}

void mcp_close(struct mcp *m)
{
	if (!m)
		return;
	if (log_target == m) {
		log_set_sink(NULL);
		log_target = NULL;
	}
	if (m->sub_id > 0)
		events_unsubscribe(m->ev, m->sub_id);
	mcp_cancel(m, NULL);
	while (m->sessions)
		mcp_session_free(m, m->sessions);
	mcp_tools_close(m->tools);
	free(m);
}
