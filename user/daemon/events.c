// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "caelum/bandwidth.h"
#include "capacity.h"
#include "events.h"
#include "journal.h"
#include "log.h"
#include "portrange.h"

#define JOURNAL_NAME	      "events.jsonl"
#define MAX_SUBS	      256
#define TIMELINE_MINUTES      60
#define EVENTS_MAX_PEER_HOSTS 64

/* Kernel violation types, in the order of the timeline's series. */
static const char *const violation_types[] = {
	"bind_denied",	     "device_denied", "task_budget_exceeded",
	"db_connect_denied", "db_conn_limit",
};
#define N_VIOLATION_TYPES (sizeof(violation_types) / sizeof(violation_types[0]))

struct minute {
	uint64_t minute;	       /* realtime minutes since the epoch */
	uint64_t n[N_VIOLATION_TYPES]; /* occurrences (the events' counts) */
};

struct sub {
	int id; /* 0 = free slot */
	events_sub_fn fn;
	void *ctx;
};

struct events {
	char host[256];
	char state_dir[4096];
	unsigned int keep;
	struct journal *journal;
	events_name_fn name_of;
	events_dev_fn dev_name;
	events_db_fn db_name;
	void *name_ctx;
	/* The newest events, oldest at head, kept serialized: a json-c tree of an event takes
	 * ~3 KB, its text ~400 bytes, and 16,384 of them stay in memory. */
	struct {
		uint64_t id;
		char *text;
	} window[EVENTS_WINDOW];
	size_t head; /* index of the oldest */
	size_t count;
	struct sub subs[MAX_SUBS];
	int next_sub;
	uint64_t canary[2];
	struct events_counters c;
	struct events_typecount types[EVENTS_MAX_TYPES];
	size_t n_types;
	struct minute minutes[TIMELINE_MINUTES];
	struct {
		char host[256];
		uint64_t last_origin_id;
	} peers[EVENTS_MAX_PEER_HOSTS];
	size_t n_peers;
};

uint64_t time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t time_mono_to_real(uint64_t mono_ns)
{
	struct timespec rt, mono;
	uint64_t rt_ns, mono_now;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	rt_ns = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
	mono_now = (uint64_t)mono.tv_sec * 1000000000ULL + (uint64_t)mono.tv_nsec;
	return rt_ns - (mono_now - mono_ns);
}

void time_format_rfc3339(uint64_t ns, char *buf, size_t len)
{
	time_t sec = (time_t)(ns / 1000000000ULL);
	struct tm tm;
	char base[32];

	gmtime_r(&sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09lluZ", base, (unsigned long long)(ns % 1000000000ULL));
}

const char *event_type_name(uint32_t type)
{
	switch (type) {
	case CAELUM_EV_BIND_DENIED:
		return "bind_denied";
	case CAELUM_EV_DEVICE_DENIED:
		return "device_denied";
	case CAELUM_EV_TASK_BUDGET:
		return "task_budget_exceeded";
	case CAELUM_EV_DB_DENIED:
		return "db_connect_denied";
	case CAELUM_EV_DB_LIMIT:
		return "db_conn_limit";
	case CAELUM_EV_BW_EXCEEDED:
		return "bandwidth_exceeded";
	}
	return "unknown";
}

static uint64_t event_id(struct json_object *e)
{
	struct json_object *id;

	return json_object_object_get_ex(e, "id", &id) ? (uint64_t)json_object_get_int64(id) : 0;
}

/* Keep event e, serialized as text (its JSON, as journaled). */
static void window_push(struct events *ev, struct json_object *e, const char *text)
{
	size_t idx;
	char *copy = strdup(text);

	if (!copy)
		return; /* the journal has it; queries will miss it */
	if (ev->count == EVENTS_WINDOW) {
		free(ev->window[ev->head].text);
		ev->window[ev->head].text = NULL;
		ev->head = (ev->head + 1) % EVENTS_WINDOW;
		ev->count--;
	}
	idx = (ev->head + ev->count) % EVENTS_WINDOW;
	ev->window[idx].id = event_id(e);
	ev->window[idx].text = copy;
	ev->count++;
}

static void count_event(struct events *ev, struct json_object *e, bool replay);

/* Reload the newest events so that queries and ids continue across restarts. */
static int replay_line(const char *line, void *ctx)
{
	struct events *ev = ctx;
	struct json_object *e = json_tokener_parse(line);
	uint64_t id;

	if (!e || !json_object_is_type(e, json_type_object)) {
		json_object_put(e);
		return 0;
	}
	id = event_id(e);
	if (id > ev->c.last_id)
		ev->c.last_id = id;
	count_event(ev, e, true);
	window_push(ev, e, line);
	json_object_put(e);
	return 0;
}

int events_open(struct events **out, const struct events_opts *opts)
{
	struct journal_opts jo = {
		.dir = opts->state_dir,
		.name = JOURNAL_NAME,
		.max_bytes = opts->journal_max_bytes,
		.keep = opts->journal_keep,
	};
	struct events *ev = calloc(1, sizeof(*ev));
	int err;

	if (!ev)
		return -ENOMEM;
	snprintf(ev->host, sizeof(ev->host), "%s", opts->host);
	snprintf(ev->state_dir, sizeof(ev->state_dir), "%s", opts->state_dir);
	ev->keep = opts->journal_keep;
	ev->name_of = opts->name_of;
	ev->dev_name = opts->dev_name;
	ev->db_name = opts->db_name;
	ev->name_ctx = opts->name_ctx;
	err = journal_read(opts->state_dir, JOURNAL_NAME, opts->journal_keep, replay_line, ev);
	if (err && err != -ENOENT)
		p_warn("failed to replay journal in '%s': %s; continuing with what was read",
		       opts->state_dir, strerror(-err));
	err = journal_open(&ev->journal, &jo);
	if (err) {
		p_err("failed to open event journal in '%s': %s", opts->state_dir, strerror(-err));
		events_close(ev);
		return err;
	}
	*out = ev;
	return 0;
}

void events_close(struct events *ev)
{
	if (!ev)
		return;
	for (size_t i = 0; i < ev->count; i++)
		free(ev->window[(ev->head + i) % EVENTS_WINDOW].text);
	journal_close(ev->journal);
	free(ev);
}

struct json_object *event_new(struct events *ev, const char *type, const char *action)
{
	struct json_object *e = json_object_new_object();
	char ts[64];

	time_format_rfc3339(time_now_ns(), ts, sizeof(ts));
	json_object_object_add(e, "time", json_object_new_string(ts));
	json_object_object_add(e, "host", json_object_new_string(ev->host));
	json_object_object_add(e, "type", json_object_new_string(type));
	json_object_object_add(e, "action", json_object_new_string(action));
	return e;
}

/* Every event carries every field of the documented shape, null when not applicable. */
static void event_complete(struct json_object *e)
{
	static const char *const fields[] = { "service", "pid",	   "comm",  "cgroup_id", "port",
					      "proto",	 "family", "owner", "count",	 NULL };
	struct json_object *v;

	for (size_t i = 0; fields[i]; i++)
		if (!json_object_object_get_ex(e, fields[i], &v))
			json_object_object_add(e, fields[i], NULL);
	if (json_object_object_get_ex(e, "count", &v) && !v)
		json_object_object_add(e, "count", json_object_new_int(1));
}

static const char *str_field(struct json_object *e, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(e, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

/* The minute (since the epoch) of an event's RFC 3339 "time"; 0 when it has none. */
static uint64_t event_minute(struct json_object *e)
{
	const char *t = str_field(e, "time");
	struct tm tm = {};
	const char *end;

	if (!t || !(end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)))
		return 0;
	return (uint64_t)timegm(&tm) / 60;
}

/* A violation into its minute's bucket (by the event's own time). */
static void count_minute(struct events *ev, const char *type, uint64_t minute, uint64_t n)
{
	for (size_t i = 0; minute && i < N_VIOLATION_TYPES; i++) {
		struct minute *m = &ev->minutes[minute % TIMELINE_MINUTES];

		if (strcmp(type, violation_types[i]))
			continue;
		if (m->minute > minute)
			return; /* older than what the slot holds now */
		if (m->minute != minute) {
			memset(m, 0, sizeof(*m));
			m->minute = minute;
		}
		m->n[i] += n;
	}
}

/* Per (type, action) totals (since start) and the per-minute violation series (from the
 * journal too: replay=true counts only the series). */
static void count_event(struct events *ev, struct json_object *e, bool replay)
{
	const char *type = str_field(e, "type"), *action = str_field(e, "action");
	struct json_object *v;
	uint64_t n = 1;
	size_t i;

	if (!type || !action)
		return;
	if (json_object_object_get_ex(e, "count", &v) && json_object_get_int64(v) > 0)
		n = (uint64_t)json_object_get_int64(v);
	if (!strcmp(action, "denied") || !strcmp(action, "audited"))
		count_minute(ev, type, event_minute(e), n);
	if (replay)
		return;
	for (i = 0; i < ev->n_types; i++)
		if (!strcmp(ev->types[i].type, type) && !strcmp(ev->types[i].action, action))
			break;
	if (i == ev->n_types && ev->n_types < EVENTS_MAX_TYPES) {
		snprintf(ev->types[i].type, sizeof(ev->types[i].type), "%s", type);
		snprintf(ev->types[i].action, sizeof(ev->types[i].action), "%s", action);
		ev->n_types++;
	}
	if (i < ev->n_types) {
		ev->types[i].events++;
		ev->types[i].occurrences += n;
	}
}

size_t events_type_counts(const struct events *ev, const struct events_typecount **out)
{
	*out = ev->types;
	return ev->n_types;
}

struct json_object *events_timeline(const struct events *ev, unsigned int minutes)
{
	uint64_t now = time_now_ns() / 60000000000ULL, first;
	struct json_object *o = json_object_new_object(), *series = json_object_new_object();
	struct json_object *t = json_object_new_array();
	char ts[40];

	if (minutes < 1 || minutes > TIMELINE_MINUTES)
		minutes = TIMELINE_MINUTES;
	first = now - minutes + 1;
	for (uint64_t m = first; m <= now; m++) {
		time_format_rfc3339(m * 60000000000ULL, ts, sizeof(ts));
		json_object_array_add(t, json_object_new_string(ts));
	}
	for (size_t i = 0; i < N_VIOLATION_TYPES; i++) {
		struct json_object *a = json_object_new_array();

		for (uint64_t m = first; m <= now; m++) {
			const struct minute *b = &ev->minutes[m % TIMELINE_MINUTES];

			json_object_array_add(a,
					      json_object_new_uint64(b->minute == m ? b->n[i] : 0));
		}
		json_object_object_add(series, violation_types[i], a);
	}
	json_object_object_add(o, "step_s", json_object_new_int(60));
	json_object_object_add(o, "minutes", t);
	json_object_object_add(o, "series", series);
	return o;
}

void events_emit(struct events *ev, struct json_object *e)
{
	const char *line;
	int err;

	json_object_object_add(e, "id", json_object_new_int64((int64_t)++ev->c.last_id));
	event_complete(e);
	line = json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
	err = journal_append(ev->journal, line);
	if (err) {
		ev->c.journal_errors++;
		p_warn("failed to journal event %llu: %s", (unsigned long long)ev->c.last_id,
		       strerror(-err));
	}
	ev->c.emitted++;
	count_event(ev, e, false);
	window_push(ev, e, line);
	for (int i = 0; i < MAX_SUBS; i++)
		if (ev->subs[i].id)
			ev->subs[i].fn(ev->subs[i].ctx, e);
	json_object_put(e);
}

static const char *action_name(uint32_t action)
{
	switch (action) {
	case CAELUM_ACT_DENIED:
		return "denied";
	case CAELUM_ACT_AUDITED:
		return "audited";
	}
	return "unknown";
}

static const char *reason_name(uint8_t reason)
{
	switch (reason) {
	case CAELUM_REASON_RESERVED:
		return "reserved";
	case CAELUM_REASON_MANAGED:
		return "managed_range";
	case CAELUM_REASON_ASSIGNED:
		return "assigned_to_other";
	case CAELUM_REASON_UNASSIGNED:
		return "unassigned";
	case CAELUM_REASON_UNDECLARED:
		return "undeclared";
	case CAELUM_REASON_UNMANAGED:
		return "unmanaged";
	case CAELUM_REASON_CONN_LIMIT:
		return "max_connections";
	case CAELUM_REASON_BW_RATE:
		return "rate";
	}
	return NULL;
}

static struct json_object *name_or_null(struct events *ev, uint64_t cgid)
{
	const char *name = cgid != CAELUM_CGID_NONE ? ev->name_of(ev->name_ctx, cgid) : NULL;

	return name ? json_object_new_string(name) : NULL;
}

static void add_bind(struct json_object *e, const struct caelum_ev_bind *b)
{
	char buf[INET6_ADDRSTRLEN] = "";

	json_object_object_add(e, "port", json_object_new_int(b->port));
	json_object_object_add(e, "proto", json_object_new_string(proto_name(b->proto)));
	json_object_object_add(e, "family",
			       json_object_new_string(b->family == AF_INET6 ? "ipv6" : "ipv4"));
	inet_ntop(b->family == AF_INET6 ? AF_INET6 : AF_INET, b->addr, buf, sizeof(buf));
	json_object_object_add(e, "addr", json_object_new_string(buf));
}

static void add_dev(struct events *ev, struct json_object *e, const struct caelum_ev_dev *d)
{
	char num[32], acc[4] = "", *a = acc;
	const char *path = ev->dev_name ? ev->dev_name(ev->name_ctx, d->major, d->minor) : NULL;

	snprintf(num, sizeof(num), "%u:%u", d->major, d->minor);
	json_object_object_add(e, "device", json_object_new_string(num));
	json_object_object_add(e, "device_path", path ? json_object_new_string(path) : NULL);
	if (d->access & CAELUM_DEV_ACC_READ)
		*a++ = 'r';
	if (d->access & CAELUM_DEV_ACC_WRITE)
		*a++ = 'w';
	if (d->access & CAELUM_DEV_ACC_MKNOD)
		*a++ = 'm';
	json_object_object_add(e, "access", json_object_new_string(acc));
}

static void add_conn(struct events *ev, struct json_object *e, const struct caelum_ev_conn *c)
{
	static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };
	const char *db = ev->db_name ? ev->db_name(ev->name_ctx, c->db_id) : NULL;
	char ip[INET6_ADDRSTRLEN] = "", addr[INET6_ADDRSTRLEN + 8];

	/* IPv4 targets are kept IPv4-mapped in the kernel key: show them as IPv4. */
	if (!memcmp(c->addr, mapped, sizeof(mapped))) {
		inet_ntop(AF_INET, c->addr + 12, ip, sizeof(ip));
		snprintf(addr, sizeof(addr), "%s:%u", ip, c->port);
	} else {
		inet_ntop(AF_INET6, c->addr, ip, sizeof(ip));
		snprintf(addr, sizeof(addr), "[%s]:%u", ip, c->port);
	}
	json_object_object_add(e, "database", db ? json_object_new_string(db) : NULL);
	json_object_object_add(e, "address", json_object_new_string(addr));
	json_object_object_add(e, "port", json_object_new_int(c->port));
	json_object_object_add(e, "family",
			       json_object_new_string(c->family == AF_INET6 ? "ipv6" : "ipv4"));
	json_object_object_add(
		e, "operation",
		json_object_new_string(c->op == CAELUM_CONN_OP_SENDMSG ? "sendmsg" : "connect"));
	if (c->max) {
		json_object_object_add(e, "connections", json_object_new_int64(c->count));
		json_object_object_add(e, "max_connections", json_object_new_int64(c->max));
	}
}

static void add_task(struct json_object *e, const struct caelum_ev_task *t)
{
	json_object_object_add(e, "live_tasks", json_object_new_uint64(t->live));
	json_object_object_add(e, "budget", json_object_new_uint64(t->budget));
	json_object_object_add(e, "killed", json_object_new_boolean(t->killed != 0));
}

/* Bandwidth (include/caelum/bandwidth.h): direction, rate, what was done to the packets. */
static void add_bw(struct json_object *e, const struct caelum_ev_bw *b)
{
	static const char *const verdicts[] = { "pass", "signalled", "dropped" };

	json_object_object_add(
		e, "direction",
		json_object_new_string(b->dir == CAELUM_BW_INGRESS ? "ingress" : "egress"));
	json_object_object_add(e, "rate_mbit", mbit_json((int64_t)(b->rate_Bps / 125)));
	json_object_object_add(e, "proto",
			       json_object_new_string(b->proto ? proto_name(b->proto) : "other"));
	json_object_object_add(e, "packet_bytes", json_object_new_int64(b->len));
	json_object_object_add(e, "backlog_ns", json_object_new_uint64(b->backlog_ns));
	json_object_object_add(
		e, "verdict",
		json_object_new_string(b->verdict < 3 ? verdicts[b->verdict] : "unknown"));
}

static bool is_canary(const struct events *ev, const struct caelum_event *k)
{
	for (int i = 0; i < 2; i++)
		if (ev->canary[i] != CAELUM_CGID_NONE &&
		    (k->cgroup_id == ev->canary[i] || k->svc_cgid == ev->canary[i]))
			return true;
	return false;
}

int events_from_kernel(struct events *ev, const void *data, size_t len)
{
	const struct caelum_event *k = data;
	const char *reason;
	struct json_object *e;
	char ts[64], comm[CAELUM_COMM_LEN + 1];

	ev->c.kernel_records++;
	if (len < sizeof(*k))
		return -EINVAL;
	/* caelumd's own self-verification probes: their outcome is the verification result,
	 * not an event about the host. Counted, not emitted. */
	if (is_canary(ev, k)) {
		ev->c.verification_records++;
		return 0;
	}
	e = event_new(ev, event_type_name(k->type), action_name(k->action));
	time_format_rfc3339(time_mono_to_real(k->time_ns), ts, sizeof(ts));
	json_object_object_add(e, "time", json_object_new_string(ts));
	memcpy(comm, k->comm, CAELUM_COMM_LEN);
	comm[CAELUM_COMM_LEN] = '\0';
	json_object_object_add(e, "service", name_or_null(ev, k->svc_cgid));
	json_object_object_add(e, "pid", json_object_new_int((int)k->pid));
	json_object_object_add(e, "comm", json_object_new_string(comm));
	json_object_object_add(e, "cgroup_id", json_object_new_uint64(k->cgroup_id));
	json_object_object_add(e, "owner", name_or_null(ev, k->owner_cgid));
	json_object_object_add(e, "count", json_object_new_int64(k->count));
	reason = reason_name(k->reason);
	if (reason)
		json_object_object_add(e, "reason", json_object_new_string(reason));
	if (k->type == CAELUM_EV_BIND_DENIED)
		add_bind(e, &k->bind);
	else if (k->type == CAELUM_EV_DEVICE_DENIED)
		add_dev(ev, e, &k->dev);
	else if (k->type == CAELUM_EV_TASK_BUDGET)
		add_task(e, &k->task);
	else if (k->type == CAELUM_EV_DB_DENIED || k->type == CAELUM_EV_DB_LIMIT)
		add_conn(ev, e, &k->conn);
	else if (k->type == CAELUM_EV_BW_EXCEEDED)
		add_bw(e, &k->bw);
	json_object_object_add(e, "followup",
			       json_object_new_boolean(!!(k->flags & CAELUM_EVF_FOLLOWUP)));
	if (k->flags & CAELUM_EVF_UNAGGREGATED)
		json_object_object_add(e, "unaggregated", json_object_new_boolean(1));
	events_emit(ev, e);
	return 0;
}

static bool str_field_is(struct json_object *e, const char *key, const char *want)
{
	struct json_object *v;

	return json_object_object_get_ex(e, key, &v) && json_object_is_type(v, json_type_string) &&
	       !strcmp(json_object_get_string(v), want);
}

bool event_matches(struct json_object *e, const struct event_filter *f)
{
	if (f->type && !str_field_is(e, "type", f->type))
		return false;
	if (f->service && !str_field_is(e, "service", f->service) &&
	    !str_field_is(e, "owner", f->service))
		return false;
	if (f->host && !str_field_is(e, "host", f->host))
		return false;
	return event_id(e) > f->since_id;
}

/* A necessary condition for text to match f, without parsing it: the serialized event
 * holds "key":"value" for each string the filter names (json-c's plain form, no spaces). */
static bool text_may_match(const char *text, const char *key, const char *want)
{
	char needle[320];

	if (!want)
		return true;
	snprintf(needle, sizeof(needle), "\"%s\":\"%s\"", key, want);
	return strstr(text, needle) != NULL;
}

struct json_object *events_query(struct events *ev, const struct event_filter *f)
{
	struct json_object *arr = json_object_new_array(), **hits;
	size_t n = 0;

	hits = calloc(ev->count + 1, sizeof(*hits));
	if (!hits)
		return arr;
	/* Newest first, so that a limit stops early; ids grow along the window. */
	for (size_t i = ev->count; i-- > 0 && (!f->limit || n < f->limit);) {
		size_t idx = (ev->head + i) % EVENTS_WINDOW;
		const char *text = ev->window[idx].text;
		struct json_object *e;

		if (ev->window[idx].id <= f->since_id)
			break;
		if (!text_may_match(text, "type", f->type) ||
		    !text_may_match(text, "host", f->host) ||
		    (f->service && !text_may_match(text, "service", f->service) &&
		     !text_may_match(text, "owner", f->service)))
			continue;
		e = json_tokener_parse(text);
		if (e && event_matches(e, f))
			hits[n++] = e;
		else
			json_object_put(e);
	}
	while (n)
		json_object_array_add(arr, hits[--n]);
	free(hits);
	return arr;
}

void events_set_canaries(struct events *ev, uint64_t cgid1, uint64_t cgid2)
{
	ev->canary[0] = cgid1;
	ev->canary[1] = cgid2;
}

int events_subscribe(struct events *ev, events_sub_fn fn, void *ctx)
{
	for (int i = 0; i < MAX_SUBS; i++) {
		if (ev->subs[i].id)
			continue;
		ev->subs[i] = (struct sub){ .id = ++ev->next_sub, .fn = fn, .ctx = ctx };
		return ev->subs[i].id;
	}
	return -ENOSPC;
}

void events_unsubscribe(struct events *ev, int id)
{
	for (int i = 0; i < MAX_SUBS; i++)
		if (ev->subs[i].id == id)
			memset(&ev->subs[i], 0, sizeof(ev->subs[i]));
}

void events_count_drop(struct events *ev, uint64_t n)
{
	ev->c.subscriber_drops += n;
}

void events_get_counters(const struct events *ev, struct events_counters *c)
{
	*c = ev->c;
}

struct json_object *events_journal_stats(const struct events *ev)
{
	struct json_object *o = json_object_new_object();
	struct journal_stats st;

	journal_get_stats(ev->journal, &st);
	char path[sizeof(ev->state_dir) + sizeof(JOURNAL_NAME) + 1];

	snprintf(path, sizeof(path), "%s/%s", ev->state_dir, JOURNAL_NAME);
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "bytes", json_object_new_uint64(st.bytes));
	json_object_object_add(o, "lines_written", json_object_new_uint64(st.lines_written));
	json_object_object_add(o, "rotations", json_object_new_uint64(st.rotations));
	json_object_object_add(o, "write_errors", json_object_new_uint64(st.write_errors));
	return o;
}

const char *events_host(const struct events *ev)
{
	return ev->host;
}

size_t events_ingest(struct events *ev, const char *host, struct json_object *arr, size_t *skipped)
{
	uint64_t *last = NULL;
	size_t stored = 0;

	*skipped = 0;
	for (size_t i = 0; i < ev->n_peers; i++)
		if (!strcmp(ev->peers[i].host, host))
			last = &ev->peers[i].last_origin_id;
	if (!last) {
		size_t i = ev->n_peers < EVENTS_MAX_PEER_HOSTS ? ev->n_peers++ : 0;

		/* Past the table's size the first slot is reused: dedup is best effort then. */
		snprintf(ev->peers[i].host, sizeof(ev->peers[i].host), "%s", host);
		ev->peers[i].last_origin_id = 0;
		last = &ev->peers[i].last_origin_id;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *in = json_object_array_get_idx(arr, i), *e, *v;
		uint64_t origin = 0;

		if (json_object_object_get_ex(in, "id", &v) && v)
			origin = (uint64_t)json_object_get_int64(v);
		if (origin && origin <= *last) {
			(*skipped)++;
			continue;
		}
		e = json_object_new_object();
		json_object_object_foreach (in, key, val) {
			if (!strcmp(key, "id") || !strcmp(key, "host"))
				continue;
			json_object_object_add(e, key, json_object_get(val));
		}
		json_object_object_add(e, "host", json_object_new_string(host));
		json_object_object_add(e, "origin_id",
				       origin ? json_object_new_uint64(origin) : NULL);
		if (origin)
			*last = origin;
		events_emit(ev, e);
		stored++;
	}
	return stored;
}
