// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"
#include "daemon.h"
#include "netns_user.h"
#include "ringbuf.h"
#include "databases.h"
#include "transports.h"
#include "version.h"

uint64_t daemon_kstat(const struct daemon *d, int idx)
{
	return bpfinfo_percpu_sum(ports_map_fd(d->ports, "cm_stats"), (uint32_t)idx);
}

static const char *const shared_maps[] = { "cm_events",	     "cm_stats", "cm_config",
					   "cm_services",    "cm_agg",	 "cm_port_outer",
					   "cm_port_owners", "cm_netns", NULL };

static struct json_object *maps_json(struct daemon *d)
{
	struct json_object *arr = json_object_new_array(), *m;
	int fd;

	for (size_t i = 0; shared_maps[i]; i++) {
		m = bpfinfo_map(ports_map_fd(d->ports, shared_maps[i]), true);
		if (m)
			json_object_array_add(arr, m);
	}
	/* The policy table the programs use now (cm_port_a or cm_port_b, kept equal). */
	fd = bpfinfo_inner_map_fd(ports_map_fd(d->ports, "cm_port_outer"));
	if (fd >= 0) {
		m = bpfinfo_map(fd, true);
		if (m) {
			json_object_object_add(m, "table",
					       json_object_get(json_object_object_get(m, "name")));
			json_object_object_add(m, "name", json_object_new_string("cm_port_rules"));
			/* An array has every slot: the rules are the slots with flags. */
			json_object_object_add(
				m, "entries",
				json_object_new_uint64(ports_table_entries(d->ports)));
			json_object_array_add(arr, m);
		}
		close(fd);
	}
	return arr;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

/* Events emitted by type and action (what /metrics counts per type). */
static struct json_object *event_types_json(struct daemon *d)
{
	struct json_object *arr = json_object_new_array();
	const struct events_typecount *tc;
	size_t n = events_type_counts(d->ev, &tc);

	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_new_object();

		json_object_object_add(t, "type", json_object_new_string(tc[i].type));
		json_object_object_add(t, "action", json_object_new_string(tc[i].action));
		add_u64(t, "events", tc[i].events);
		add_u64(t, "occurrences", tc[i].occurrences);
		json_object_array_add(arr, t);
	}
	return arr;
}

static struct json_object *events_json(struct daemon *d)
{
	struct json_object *o = json_object_new_object(), *lost = json_object_new_object();
	struct events_counters c;

	events_get_counters(d->ev, &c);
	add_u64(o, "emitted", c.emitted);
	add_u64(o, "last_id", c.last_id);
	add_u64(o, "kernel_records", c.kernel_records);
	add_u64(o, "verification_records", c.verification_records);
	add_u64(o, "denied", daemon_kstat(d, CAELUM_STAT_DENIED));
	add_u64(o, "audited", daemon_kstat(d, CAELUM_STAT_AUDITED));
	add_u64(o, "folded", daemon_kstat(d, CAELUM_STAT_FOLDED));
	/* Not lost, but not folded either: the aggregation table was full. */
	add_u64(o, "unaggregated", daemon_kstat(d, CAELUM_STAT_AGG_FULL));
	add_u64(o, "flush_errors", d->flush_errors);
	/* cm_events is mapped only while records flow (user/lib/ringbuf.h). */
	json_object_object_add(o, "ring_mapped",
			       json_object_new_boolean(ringbuf_consumer_mapped(d->ring)));
	add_u64(o, "ring_maps", ringbuf_consumer_maps(d->ring));
	add_u64(lost, "kernel_ringbuf_first", daemon_kstat(d, CAELUM_STAT_RB_LOST_FIRST));
	add_u64(lost, "kernel_ringbuf_followup", daemon_kstat(d, CAELUM_STAT_RB_LOST_FOLLOWUP));
	add_u64(lost, "journal", c.journal_errors);
	add_u64(lost, "subscribers", c.subscriber_drops);
	json_object_object_add(o, "lost", lost);
	json_object_object_add(o, "journal", events_journal_stats(d->ev));
	json_object_object_add(o, "types", event_types_json(d));
	return o;
}

static struct json_object *policy_json(struct daemon *d)
{
	struct json_object *o = json_object_new_object();
	char ts[64];

	add_u64(o, "registry_revision", d->policy.registry_rev);
	add_u64(o, "entries", d->policy.entries);
	add_u64(o, "reserved", d->policy.reserved);
	add_u64(o, "managed", d->policy.managed);
	add_u64(o, "applied_revision", d->applied.applied_rev);
	{
		uint64_t flips, writes;

		ports_counters(d->ports, &flips, &writes);
		add_u64(o, "table_flips", flips);
		add_u64(o, "entry_writes", writes);
	}
	time_format_rfc3339(d->policy.applied_ns, ts, sizeof(ts));
	json_object_object_add(o, "applied", json_object_new_string(ts));
	add_u64(o, "apply_ns", d->policy.apply_ns);
	return o;
}

static struct json_object *registry_json(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	struct json_object *o = json_object_new_object();
	struct reg_claim *cl;
	size_t n = 0;

	if (!registry_claims(st, &cl, &n))
		free(cl);
	struct json_object *b = registry_status_json(d->reg);

	/* backend, and for etcd: endpoints, stale, the recovery counters */
	json_object_object_foreach (b, k, v)
		json_object_object_add(o, k, json_object_get(v));
	json_object_put(b);
	add_u64(o, "revision", st->rev);
	add_u64(o, "services", st->n_svcs);
	add_u64(o, "reservations", n);
	add_u64(o, "runtime_reservations", st->n_resv);
	return o;
}

/* Where the rules apply: the host's network namespace and the opted-in ones. */
static struct json_object *netns_json(struct daemon *d)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	uint64_t host = 0;

	netns_cookie_self(&host);
	add_u64(o, "host_cookie", host);
	for (size_t i = 0; i < d->cfg.n_netns; i++) {
		struct json_object *n = json_object_new_object();

		json_object_object_add(n, "path", json_object_new_string(d->cfg.netns[i]));
		add_u64(n, "cookie", d->cfg.netns_cookie[i]);
		json_object_array_add(arr, n);
	}
	json_object_object_add(o, "opted_in", arr);
	return o;
}

int status_collect(struct daemon *d, struct json_object **out)
{
	struct json_object *o = json_object_new_object(), *comps = json_object_new_array();
	struct comp_env env;
	char ts[64];

	json_object_object_add(o, "host", json_object_new_string(d->cfg.host));
	json_object_object_add(o, "version", json_object_new_string(CAELUM_VERSION));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	time_format_rfc3339(d->started_ns, ts, sizeof(ts));
	json_object_object_add(o, "started", json_object_new_string(ts));
	add_u64(o, "uptime_s", (time_now_ns() - d->started_ns) / 1000000000ULL);
	json_object_object_add(o, "config", json_object_new_string(d->cfg.path));
	json_object_object_add(o, "mode", json_object_new_string(mode_name(d->cfg.mode)));
	json_object_object_add(o, "cgroup_root", json_object_new_string(d->cfg.cgroup_root));
	json_object_object_add(o, "bpffs", json_object_new_string(d->cfg.bpffs));
	json_object_object_add(o, "network_namespaces", netns_json(d));
	json_object_object_add(o, "reserved_ports", reserved_ports_json(ports_reserved(d->ports)));
	daemon_comp_env(d, &env);
	components_status(&d->comps, &env, comps);
	json_object_object_add(o, "components", comps);
	json_object_object_add(o, "maps", maps_json(d));
	json_object_object_add(o, "policy", policy_json(d));
	json_object_object_add(o, "events", events_json(d));
	json_object_object_add(o, "registry", registry_json(d));
	json_object_object_add(o, "resources", resources_enforcement_json(d));
	json_object_object_add(o, "verification", json_object_get(d->last_verify));
	if (d->transports)
		transports_status(d->transports, o);
	json_object_object_add(
		o, "bpf_stats_enabled",
		json_object_new_boolean(d->stats_fd >= 0 || bpfinfo_stats_enabled()));
	*out = o;
	return 0;
}
