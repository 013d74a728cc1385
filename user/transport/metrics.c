// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "metrics.h"
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

/* Elements of an array; 0 for anything else (a document without that part). */
static size_t len_of(struct json_object *a)
{
	return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	return json_object_object_get_ex(o, key, &v) ? v : NULL;
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

/* Sum of key over the objects of arr. */
static double sum_of(struct json_object *arr, const char *key)
{
	double s = 0;

	for (size_t i = 0; arr && i < len_of(arr); i++)
		s += num(json_object_array_get_idx(arr, i), key);
	return s;
}

static void events_metrics(struct out *o, struct json_object *status)
{
	static const char *const comps[] = { "ports", "devices", "tasks", "databases" };
	struct json_object *ev = get(status, "events"), *lost = get(ev, "lost");
	struct json_object *types = get(ev, "types"), *http = get(status, "http");
	struct json_object *peers = get(get(http, "mcp"), "peers");
	size_t n = types && json_object_is_type(types, json_type_array) ? len_of(types) : 0;
	double denials[4] = {};

	family(o, "caelum_events_total", "counter", "Events emitted, by type and action.");
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(types, i);

		sample(o, "caelum_events_total", num(t, "events"), "type", str(t, "type"), "action",
		       str(t, "action"), NULL);
	}
	family(o, "caelum_denials_total", "counter",
	       "Kernel denials (occurrences, aggregated records expanded), by component.");
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(types, i);
		const char *c = str(t, "type") ? component_of_type(str(t, "type")) : NULL;
		const char *action = str(t, "action");

		for (size_t j = 0; c && action && j < 4; j++)
			if (!strcmp(c, comps[j]) && !strcmp(action, "denied"))
				denials[j] += num(t, "occurrences");
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
	sample(o, "caelum_events_lost_total", num(lost, "subscribers"), "stage", "socket", "reason",
	       "slow_consumer", NULL);
	sample(o, "caelum_events_lost_total", num(http, "stream_drops"), "stage", "sse", "reason",
	       "slow_consumer", NULL);
	sample(o, "caelum_events_lost_total", sum_of(peers, "dropped"), "stage", "peer", "reason",
	       "queue_full", NULL);
	sample(o, "caelum_events_lost_total", sum_of(peers, "refused"), "stage", "peer", "reason",
	       "refused", NULL);
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
	for (size_t i = 0; i < len_of(comps); i++) {
		struct json_object *c = json_object_array_get_idx(comps, i);
		struct json_object *a = get(c, "attached");

		sample(o, "caelum_component_attached", a && json_object_get_boolean(a) ? 1 : 0,
		       "component", str(c, "name"), "mode", str(c, "mode"), NULL);
	}
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		family(o, m[k].name, m[k].type, m[k].help);
		for (size_t i = 0; i < len_of(comps); i++) {
			struct json_object *c = json_object_array_get_idx(comps, i);
			struct json_object *progs = get(c, "programs");

			for (size_t j = 0; progs && j < len_of(progs); j++) {
				struct json_object *p = json_object_array_get_idx(progs, j);

				if (get(p, m[k].key))
					sample(o, m[k].name, num(p, m[k].key) * m[k].scale,
					       "component", str(c, "name"), "program",
					       str(p, "name"), NULL);
			}
		}
	}
}

static void map_metrics(struct out *o, struct json_object *maps)
{
	family(o, "caelum_bpf_map_entries", "gauge", "Entries in a BPF map.");
	for (size_t i = 0; i < len_of(maps); i++) {
		struct json_object *m = json_object_array_get_idx(maps, i);

		if (get(m, "entries"))
			sample(o, "caelum_bpf_map_entries", num(m, "entries"), "map",
			       str(m, "name"), NULL);
	}
	family(o, "caelum_bpf_map_capacity", "gauge", "max_entries of a BPF map.");
	for (size_t i = 0; i < len_of(maps); i++) {
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
	if (!comps || !json_object_is_type(comps, json_type_object))
		return;
	json_object_object_foreach (comps, name, c) {
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
	for (size_t i = 0; svcs && i < len_of(svcs); i++) {
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
		sample(o, "caelum_resource_capacity", num(get(dd, dims[i]), "capacity"),
		       "dimension", dims[i], NULL);
	family(o, "caelum_resource_allocated", "gauge", "Reserved by services, by dimension.");
	for (size_t i = 0; i < 3; i++)
		sample(o, "caelum_resource_allocated", num(get(dd, dims[i]), "allocated"),
		       "dimension", dims[i], NULL);
	family(o, "caelum_resource_reservation", "gauge", "A service's reservation, by dimension.");
	for (size_t i = 0; svcs && i < len_of(svcs); i++) {
		struct json_object *s = json_object_array_get_idx(svcs, i);
		struct json_object *r = get(s, "reservation");

		if (!r || !json_object_is_type(r, json_type_object))
			continue;
		json_object_object_foreach (r, dim, v)
			if (v && (json_object_is_type(v, json_type_int) ||
				  json_object_is_type(v, json_type_double)))
				sample(o, "caelum_resource_reservation", json_object_get_double(v),
				       "service", str(s, "name"), "dimension", dim, NULL);
	}
	family(o, "caelum_resource_usage", "gauge",
	       "A service's measured use: cpus over the CPU window, live tasks.");
	for (size_t i = 0; svcs && i < len_of(svcs); i++) {
		struct json_object *s = json_object_array_get_idx(svcs, i);

		if (get(s, "cpu_usage"))
			sample(o, "caelum_resource_usage", num(s, "cpu_usage"), "service",
			       str(s, "name"), "dimension", "cpus", NULL);
		if (get(s, "live_tasks"))
			sample(o, "caelum_resource_usage", num(s, "live_tasks"), "service",
			       str(s, "name"), "dimension", "tasks", NULL);
	}
}

/*
 * resources.services[].bandwidth (user/enforce/bandwidth.c): per service and direction, the
 * reservation and the rate over the last sample as gauges in bit/s, the kernel's counts
 * (cm_bw_count) as counters. Services without a bandwidth reservation have none.
 */
static void bandwidth_metrics(struct out *o, struct json_object *svcs)
{
	static const char *const dirs[] = { "egress", "ingress" };
	static const struct {
		const char *name, *key, *type, *help;
		double scale;
	} m[] = {
		{ "caelum_bandwidth_reserved_bits_per_second", "reserved_mbit", "gauge",
		  "A service's bandwidth reservation, by direction.", 1e6 },
		{ "caelum_bandwidth_measured_bits_per_second", "measured_mbit", "gauge",
		  "A service's measured rate over the last sample (passed bytes), by direction.",
		  1e6 },
		{ "caelum_bandwidth_bytes_total", "bytes", "counter",
		  "Bytes a service sent or received that passed its limit, by direction.", 1 },
		{ "caelum_bandwidth_packets_total", "packets", "counter",
		  "Packets a service sent or received that passed its limit, by direction.", 1 },
		{ "caelum_bandwidth_signalled_packets_total", "signalled", "counter",
		  "Packets passed with a congestion signal (ECN CE or CN), by direction.", 1 },
		{ "caelum_bandwidth_dropped_packets_total", "dropped", "counter",
		  "Packets dropped over the limit, by direction.", 1 },
		{ "caelum_bandwidth_dropped_bytes_total", "dropped_bytes", "counter",
		  "Bytes dropped over the limit, by direction.", 1 },
		{ "caelum_bandwidth_over_packets_total", "over", "counter",
		  "Audit mode: packets that would have been signalled or dropped, by direction.",
		  1 },
	};

	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		family(o, m[k].name, m[k].type, m[k].help);
		for (size_t i = 0; i < len_of(svcs); i++) {
			struct json_object *s = json_object_array_get_idx(svcs, i);
			struct json_object *bw = get(s, "bandwidth");

			for (size_t d = 0; bw && d < 2; d++) {
				struct json_object *v = get(get(bw, dirs[d]), m[k].key);

				/* null: not reserved in that direction, or no rate sampled yet */
				if (v && (json_object_is_type(v, json_type_int) ||
					  json_object_is_type(v, json_type_double)))
					sample(o, m[k].name, json_object_get_double(v) * m[k].scale,
					       "service", str(s, "name"), "direction", dirs[d],
					       NULL);
			}
		}
	}
}

static void peer_metrics(struct out *o, struct json_object *peers)
{
	static const char *const outcomes[] = { "sent", "dropped", "refused" };

	family(o, "caelum_peer_events_total", "counter",
	       "Events for an MCP peer: delivered, dropped (queue full), refused by the peer.");
	for (size_t i = 0; i < len_of(peers); i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);

		for (size_t k = 0; k < 3; k++)
			sample(o, "caelum_peer_events_total", num(p, outcomes[k]), "peer",
			       str(p, "url"), "outcome", outcomes[k], NULL);
	}
	family(o, "caelum_peer_queue", "gauge", "Events waiting for an MCP peer.");
	for (size_t i = 0; i < len_of(peers); i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);

		sample(o, "caelum_peer_queue", num(p, "queued"), "peer", str(p, "url"), NULL);
	}
	family(o, "caelum_peer_up", "gauge", "1 when the MCP peer's session is ready.");
	for (size_t i = 0; i < len_of(peers); i++) {
		struct json_object *p = json_object_array_get_idx(peers, i);
		const char *st = str(p, "state");

		sample(o, "caelum_peer_up", st && !strcmp(st, "ready") ? 1 : 0, "peer",
		       str(p, "url"), NULL);
	}
}

/* status.http: the listeners' counters (transports.c). Left out when no HTTP server runs. */
static void http_metrics(struct out *o, struct json_object *http)
{
	static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct json_object *req = get(http, "requests_by_listener"), *resp = get(http, "responses");
	struct json_object *refused = get(http, "refused"), *lim = get(http, "connection_limits");
	struct json_object *conn_refused = get(http, "connections_refused");
	struct json_object *conn_evicted = get(http, "connections_evicted");

	if (!get(http, "enabled") || !json_object_get_boolean(get(http, "enabled")))
		return;
	family(o, "caelum_http_requests_total", "counter", "HTTP requests, by listener.");
	sample(o, "caelum_http_requests_total", num(req, "dashboard"), "listener", "dashboard",
	       NULL);
	sample(o, "caelum_http_requests_total", num(req, "mcp"), "listener", "mcp", NULL);
	family(o, "caelum_http_responses_total", "counter", "HTTP responses, by status class.");
	for (size_t i = 0; i < 5; i++)
		sample(o, "caelum_http_responses_total", num(resp, classes[i]), "code", classes[i],
		       NULL);
	family(o, "caelum_http_refused_total", "counter",
	       "Requests refused by the access rules, by reason.");
	sample(o, "caelum_http_refused_total", num(refused, "unauthorized"), "reason",
	       "unauthorized", NULL);
	sample(o, "caelum_http_refused_total", num(refused, "forbidden_origin_or_host"), "reason",
	       "forbidden_origin_or_host", NULL);
	family(o, "caelum_http_connections_refused_total", "counter",
	       "Connections closed as soon as accepted, by the limit they would have passed.");
	if (conn_refused && json_object_is_type(conn_refused, json_type_object)) {
		json_object_object_foreach (conn_refused, limit, v)
			sample(o, "caelum_http_connections_refused_total",
			       json_object_get_double(v), "limit", limit, NULL);
	}
	family(o, "caelum_http_connections_evicted_total", "counter",
	       "Idle unauthenticated connections closed to admit a new one, by the limit reached.");
	if (conn_evicted && json_object_is_type(conn_evicted, json_type_object)) {
		json_object_object_foreach (conn_evicted, limit, v)
			sample(o, "caelum_http_connections_evicted_total",
			       json_object_get_double(v), "limit", limit, NULL);
	}
	family(o, "caelum_http_body_incomplete_total", "counter",
	       "Connections closed before a request's body was in (timeout, slow or gone).");
	sample(o, "caelum_http_body_incomplete_total", num(http, "body_incomplete"), NULL);
	family(o, "caelum_http_connection_limit", "gauge",
	       "Connection limits in force: all clients, unauthenticated, per address.");
	sample(o, "caelum_http_connection_limit", num(lim, "connections"), "limit", "connections",
	       NULL);
	sample(o, "caelum_http_connection_limit", num(lim, "unauthenticated"), "limit",
	       "unauthenticated", NULL);
	sample(o, "caelum_http_connection_limit", num(lim, "per_address"), "limit", "per_address",
	       NULL);
	family(o, "caelum_process_fd_limit", "gauge", "The soft RLIMIT_NOFILE of caelumd.");
	sample(o, "caelum_process_fd_limit", num(http, "fd_limit"), NULL);
	family(o, "caelum_http_connections", "gauge", "Open HTTP connections, by kind.");
	sample(o, "caelum_http_connections", num(http, "connections"), "kind", "all", NULL);
	sample(o, "caelum_http_connections", num(http, "streams"), "kind", "event_stream", NULL);
	sample(o, "caelum_http_connections", num(http, "websockets"), "kind", "websocket", NULL);
}

/* status.http.mcp: the MCP dispatcher's counters. */
static void mcp_metrics(struct out *o, struct json_object *m)
{
	if (!m)
		return;
	family(o, "caelum_mcp_sessions", "gauge", "Open MCP sessions (every transport and era).");
	sample(o, "caelum_mcp_sessions",
	       num(m, "sessions_http") + num(m, "sessions_websocket") + num(m, "sessions_stdio"),
	       NULL);
	family(o, "caelum_mcp_sessions_evicted_total", "counter",
	       "Idle legacy Streamable HTTP sessions evicted to make room, by reason.");
	sample(o, "caelum_mcp_sessions_evicted_total", num(m, "sessions_evicted_lru"), "reason",
	       "lru", NULL);
	sample(o, "caelum_mcp_sessions_evicted_total", num(m, "sessions_evicted_per_client"),
	       "reason", "per_client", NULL);
	family(o, "caelum_mcp_sessions_refused_total", "counter",
	       "New MCP sessions refused: every session was in use.");
	sample(o, "caelum_mcp_sessions_refused_total", num(m, "sessions_refused"), NULL);
	family(o, "caelum_mcp_requests_total", "counter", "MCP requests by protocol era.");
	sample(o, "caelum_mcp_requests_total", num(m, "modern_requests"), "era", "2026-07-28",
	       NULL);
	family(o, "caelum_mcp_era_refused_total", "counter",
	       "MCP messages refused by their era's rules (envelope, version, headers).");
	sample(o, "caelum_mcp_era_refused_total", num(m, "era_refused"), NULL);
	family(o, "caelum_mcp_listens_total", "counter", "subscriptions/listen streams opened.");
	sample(o, "caelum_mcp_listens_total", num(m, "listens_opened"), NULL);
	family(o, "caelum_mcp_notifications_total", "counter",
	       "Server notifications, delivered or dropped.");
	sample(o, "caelum_mcp_notifications_total", num(m, "notifications_sent"), "outcome", "sent",
	       NULL);
	sample(o, "caelum_mcp_notifications_total", num(m, "notifications_dropped"), "outcome",
	       "dropped", NULL);
}

int metrics_render(struct json_object *status, struct json_object *res, struct json_object *svcs,
		   char **out, size_t *len)
{
	struct json_object *http = get(status, "http"), *peers = get(get(http, "mcp"), "peers");
	struct out o = {};
	int err = 0;

	*out = NULL;
	*len = 0;
	if (!status || !json_object_is_type(status, json_type_object))
		return -EINVAL;
	o.f = open_memstream(out, len);
	if (!o.f)
		return -ENOMEM;
	family(&o, "caelum_build_info", "gauge", "caelumd's version.");
	sample(&o, "caelum_build_info", 1, "version", CAELUM_VERSION, "host", str(status, "host"),
	       NULL);
	family(&o, "caelum_uptime_seconds", "gauge", "Seconds since caelumd started.");
	sample(&o, "caelum_uptime_seconds", num(status, "uptime_s"), NULL);
	family(&o, "caelum_bpf_stats_enabled", "gauge",
	       "1 when kernel.bpf_stats_enabled is on (program run time is counted).");
	sample(&o, "caelum_bpf_stats_enabled",
	       json_object_get_boolean(get(status, "bpf_stats_enabled")) ? 1 : 0, NULL);
	events_metrics(&o, status);
	registry_metrics(&o, status, svcs);
	program_metrics(&o, get(status, "components"));
	map_metrics(&o, get(status, "maps"));
	verify_metrics(&o, get(status, "verification"));
	if (res) {
		resource_metrics(&o, res);
		bandwidth_metrics(&o, get(res, "services"));
	}
	http_metrics(&o, http);
	mcp_metrics(&o, get(http, "mcp"));
	if (peers && json_object_is_type(peers, json_type_array) && len_of(peers))
		peer_metrics(&o, peers);
	if (fclose(o.f))
		err = -errno;
	if (err) {
		free(*out);
		*out = NULL;
	}
	return err;
}
