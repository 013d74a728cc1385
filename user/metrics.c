// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api.h"
#include "daemon.h"
#include "handlers.h"
#include "http.h"
#include "connlimit.h"
#include "mcp.h"
#include "metrics.h"
#include "peers.h"
#include "version.h"

struct out {
	FILE *f;
	char last_family[96];
};

/* "# HELP" and "# TYPE" once per family. */
static void family(struct out *o, const char *name, const char *type, const char *help)
{
	if (!strcmp(o->last_family, name))
		return;
	snprintf(o->last_family, sizeof(o->last_family), "%s", name);
	fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escaped as the format wants: \\, \" and \n. */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f), fputc(*v, f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* name{k1="v1",k2="v2"} value; labels as NULL-terminated key, value pairs. */
static void sample(struct out *o, const char *name, double value, ...)
{
	const char *k, *v;
	bool first = true;
	va_list ap;

	fputs(name, o->f);
	va_start(ap, value);
	while ((k = va_arg(ap, const char *))) {
		v = va_arg(ap, const char *);
		fprintf(o->f, "%s%s=\"", first ? "{" : ",", k);
		label_value(o->f, v ? v : "");
		fputc('"', o->f);
		first = false;
	}
	va_end(ap);
	if (!first)
		fputc('}', o->f);
	if (value == (double)(long long)value)
		fprintf(o->f, " %lld\n", (long long)value);
	else
		fprintf(o->f, " %.9g\n", value);
}

static struct json_object *call(struct daemon *d, const char *method)
{
	struct caller who = { .uid = (uid_t)-1, .transport = "metrics" };
	struct json_object *res = NULL;
	struct herr err;

	if (handlers_call(&d->hctx, method, NULL, &who, &res, &err, NULL)) {
		json_object_put(err.errors);
		return NULL;
	}
	return res;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static double num(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);

	return v ? json_object_get_double(v) : 0;
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static const char *component_of_type(const char *type)
{
	if (!strcmp(type, "bind_denied"))
		return "ports";
	if (!strcmp(type, "device_denied"))
		return "devices";
	if (!strcmp(type, "task_budget_exceeded"))
		return "tasks";
	if (!strncmp(type, "db_", 3))
		return "databases";
	return NULL;
}

static void events_metrics(struct out *o, struct daemon *d, struct json_object *status)
{
	static const char *const comps[] = { "ports", "devices", "tasks", "databases" };
	const struct events_typecount *tc;
	struct json_object *ev = get(status, "events"), *lost = get(ev, "lost");
	size_t n = events_type_counts(d->ev, &tc);
	double denials[4] = {};

	family(o, "caelum_events_total", "counter", "Events emitted, by type and action.");
	for (size_t i = 0; i < n; i++)
		sample(o, "caelum_events_total", (double)tc[i].events, "type", tc[i].type, "action",
		       tc[i].action, NULL);
	family(o, "caelum_denials_total", "counter",
	       "Kernel denials (occurrences, aggregated records expanded), by component.");
	for (size_t i = 0; i < n; i++) {
		const char *c = component_of_type(tc[i].type);

		for (size_t j = 0; c && j < 4; j++)
			if (!strcmp(c, comps[j]) && !strcmp(tc[i].action, "denied"))
				denials[j] += (double)tc[i].occurrences;
	}
	for (size_t j = 0; j < 4; j++)
		sample(o, "caelum_denials_total", denials[j], "component", comps[j], NULL);
	family(o, "caelum_events_lost_total", "counter",
	       "Events lost, by the stage that lost them and why.");
	sample(o, "caelum_events_lost_total", num(lost, "kernel_ringbuf_first"), "stage", "kernel",
	       "reason", "ringbuf_full", NULL);
	sample(o, "caelum_events_lost_total", num(lost, "kernel_ringbuf_followup"), "stage",
	       "kernel", "reason", "ringbuf_full_followup", NULL);
	sample(o, "caelum_events_lost_total", num(lost, "journal"), "stage", "journal", "reason",
	       "write_error", NULL);
	sample(o, "caelum_events_lost_total", num(lost, "subscribers"), "stage", "socket",
	       "reason", "slow_consumer", NULL);
	sample(o, "caelum_events_lost_total", (double)api_sse_drops(d), "stage", "sse", "reason",
	       "slow_consumer", NULL);
	{
		uint64_t sent, dropped, refused;

		peers_totals(d->peers, &sent, &dropped, &refused);
		sample(o, "caelum_events_lost_total", (double)dropped, "stage", "peer", "reason",
		       "queue_full", NULL);
		sample(o, "caelum_events_lost_total", (double)refused, "stage", "peer", "reason",
		       "refused", NULL);
	}
	family(o, "caelum_kernel_records_total", "counter", "Ring-buffer records read.");
	sample(o, "caelum_kernel_records_total", num(ev, "kernel_records"), NULL);
	family(o, "caelum_events_folded_total", "counter",
	       "Kernel events folded into an aggregated follow-up.");
	sample(o, "caelum_events_folded_total", num(ev, "folded"), NULL);
}

static void program_metrics(struct out *o, struct json_object *comps)
{
	static const struct {
		const char *name, *key, *type, *help;
		double scale;
	} m[] = {
		{ "caelum_bpf_prog_run_time_seconds_total", "run_time_ns", "counter",
		  "Time spent in the program (kernel.bpf_stats_enabled).", 1e-9 },
		{ "caelum_bpf_prog_run_count_total", "run_cnt", "counter",
		  "Program runs (kernel.bpf_stats_enabled).", 1 },
	};

	family(o, "caelum_component_attached", "gauge",
	       "1 when every program of the component is attached (asked of the kernel).");
	for (size_t i = 0; i < json_object_array_length(comps); i++) {
		struct json_object *c = json_object_array_get_idx(comps, i);
		struct json_object *a = get(c, "attached");

		sample(o, "caelum_component_attached", a && json_object_get_boolean(a) ? 1 : 0,
		       "component", str(c, "name"), "mode", str(c, "mode"), NULL);
	}
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		family(o, m[k].name, m[k].type, m[k].help);
		for (size_t i = 0; i < json_object_array_length(comps); i++) {
			struct json_object *c = json_object_array_get_idx(comps, i);
			struct json_object *progs = get(c, "programs");

			for (size_t j = 0; progs && j < json_object_array_length(progs); j++) {
				struct json_object *p = json_object_array_get_idx(progs, j);

				if (get(p, m[k].key))
					sample(o, m[k].name, num(p, m[k].key) * m[k].scale,
					       "component", str(c, "name"), "program", str(p, "name"),
					       NULL);
			}
		}
	}
}

static void map_metrics(struct out *o, struct json_object *maps)
{
	family(o, "caelum_bpf_map_entries", "gauge", "Entries in a BPF map.");
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		struct json_object *m = json_object_array_get_idx(maps, i);

		if (get(m, "entries"))
			sample(o, "caelum_bpf_map_entries", num(m, "entries"), "map", str(m, "name"),
			       NULL);
	}
	family(o, "caelum_bpf_map_capacity", "gauge", "max_entries of a BPF map.");
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		struct json_object *m = json_object_array_get_idx(maps, i);

		sample(o, "caelum_bpf_map_capacity", num(m, "max_entries"), "map", str(m, "name"),
		       NULL);
	}
}

static void verify_metrics(struct out *o, struct json_object *v)
{
	struct json_object *comps = get(v, "components");

	family(o, "caelum_verification_ok", "gauge",
	       "Last self-verification per component: 1 passed, 0 failed.");
	if (!comps)
		return;
	json_object_object_foreach(comps, name, c) {
		struct json_object *ok = get(c, "ok");

		sample(o, "caelum_verification_ok", ok && json_object_get_boolean(ok) ? 1 : 0,
		       "component", name, NULL);
	}
}

static void registry_metrics(struct out *o, struct json_object *status, struct json_object *svcs)
{
	struct json_object *reg = get(status, "registry"), *pol = get(status, "policy");
	double running = 0, stopped = 0;

	family(o, "caelum_reservations", "gauge", "Port reservations in the registry.");
	sample(o, "caelum_reservations", num(reg, "reservations"), NULL);
	family(o, "caelum_managed_ports", "gauge", "Ports in the managed ranges.");
	sample(o, "caelum_managed_ports", num(pol, "managed"), NULL);
	family(o, "caelum_registry_revision", "gauge", "Registry revision pushed to the kernel.");
	sample(o, "caelum_registry_revision", num(pol, "registry_revision"), NULL);
	for (size_t i = 0; svcs && i < json_object_array_length(svcs); i++) {
		const char *st = str(json_object_array_get_idx(svcs, i), "state");

		if (st && !strcmp(st, "running"))
			running++;
		else
			stopped++;
	}
	family(o, "caelum_services", "gauge", "Registered services, by state.");
	sample(o, "caelum_services", running, "state", "running", NULL);
	sample(o, "caelum_services", stopped, "state", "stopped", NULL);
}

static void resource_metrics(struct out *o, struct json_object *res)
{
	static const char *const dims[] = { "cpus", "memory_mb", "gpus" };
	struct json_object *dd = get(res, "dimensions"), *svcs = get(res, "services");

	family(o, "caelum_resource_capacity", "gauge", "Host capacity, by dimension.");
	for (size_t i = 0; i < 3; i++)
		sample(o, "caelum_resource_capacity", num(get(dd, dims[i]), "capacity"), "dimension",
		       dims[i], NULL);
	family(o, "caelum_resource_allocated", "gauge", "Reserved by services, by dimension.");
	for (size_t i = 0; i < 3; i++)
		sample(o, "caelum_resource_allocated", num(get(dd, dims[i]), "allocated"),
		       "dimension", dims[i], NULL);
	family(o, "caelum_resource_reservation", "gauge",
	       "A service's reservation, by dimension.");
	for (size_t i = 0; svcs && i < json_object_array_length(svcs); i++) {
		struct json_object *s = json_object_array_get_idx(svcs, i);
		struct json_object *r = get(s, "reservation");

		json_object_object_foreach(r, dim, v)
			if (v && (json_object_is_type(v, json_type_int) ||
				  json_object_is_type(v, json_type_double)))
				sample(o, "caelum_resource_reservation", json_object_get_double(v),
				       "service", str(s, "name"), "dimension", dim, NULL);
	}
	family(o, "caelum_resource_usage", "gauge",
	       "A service's measured use: cpus over the CPU window, live tasks.");
	for (size_t i = 0; svcs && i < json_object_array_length(svcs); i++) {
		struct json_object *s = json_object_array_get_idx(svcs, i);

		if (get(s, "cpu_usage"))
			sample(o, "caelum_resource_usage", num(s, "cpu_usage"), "service",
			       str(s, "name"), "dimension", "cpus", NULL);
		if (get(s, "live_tasks"))
			sample(o, "caelum_resource_usage", num(s, "live_tasks"), "service",
			       str(s, "name"), "dimension", "tasks", NULL);
	}
}

static void peer_metrics(struct out *o, struct json_object *peers)
{
	static const char *const outcomes[] = { "sent", "dropped", "refused" };

	family(o, "caelum_peer_events_total", "counter",
	       "Events for an MCP peer: delivered, dropped (queue full), refused by the peer.");
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);

		for (size_t k = 0; k < 3; k++)
			sample(o, "caelum_peer_events_total", num(p, outcomes[k]), "peer",
			       str(p, "url"), "outcome", outcomes[k], NULL);
	}
	family(o, "caelum_peer_queue", "gauge", "Events waiting for an MCP peer.");
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);

		sample(o, "caelum_peer_queue", num(p, "queued"), "peer", str(p, "url"), NULL);
	}
	family(o, "caelum_peer_up", "gauge", "1 when the MCP peer's session is ready.");
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);
		const char *st = str(p, "state");

		sample(o, "caelum_peer_up", st && !strcmp(st, "ready") ? 1 : 0, "peer",
		       str(p, "url"), NULL);
	}
}

static void http_metrics(struct out *o, struct daemon *d)
{
	static const char *const classes[] = { "", "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct http_stats st;

	if (!d->http)
		return;
	http_get_stats(d->http, &st);
	family(o, "caelum_http_requests_total", "counter", "HTTP requests, by listener.");
	sample(o, "caelum_http_requests_total", (double)st.requests[HTTP_DASH], "listener",
	       "dashboard", NULL);
	sample(o, "caelum_http_requests_total", (double)st.requests[HTTP_MCP], "listener", "mcp",
	       NULL);
	family(o, "caelum_http_responses_total", "counter", "HTTP responses, by status class.");
	for (size_t i = 1; i < 6; i++)
		sample(o, "caelum_http_responses_total", (double)st.responses[i], "code", classes[i],
		       NULL);
	family(o, "caelum_http_refused_total", "counter",
	       "Requests refused by the access rules, by reason.");
	sample(o, "caelum_http_refused_total", (double)st.denied_auth, "reason", "unauthorized",
	       NULL);
	sample(o, "caelum_http_refused_total", (double)st.denied_origin, "reason",
	       "forbidden_origin_or_host", NULL);
	family(o, "caelum_http_connections_refused_total", "counter",
	       "Connections closed as soon as accepted, by the limit they would have passed.");
	for (int i = 0; i < CL_REASONS; i++)
		sample(o, "caelum_http_connections_refused_total", (double)st.refused[i], "limit",
		       connlimit_reason_name(i), NULL);
	family(o, "caelum_http_body_incomplete_total", "counter",
	       "Connections closed before a request's body was in (timeout, slow or gone).");
	sample(o, "caelum_http_body_incomplete_total", (double)st.body_incomplete, NULL);
	family(o, "caelum_http_connection_limit", "gauge",
	       "Connection limits in force: all clients, unauthenticated, per address.");
	sample(o, "caelum_http_connection_limit", (double)st.conn_slots, "limit", "connections",
	       NULL);
	sample(o, "caelum_http_connection_limit", (double)st.conn_unauth_max, "limit",
	       "unauthenticated", NULL);
	sample(o, "caelum_http_connection_limit", (double)st.conn_per_addr_max, "limit",
	       "per_address", NULL);
	family(o, "caelum_process_fd_limit", "gauge", "The soft RLIMIT_NOFILE of caelumd.");
	sample(o, "caelum_process_fd_limit", (double)st.fd_limit, NULL);
	family(o, "caelum_http_connections", "gauge", "Open HTTP connections, by kind.");
	sample(o, "caelum_http_connections", (double)st.connections, "kind", "all", NULL);
	sample(o, "caelum_http_connections", (double)st.streams, "kind", "event_stream", NULL);
	sample(o, "caelum_http_connections", (double)st.websockets, "kind", "websocket", NULL);
}

static void mcp_metrics(struct out *o, struct daemon *d)
{
	struct mcp_stats st;

	if (!d->mcp)
		return;
	mcp_get_stats(d->mcp, &st);
	family(o, "caelum_mcp_sessions", "gauge", "Open MCP sessions (every transport and era).");
	sample(o, "caelum_mcp_sessions", (double)st.sessions, NULL);
	family(o, "caelum_mcp_sessions_evicted_total", "counter",
	       "Idle legacy Streamable HTTP sessions evicted to make room, by reason.");
	sample(o, "caelum_mcp_sessions_evicted_total", (double)st.evicted_lru, "reason", "lru",
	       NULL);
	sample(o, "caelum_mcp_sessions_evicted_total", (double)st.evicted_per_client, "reason",
	       "per_client", NULL);
	family(o, "caelum_mcp_sessions_refused_total", "counter",
	       "New MCP sessions refused: every session was in use.");
	sample(o, "caelum_mcp_sessions_refused_total", (double)st.refused, NULL);
	family(o, "caelum_mcp_requests_total", "counter", "MCP requests by protocol era.");
	sample(o, "caelum_mcp_requests_total", (double)st.modern_requests, "era", "2026-07-28",
	       NULL);
	family(o, "caelum_mcp_era_refused_total", "counter",
	       "MCP messages refused by their era's rules (envelope, version, headers).");
	sample(o, "caelum_mcp_era_refused_total", (double)st.era_refused, NULL);
	family(o, "caelum_mcp_listens_total", "counter", "subscriptions/listen streams opened.");
	sample(o, "caelum_mcp_listens_total", (double)st.listens_opened, NULL);
	family(o, "caelum_mcp_notifications_total", "counter",
	       "Server notifications, delivered or dropped.");
	sample(o, "caelum_mcp_notifications_total", (double)st.notes_sent, "outcome", "sent", NULL);
	sample(o, "caelum_mcp_notifications_total", (double)st.notes_dropped, "outcome", "dropped",
	       NULL);
}

int metrics_render(struct daemon *d, char **out, size_t *len)
{
	struct json_object *status = call(d, "status"), *res = call(d, "resources");
	struct json_object *svcs = call(d, "service.list");
	struct out o = {};
	int err = 0;

	*out = NULL;
	o.f = open_memstream(out, len);
	if (!o.f || !status) {
		err = -ENOMEM;
		goto out;
	}
	family(&o, "caelum_build_info", "gauge", "caelumd's version.");
	sample(&o, "caelum_build_info", 1, "version", CAELUM_VERSION, "host", d->cfg.host, NULL);
	family(&o, "caelum_uptime_seconds", "gauge", "Seconds since caelumd started.");
	sample(&o, "caelum_uptime_seconds", num(status, "uptime_s"), NULL);
	family(&o, "caelum_bpf_stats_enabled", "gauge",
	       "1 when kernel.bpf_stats_enabled is on (program run time is counted).");
	sample(&o, "caelum_bpf_stats_enabled",
	       json_object_get_boolean(get(status, "bpf_stats_enabled")) ? 1 : 0, NULL);
	events_metrics(&o, d, status);
	registry_metrics(&o, status, svcs);
	program_metrics(&o, get(status, "components"));
	map_metrics(&o, get(status, "maps"));
	verify_metrics(&o, get(status, "verification"));
	if (res)
		resource_metrics(&o, res);
	http_metrics(&o, d);
	mcp_metrics(&o, d);
	if (d->peers) {
		struct json_object *peers = peers_status_json(d->peers);

		peer_metrics(&o, peers);
		json_object_put(peers);
	}
out:
	if (o.f && fclose(o.f))
		err = -errno;
	json_object_put(status);
	json_object_put(res);
	json_object_put(svcs);
	if (err) {
		free(*out);
		*out = NULL;
	}
	return err;
}
