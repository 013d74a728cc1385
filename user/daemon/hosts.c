// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The machine registry and discovery over the etcd backend (hosts.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "daemon.h"
#include "etcd.h"
#include "events.h"
#include "fingerprint.h"
#include "fsutil.h"
#include "health.h"
#include "hostaddr.h"
#include "hosts.h"
#include "transports.h"
#include "http.h"
#include "log.h"
#include "registry.h"
#include "version.h"

#define HOSTS_MAX_ADDRS 32

/* A host this caelumd has seen in hosts/: up while its key exists, lost after. */
struct host_seen {
	char name[256];
	struct json_object *rec;
	bool up;
};

/* What this host last wrote for one of its running services. */
struct endpoint_pub {
	char service[SERVICE_NAME_MAX + 1];
	char *value;
};

struct hosts {
	struct etcd *c;
	char instance[FINGERPRINT_HEX]; /* instance_id(): this installation of caelumd */
	char conflict[FINGERPRINT_HEX]; /* another instance seen publishing our name */
	uint64_t started_ns, last_publish_ns;
	struct host_seen *seen;
	size_t n_seen;
	struct endpoint_pub *pub;
	size_t n_pub;
	uint64_t endpoints_sig; /* endpoints_signature() when they were last published */
	bool published_once;
};

static struct registry_backend *etcd_backend(struct daemon *d)
{
	struct registry_backend *b = registry_backend_of(d->reg);

	return registry_etcd_client(b) ? b : NULL;
}

static void add_time(struct json_object *o, const char *key, uint64_t ns)
{
	char ts[64];

	time_format_rfc3339(ns, ts, sizeof(ts));
	json_object_object_add(o, key, json_object_new_string(ts));
}

static struct json_object *addresses_json(void)
{
	struct host_addr a[HOSTS_MAX_ADDRS];
	struct json_object *arr = json_object_new_array();
	bool trunc;
	size_t n = 0;

	if (hostaddr_list(a, HOSTS_MAX_ADDRS, &n, &trunc))
		return arr;
	for (size_t i = 0; i < n; i++) {
		const struct in6_addr *v6 = (const struct in6_addr *)a[i].addr;
		char buf[INET6_ADDRSTRLEN];

		if (IN6_IS_ADDR_V4MAPPED(v6))
			inet_ntop(AF_INET, a[i].addr + 12, buf, sizeof(buf));
		else
			inet_ntop(AF_INET6, v6, buf, sizeof(buf));
		if (IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && a[i].addr[12] == 127))
			continue;
		json_object_array_add(arr, json_object_new_string(buf));
	}
	return arr;
}

/* "http://ADDR:PORT/" of a listener, or null when it is off. */
static struct json_object *listener_url(struct daemon *d, const struct listen_cfg *l, int which,
					const char *path)
{
	char url[256];
	const struct http *h = d->transports ? d->transports->env.http : NULL;
	uint16_t port = h ? http_port(h, which) : 0;

	if (!l->enabled || !port)
		return NULL;
	snprintf(url, sizeof(url), "%s://%s%s%s:%u%s", l->cert[0] ? "https" : "http",
		 strchr(l->addr, ':') ? "[" : "", l->addr, strchr(l->addr, ':') ? "]" : "", port,
		 path);
	return json_object_new_string(url);
}

static struct json_object *usage_json(struct daemon *d, struct json_object **health)
{
	const struct reg_state *st = registry_state(d->reg);
	struct json_object *u = json_object_new_object();
	size_t running = 0, healthy = 0, unhealthy = 0, here = 0;
	struct host_use use;

	for (size_t i = 0; i < d->svcs.n; i++) {
		const struct svc_rt *rt = &d->svcs.v[i];
		const char *h = health_state_name(rt->health);

		running += rt->running;
		healthy += !strcmp(h, "healthy");
		unhealthy += !strcmp(h, "unhealthy");
	}
	resources_host_use(d, &use);
	json_object_object_add(u, "services", json_object_new_uint64(st->n_svcs));
	json_object_object_add(u, "running", json_object_new_uint64(running));
	/* runtime reservations in force here: on every host, or on this one */
	for (size_t i = 0; i < st->n_resv; i++)
		here += !st->resv[i].host || !strcmp(st->resv[i].host, d->cfg.host);
	json_object_object_add(u, "reservations", json_object_new_uint64(here));
	/* measured (null: not measured here), then what the services running here reserve:
	 * the same units as "capacity" (CPUs, MiB) */
	json_object_object_add(u, "cpus",
			       use.cpus_used_milli < 0
				       ? NULL
				       : json_object_new_double(use.cpus_used_milli / 1000.0));
	json_object_object_add(u, "memory_mb",
			       use.memory_used_bytes < 0
				       ? NULL
				       : json_object_new_int64(use.memory_used_bytes >> 20));
	json_object_object_add(u, "cpus_allocated",
			       json_object_new_double(use.cpus_alloc_milli / 1000.0));
	json_object_object_add(u, "memory_mb_allocated",
			       json_object_new_int64(use.memory_alloc_mb));
	*health = json_object_new_object();
	json_object_object_add(*health, "healthy", json_object_new_uint64(healthy));
	json_object_object_add(*health, "unhealthy", json_object_new_uint64(unhealthy));
	return u;
}

/* This host's record (hosts/<host>). */
/*
 * Which caelumd publishes a host name: SHA-256 of /etc/machine-id (machine-id(5)) and
 * state_dir, hex. The same installation restarted keeps it (and takes its record over
 * while the old lease runs out); another machine, or another caelumd on this one with its
 * own state, has another.
 */
static void instance_id(const struct config *cfg, char out[FINGERPRINT_HEX])
{
	char *mid = NULL, buf[PATH_MAX + 128];
	size_t len = 0;

	if (file_read_all("/etc/machine-id", 4096, &mid, &len))
		len = 0;
	snprintf(buf, sizeof(buf), "%.*s\n%s", (int)(len < 64 ? len : 64), mid ? mid : "",
		 cfg->state_dir);
	free(mid);
	fingerprint_data(buf, strlen(buf), out);
}

/* The instance of the record the registry holds for name ("" when none or no instance). */
static void record_instance(struct daemon *d, const char *name, char out[FINGERPRINT_HEX],
			    struct json_object **rec_out)
{
	char key[300];
	struct kv *kvs = NULL;
	size_t n = 0;

	out[0] = '\0';
	*rec_out = NULL;
	snprintf(key, sizeof(key), "hosts/%s", name);
	if (registry_etcd_keys(etcd_backend(d), key, &kvs, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		struct json_object *rec, *v;

		if (strcmp(kvs[i].key, key) || !(rec = json_tokener_parse(kvs[i].value)))
			continue;
		if (json_object_object_get_ex(rec, "instance", &v) &&
		    json_object_is_type(v, json_type_string))
			snprintf(out, FINGERPRINT_HEX, "%s", json_object_get_string(v));
		*rec_out = rec;
	}
	kvs_free(kvs, n);
}

int hosts_check_name(struct daemon *d)
{
	struct registry_backend *b = etcd_backend(d);
	char mine[FINGERPRINT_HEX], theirs[FINGERPRINT_HEX];
	struct json_object *st, *rec, *v;
	bool stale = true;

	if (!b)
		return 0;
	/* The local copy of an outage may hold a record long gone: only what etcd listed
	 * at open counts (the watch is not up yet here). */
	st = registry_status_json(d->reg);
	if (json_object_object_get_ex(st, "started_from_local_copy", &v))
		stale = json_object_get_boolean(v);
	json_object_put(st);
	if (stale)
		return 0;
	instance_id(&d->cfg, mine);
	record_instance(d, d->cfg.host, theirs, &rec);
	if (rec && theirs[0] && strcmp(theirs, mine)) {
		const char *url = json_object_object_get_ex(rec, "dashboard_url", &v)
					  ? json_object_get_string(v)
					  : NULL;

		p_err("host: \"%s\" is the name of another caelumd in this registry (its dashboard "
		      "%s; a live record, not this installation's): give this one its own \"host\"",
		      d->cfg.host, url ? url : "unknown");
		json_object_put(rec);
		return -EEXIST;
	}
	json_object_put(rec);
	return 0;
}

static struct json_object *host_record(struct daemon *d, uint64_t now_ns)
{
	struct json_object *o = json_object_new_object(), *cap = json_object_new_object();
	struct json_object *comps = json_object_new_object(), *health;

	json_object_object_add(o, "name", json_object_new_string(d->cfg.host));
	json_object_object_add(o, "instance", json_object_new_string(d->hosts->instance));
	json_object_object_add(o, "addresses", addresses_json());
	json_object_object_add(o, "dashboard_url", listener_url(d, &d->cfg.http, HTTP_DASH, "/"));
	json_object_object_add(o, "mcp_url", listener_url(d, &d->cfg.mcp, HTTP_MCP, "/mcp"));
	json_object_object_add(cap, "cpus", json_object_new_double(d->cfg.cap.cpus_milli / 1000.0));
	json_object_object_add(cap, "memory_mb", json_object_new_int64(d->cfg.cap.memory_mb));
	json_object_object_add(cap, "gpus", json_object_new_uint64(d->cfg.cap.n_gpus));
	json_object_object_add(o, "capacity", cap);
	for (int i = 0; i < component_count(); i++)
		json_object_object_add(comps, component_name(i),
				       json_object_new_string(mode_name(d->cfg.comp_mode[i])));
	json_object_object_add(o, "components", comps);
	json_object_object_add(o, "version", json_object_new_string(CAELUM_VERSION));
	add_time(o, "started_at", d->hosts->started_ns);
	add_time(o, "updated_at", now_ns);
	json_object_object_add(o, "usage", usage_json(d, &health));
	json_object_object_add(o, "health", health);
	json_object_object_add(o, "last_verification", json_object_get(d->last_verify));
	return o;
}

static char *key_of(const char *fmt, const char *a, const char *b)
{
	char *k;

	return asprintf(&k, fmt, a, b) < 0 ? NULL : k;
}

static void publish_host(struct daemon *d, uint64_t now_ns)
{
	struct json_object *rec = host_record(d, now_ns);
	char *key = key_of("hosts/%s%s", d->cfg.host, "");
	char *pkey = key ? key_of("%s%s", registry_etcd_prefix(etcd_backend(d)), key) : NULL;

	if (pkey && etcd_session_put(d->hosts->c, pkey,
				     json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN)))
		p_warn("machine registry: out of memory publishing %s", key);
	d->hosts->last_publish_ns = now_ns;
	json_object_put(rec);
	free(key);
	free(pkey);
}

/* ---- endpoints: where this host runs which service ---- */

static struct endpoint_pub *pub_find(struct hosts *h, const char *svc)
{
	for (size_t i = 0; i < h->n_pub; i++)
		if (!strcmp(h->pub[i].service, svc))
			return &h->pub[i];
	return NULL;
}

/* value NULL: the service no longer runs here. */
static void endpoint_set(struct daemon *d, const char *svc, const char *value)
{
	struct hosts *h = d->hosts;
	struct endpoint_pub *p = pub_find(h, svc);
	char *key;

	if (p ? (p->value && value && !strcmp(p->value, value)) || (!p->value && !value) : !value)
		return;
	if (!p) {
		struct endpoint_pub *tmp = realloc(h->pub, (h->n_pub + 1) * sizeof(*tmp));

		if (!tmp)
			return;
		h->pub = tmp;
		p = &h->pub[h->n_pub++];
		*p = (struct endpoint_pub){};
		snprintf(p->service, sizeof(p->service), "%s", svc);
	}
	free(p->value);
	p->value = value ? strdup(value) : NULL;
	key = key_of("%sendpoints/%s/", registry_etcd_prefix(etcd_backend(d)), svc);
	if (key) {
		char *full = key_of("%s%s", key, d->cfg.host);

		if (full)
			etcd_session_put(h->c, full, value);
		free(full);
	}
	free(key);
}

static struct json_object *service_ports(const struct reg_claim *cl, size_t n, const char *svc)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		char p[32];

		if (strcmp(cl[i].service, svc))
			continue;
		snprintf(p, sizeof(p), "%u/%s", cl[i].port,
			 cl[i].proto == IPPROTO_UDP ? "udp" : "tcp");
		json_object_array_add(arr, json_object_new_string(p));
	}
	return arr;
}

/* What the endpoints depend on: the registry's revision and each service's running state
 * and health. Unchanged: nothing to rebuild (claims are O(reservations)). */
static uint64_t endpoints_signature(struct daemon *d)
{
	uint64_t h = registry_state(d->reg)->rev * 1000003ULL;

	for (size_t i = 0; i < d->svcs.n; i++) {
		const struct svc_rt *rt = &d->svcs.v[i];

		h = h * 31 + (uint64_t)rt->running * 7 + (uint64_t)rt->health * 13 +
		    (uint64_t)rt->health_failures * 17 + rt->health_since_ns + rt->started_ns + i;
	}
	return h ^ d->svcs.n;
}

static void publish_endpoints(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	uint64_t sig = endpoints_signature(d);
	struct reg_claim *cl = NULL;
	size_t n = 0;

	if (d->hosts->published_once && sig == d->hosts->endpoints_sig)
		return;
	if (registry_claims(st, &cl, &n))
		return;
	d->hosts->endpoints_sig = sig;
	d->hosts->published_once = true;
	for (size_t i = 0; i < d->svcs.n; i++) {
		const struct svc_rt *rt = &d->svcs.v[i];
		struct json_object *o;

		if (!rt->running || !registry_service(d->reg, rt->name)) {
			endpoint_set(d, rt->name, NULL);
			continue;
		}
		o = json_object_new_object();
		json_object_object_add(o, "service", json_object_new_string(rt->name));
		json_object_object_add(o, "host", json_object_new_string(d->cfg.host));
		json_object_object_add(o, "ports", service_ports(cl, n, rt->name));
		json_object_object_add(o, "health", health_json(rt));
		if (rt->started_ns)
			add_time(o, "since", rt->started_ns);
		endpoint_set(d, rt->name,
			     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	}
	/* services deleted from the registry: their cgroup runtime is gone too */
	for (size_t i = 0; i < d->hosts->n_pub; i++)
		if (d->hosts->pub[i].value && !svcs_find(&d->svcs, d->hosts->pub[i].service))
			endpoint_set(d, d->hosts->pub[i].service, NULL);
	free(cl);
}

/* ---- what the others published ---- */

static struct host_seen *seen_find(struct hosts *h, const char *name)
{
	for (size_t i = 0; i < h->n_seen; i++)
		if (!strcmp(h->seen[i].name, name))
			return &h->seen[i];
	return NULL;
}

/* Bring the seen table to the hosts/ keys the watch delivered: present = up, gone = lost. */
/* Another caelumd started under our name after us: say so once per other instance (it
 * refuses to start when it sees us first; both keep overwriting the record otherwise). */
static void check_conflict(struct daemon *d)
{
	struct hosts *h = d->hosts;
	char theirs[FINGERPRINT_HEX];
	struct json_object *rec, *e;

	record_instance(d, d->cfg.host, theirs, &rec);
	json_object_put(rec);
	if (!theirs[0] || !strcmp(theirs, h->instance) || !strcmp(theirs, h->conflict))
		return;
	snprintf(h->conflict, sizeof(h->conflict), "%s", theirs);
	p_err("host: another caelumd publishes the name \"%s\" (instance %.12s, this one "
	      "%.12s): give one of them its own \"host\"",
	      d->cfg.host, theirs, h->instance);
	e = event_new(d->ev, "host_name_conflict", "changed");
	json_object_object_add(e, "other_instance", json_object_new_string(theirs));
	events_emit(d->ev, e);
}

static void hosts_scan(struct daemon *d)
{
	struct hosts *h = d->hosts;
	struct kv *kvs = NULL;
	size_t n = 0;

	check_conflict(d);
	if (registry_etcd_keys(etcd_backend(d), "hosts/", &kvs, &n))
		return;
	for (size_t i = 0; i < h->n_seen; i++)
		h->seen[i].up = false;
	for (size_t i = 0; i < n; i++) {
		const char *name = kvs[i].key + strlen("hosts/");
		struct json_object *rec = json_tokener_parse(kvs[i].value);
		struct host_seen *s = seen_find(h, name);

		if (!rec || !json_object_is_type(rec, json_type_object) ||
		    strlen(name) >= sizeof(s->name)) {
			json_object_put(rec);
			continue;
		}
		if (!s) {
			struct host_seen *tmp = realloc(h->seen, (h->n_seen + 1) * sizeof(*tmp));

			if (!tmp) {
				json_object_put(rec);
				continue;
			}
			h->seen = tmp;
			s = &h->seen[h->n_seen++];
			*s = (struct host_seen){};
			snprintf(s->name, sizeof(s->name), "%s", name);
		} else if (!s->up) {
			p_debug("machine registry: host %s is back", name);
		}
		json_object_put(s->rec);
		s->rec = rec;
		s->up = true;
	}
	kvs_free(kvs, n);
}

static int seen_cmp(const void *a, const void *b)
{
	return strcmp(((const struct host_seen *)a)->name, ((const struct host_seen *)b)->name);
}

struct json_object *hosts_list_json(struct daemon *d)
{
	struct json_object *arr;

	if (!d->hosts)
		return NULL;
	hosts_scan(d);
	if (d->hosts->n_seen) /* qsort(3) wants a valid pointer, even for no elements */
		qsort(d->hosts->seen, d->hosts->n_seen, sizeof(*d->hosts->seen), seen_cmp);
	arr = json_object_new_array();
	for (size_t i = 0; i < d->hosts->n_seen; i++) {
		struct host_seen *s = &d->hosts->seen[i];
		struct json_object *o = json_object_new_object(), *v;

		json_object_object_add(o, "name", json_object_new_string(s->name));
		json_object_object_add(o, "state", json_object_new_string(s->up ? "up" : "lost"));
		/* a lost host's last record: when it was last heard of, and what it was */
		json_object_object_add(o, "last_seen",
				       json_object_object_get_ex(s->rec, "updated_at", &v)
					       ? json_object_get(v)
					       : NULL);
		json_object_object_foreach (s->rec, k, val)
			if (strcmp(k, "name") && strcmp(k, "updated_at"))
				json_object_object_add(o, k, json_object_get(val));
		json_object_array_add(arr, o);
	}
	return arr;
}

struct json_object *hosts_where_json(struct daemon *d, const char *service)
{
	struct json_object *arr;
	struct kv *kvs = NULL;
	size_t n = 0;
	char *prefix;

	if (!d->hosts)
		return NULL;
	hosts_scan(d);
	prefix = key_of("endpoints/%s/%s", service, "");
	if (!prefix || registry_etcd_keys(etcd_backend(d), prefix, &kvs, &n)) {
		free(prefix);
		return NULL;
	}
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *rec = json_tokener_parse(kvs[i].value), *o;
		const char *host = kvs[i].key + strlen(prefix);
		struct host_seen *s = seen_find(d->hosts, host);

		if (!rec || !json_object_is_type(rec, json_type_object)) {
			json_object_put(rec); /* written by someone else: not an endpoint record */
			continue;
		}
		o = json_object_new_object();
		json_object_object_add(o, "host", json_object_new_string(host));
		json_object_object_add(o, "state",
				       json_object_new_string(s && s->up ? "up" : "lost"));
		json_object_object_foreach (rec, k, val)
			if (strcmp(k, "host") && strcmp(k, "service"))
				json_object_object_add(o, k, json_object_get(val));
		json_object_put(rec);
		json_object_array_add(arr, o);
	}
	kvs_free(kvs, n);
	free(prefix);
	return arr;
}

/* ---- lifecycle ---- */

int hosts_setup(struct daemon *d)
{
	struct registry_backend *b = etcd_backend(d);
	int err;

	if (!b)
		return 0;
	d->hosts = calloc(1, sizeof(*d->hosts));
	if (!d->hosts)
		return -ENOMEM;
	d->hosts->c = registry_etcd_client(b);
	d->hosts->started_ns = time_now_ns();
	instance_id(&d->cfg, d->hosts->instance);
	err = etcd_session_start(d->hosts->c, d->cfg.registry.lease_ttl_s);
	if (err) {
		p_err("failed to start the machine registry session: %s", strerror(-err));
		return err;
	}
	publish_host(d, d->hosts->started_ns);
	publish_endpoints(d);
	return 0;
}

void hosts_tick(struct daemon *d, uint64_t now_ns)
{
	if (!d->hosts)
		return;
	if (now_ns - d->hosts->last_publish_ns >= HOSTS_PUBLISH_S * 1000000000ULL)
		publish_host(d, now_ns);
	publish_endpoints(d);
	hosts_scan(d);
}

void hosts_close(struct daemon *d)
{
	struct hosts *h = d->hosts;

	if (!h)
		return;
	for (size_t i = 0; i < h->n_seen; i++)
		json_object_put(h->seen[i].rec);
	for (size_t i = 0; i < h->n_pub; i++)
		free(h->pub[i].value);
	free(h->seen);
	free(h->pub);
	free(h);
	d->hosts = NULL;
}
