/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Events: the kernel's ring-buffer records and caelumd's own happenings, turned into one
 * JSON shape, numbered, journaled (events.jsonl), kept in a bounded in-memory window for
 * queries, and fanned out to subscribers (caelumctl events follow; later SSE and MCP).
 *
 * Fields: id, time (RFC 3339, ns, UTC), host, type, action, service (offender or null),
 * pid, comm, cgroup_id, port, proto, family, owner, count, plus type-specific extras.
 */
#ifndef CAELUM_EVENTS_H
#define CAELUM_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "caelum/common.h"

#define EVENTS_WINDOW 16384 /* events kept in memory for queries */

struct events;

struct event_filter {
	const char *type;    /* NULL = any */
	const char *service; /* matches "service" or "owner"; NULL = any */
	const char *host;    /* events of this host (peers' events carry theirs); NULL = any */
	uint64_t since_id;   /* only ids > since_id */
	size_t limit;	     /* newest N (0 = no limit) */
};

/* Names kernel cgroup ids for events: service name or NULL. */
typedef const char *(*events_name_fn)(void *ctx, uint64_t cgid);
/* Names a device major:minor (a configured GPU device path) or NULL. */
typedef const char *(*events_dev_fn)(void *ctx, uint32_t major, uint32_t minor);
/* Names a database id (db_id_of) or NULL. */
typedef const char *(*events_db_fn)(void *ctx, uint32_t db_id);
/* Subscriber callback: ev is borrowed. */
typedef void (*events_sub_fn)(void *ctx, struct json_object *ev);

struct events_opts {
	const char *host;
	const char *state_dir; /* journal lives here */
	size_t journal_max_bytes;
	unsigned int journal_keep;
	events_name_fn name_of;
	events_dev_fn dev_name; /* may be NULL */
	events_db_fn db_name;	/* may be NULL */
	void *name_ctx;		/* passed to both */
};

struct events_counters {
	uint64_t emitted;	       /* events that reached the journal/window */
	uint64_t kernel_records;       /* ring-buffer records read */
	uint64_t verification_records; /* of them, self-verification probes (not emitted) */
	uint64_t journal_errors;       /* events that could not be written to the journal */
	uint64_t subscriber_drops;     /* events a slow subscriber did not get */
	uint64_t last_id;
};

#define EVENTS_MAX_TYPES 64 /* distinct (type, action) pairs counted */
struct events_typecount {
	char type[40];
	char action[16];
	uint64_t events;      /* events emitted */
	uint64_t occurrences; /* sum of their counts (aggregated kernel records) */
};

int events_open(struct events **out, const struct events_opts *opts);
void events_close(struct events *ev);

/* A new event of type with time and host set; add fields, then events_emit(). */
struct json_object *event_new(struct events *ev, const char *type, const char *action);
/* Number, journal, keep, and hand to subscribers. Takes ownership of e. */
void events_emit(struct events *ev, struct json_object *e);

/* Decode one ring-buffer record (the ABI struct) into an event and emit it. */
int events_from_kernel(struct events *ev, const void *data, size_t len);

/* Matching events, oldest first, as a new JSON array. */
struct json_object *events_query(struct events *ev, const struct event_filter *f);
bool event_matches(struct json_object *e, const struct event_filter *f);

/* Records from these cgroups are self-verification probes: counted, not emitted. */
void events_set_canaries(struct events *ev, uint64_t cgid1, uint64_t cgid2);
/* Events a peer sent (MCP ingest_events): each keeps its fields, gets a local id, host set
 * to host and origin_id to its id there. Events whose origin_id is not above the last one
 * taken from that host are skipped (a batch re-sent after a lost reply). Returns how many
 * were stored; *skipped counts the duplicates. */
size_t events_ingest(struct events *ev, const char *host, struct json_object *arr, size_t *skipped);
/* The local host name (events from here carry it). */
const char *events_host(const struct events *ev);
/* Totals per (type, action) since start. */
size_t events_type_counts(const struct events *ev, const struct events_typecount **out);
/* Violations (kernel denials, audited included) per minute and type, the last N minutes:
 * {"step_s":60,"minutes":[...],"series":{"bind_denied":[...],...}} */
struct json_object *events_timeline(const struct events *ev, unsigned int minutes);
int events_subscribe(struct events *ev, events_sub_fn fn, void *ctx);
void events_unsubscribe(struct events *ev, int id);
void events_count_drop(struct events *ev, uint64_t n);
void events_get_counters(const struct events *ev, struct events_counters *c);
struct json_object *events_journal_stats(const struct events *ev);

/* RFC 3339 UTC with nanoseconds: 2026-11-27T12:00:00.123456789Z */
void time_format_rfc3339(uint64_t realtime_ns, char *buf, size_t len);
uint64_t time_now_ns(void);
/* CLOCK_MONOTONIC (bpf_ktime_get_ns) -> CLOCK_REALTIME */
uint64_t time_mono_to_real(uint64_t mono_ns);

const char *event_type_name(uint32_t type);

#endif /* CAELUM_EVENTS_H */
