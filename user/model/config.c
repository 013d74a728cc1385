// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "netns_user.h"

#define JOURNAL_DEFAULT_BYTES (16U << 20)
#define JOURNAL_DEFAULT_KEEP  5

static const char *const component_names[] = {
	[CAELUM_COMP_PORTS] = "ports",	       [CAELUM_COMP_DEVICES] = "devices",
	[CAELUM_COMP_TASKS] = "tasks",	       [CAELUM_COMP_CPU] = "cpu",
	[CAELUM_COMP_DATABASES] = "databases", [CAELUM_COMP_BANDWIDTH] = "bandwidth",
};
#define N_COMPONENTS ((int)(sizeof(component_names) / sizeof(component_names[0])))

static const char *const config_keys[] = {
	"host",		 "mode",	 "components",	       "bpffs",	      "state_dir",
	"runtime_dir",	 "services_dir", "managed_ports",      "cgroup_root", "journal",
	"ringbuf_bytes", "capacity",	 "databases_dir",      "verify",      "http",
	"bpf_stats",	 "mcp",		 "network_namespaces", "registry",    NULL,
};

const char *config_path(const char *explicit_path)
{
	const char *env = getenv("CAELUM_CONFIG");

	if (explicit_path)
		return explicit_path;
	if (env && *env)
		return env;
	return CONFIG_DEFAULT_PATH;
}

const char *mode_name(int mode)
{
	switch (mode) {
	case CAELUM_MODE_OFF:
		return "off";
	case CAELUM_MODE_AUDIT:
		return "audit";
	case CAELUM_MODE_ENFORCE:
		return "enforce";
	}
	return "unset";
}

int mode_parse(const char *s)
{
	if (!strcmp(s, "enforce"))
		return CAELUM_MODE_ENFORCE;
	if (!strcmp(s, "audit"))
		return CAELUM_MODE_AUDIT;
	if (!strcmp(s, "off"))
		return CAELUM_MODE_OFF;
	return -1;
}

const char *component_name(int comp)
{
	return comp >= 0 && comp < N_COMPONENTS ? component_names[comp] : "unknown";
}

int component_parse(const char *s)
{
	for (int i = 0; i < N_COMPONENTS; i++)
		if (!strcmp(s, component_names[i]))
			return i;
	return -1;
}

int component_count(void)
{
	return N_COMPONENTS;
}

void config_socket_path(const struct config *cfg, char *buf, size_t len)
{
	snprintf(buf, len, "%s/caelumd.sock", cfg->runtime_dir);
}

static void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(cfg->host, sizeof(cfg->host) - 1))
		strcpy(cfg->host, "localhost");
	cfg->mode = CAELUM_MODE_ENFORCE;
	strcpy(cfg->bpffs, "/sys/fs/bpf/caelum");
	strcpy(cfg->state_dir, "/var/lib/caelum");
	strcpy(cfg->runtime_dir, "/run/caelum");
	strcpy(cfg->services_dir, "/etc/caelum/services.d");
	strcpy(cfg->databases_dir, "/etc/caelum/databases.d");
	cfg->verify_interval_s = 60;
	cfg->verify_port = 65001;
	cfg->journal_max_bytes = JOURNAL_DEFAULT_BYTES;
	cfg->journal_keep = JOURNAL_DEFAULT_KEEP;
	cfg->ringbuf_bytes = CAELUM_RINGBUF_BYTES;
	capacity_defaults(&cfg->cap);
	listen_parse("127.0.0.1:8090", &cfg->http, NULL, 0);
	listen_parse("127.0.0.1:8080", &cfg->mcp, NULL, 0);
	strcpy(cfg->registry.prefix, "caelum/");
	cfg->registry.lease_ttl_s = 10;
	cfg->registry.timeout_ms = 5000;
}

static void get_mode(struct json_object *v, const char *file, const char *path, bool allow_off,
		     int *dst, struct verr *e)
{
	char buf[64];
	int m;

	if (!jv_expect(v, json_type_string, file, path, e))
		return;
	m = mode_parse(json_object_get_string(v));
	if (m < 0 || (!allow_off && m == CAELUM_MODE_OFF)) {
		verr_add(e, file, path, "invalid mode %s (expected %s)",
			 jv_repr(v, buf, sizeof(buf)),
			 allow_off ? "enforce, audit or off" : "enforce or audit");
		return;
	}
	*dst = m;
}

static void parse_components(struct json_object *obj, const char *file, int *modes, struct verr *e)
{
	if (!jv_expect(obj, json_type_object, file, "components", e))
		return;
	json_object_object_foreach (obj, key, val) {
		char p[JV_PATH_MAX];
		int comp = component_parse(key);

		jv_path_key(p, "components", key);
		if (comp < 0) {
			verr_add(e, file, p,
				 "unknown component \"%s\" (known: ports, devices, tasks, cpu, "
				 "databases, bandwidth)",
				 key);
			continue;
		}
		get_mode(val, file, p, true, &modes[comp], e);
	}
}

/*
 * Overlapping managed ranges are almost always a typo; say so rather than merge silently.
 * idx[i] is the position in the file of cfg->managed[i] (refused items leave gaps).
 */
static void check_managed_overlap(const struct config *cfg, const size_t *idx, const char *file,
				  struct verr *e)
{
	for (size_t i = 0; i < cfg->n_managed; i++) {
		for (size_t j = 0; j < i; j++) {
			char p[JV_PATH_MAX], a[32], b[32];

			if (!port_range_overlap(&cfg->managed[i], &cfg->managed[j]))
				continue;
			jv_path_idx(p, "managed_ports", idx[i]);
			port_range_fmt(&cfg->managed[i], a, sizeof(a));
			port_range_fmt(&cfg->managed[j], b, sizeof(b));
			verr_add(e, file, p, "%s overlaps managed_ports[%zu] %s", a, idx[j], b);
		}
	}
}

static void parse_managed(struct json_object *arr, const char *file, struct config *cfg,
			  struct verr *e)
{
	size_t n, idx[CONFIG_MAX_MANAGED];

	if (!jv_expect(arr, json_type_array, file, "managed_ports", e))
		return;
	n = json_object_array_length(arr);
	if (n > CONFIG_MAX_MANAGED) {
		verr_add(e, file, "managed_ports", "%zu ranges, at most %d", n, CONFIG_MAX_MANAGED);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		struct port_range *r = &cfg->managed[cfg->n_managed];
		char p[JV_PATH_MAX], why[128];

		jv_path_idx(p, "managed_ports", i);
		if (!jv_expect(v, json_type_string, file, p, e))
			continue;
		if (port_range_parse(json_object_get_string(v), PROTO_BOTH, true, r, why,
				     sizeof(why))) {
			verr_add(e, file, p, "%s", why);
			continue;
		}
		idx[cfg->n_managed++] = i;
	}
	check_managed_overlap(cfg, idx, file, e);
}

static void parse_journal(struct json_object *obj, const char *file, struct config *cfg,
			  struct verr *e)
{
	static const char *const keys[] = { "max_bytes", "keep", NULL };
	struct json_object *v;
	int64_t x;

	if (!jv_expect(obj, json_type_object, file, "journal", e))
		return;
	jv_check_keys(obj, file, "journal", keys, e);
	if (json_object_object_get_ex(obj, "max_bytes", &v) &&
	    jv_get_int(v, 4096, 1LL << 34, file, "journal.max_bytes", &x, e))
		cfg->journal_max_bytes = (size_t)x;
	if (json_object_object_get_ex(obj, "keep", &v) &&
	    jv_get_int(v, 1, 100, file, "journal.keep", &x, e))
		cfg->journal_keep = (unsigned int)x;
}

static void parse_verify(struct json_object *obj, const char *file, struct config *cfg,
			 struct verr *e)
{
	static const char *const keys[] = { "interval_s", "port", NULL };
	struct json_object *v;
	int64_t x;

	if (!jv_expect(obj, json_type_object, file, "verify", e))
		return;
	jv_check_keys(obj, file, "verify", keys, e);
	if (json_object_object_get_ex(obj, "interval_s", &v) &&
	    jv_get_int(v, 0, 86400, file, "verify.interval_s", &x, e))
		cfg->verify_interval_s = (unsigned int)x;
	if (json_object_object_get_ex(obj, "port", &v) &&
	    jv_get_int(v, 1, 65535, file, "verify.port", &x, e))
		cfg->verify_port = (uint16_t)x;
}

int listen_parse(const char *spec, struct listen_cfg *l, char *why, size_t why_len)
{
	char host[64], tmp[64];
	bool bracketed;
	const char *colon;
	struct in6_addr a6;
	struct in_addr a4;
	char *end;
	long port;
	size_t hl;

	if (!why) {
		why = tmp;
		why_len = sizeof(tmp);
	}
	if (strlen(spec) >= sizeof(l->spec)) {
		snprintf(why, why_len, "too long");
		return -EINVAL;
	}
	snprintf(l->spec, sizeof(l->spec), "%s", spec);
	if (!strcmp(spec, "off")) {
		l->enabled = false;
		return 0;
	}
	bracketed = spec[0] == '[';
	if (bracketed) {
		const char *rb = strchr(spec, ']');

		if (!rb || rb[1] != ':') {
			snprintf(why, why_len, "expected \"[ADDRESS]:PORT\"");
			return -EINVAL;
		}
		hl = (size_t)(rb - spec - 1);
		colon = rb + 1;
		spec++;
	} else {
		colon = strrchr(spec, ':');
		if (!colon) {
			snprintf(why, why_len, "expected \"ADDRESS:PORT\" or \"off\"");
			return -EINVAL;
		}
		hl = (size_t)(colon - spec);
	}
	if (!hl || hl >= sizeof(host)) {
		snprintf(why, why_len, "missing or too long address");
		return -EINVAL;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (!bracketed && strchr(host, ':')) {
		snprintf(why, why_len, "an IPv6 address goes in brackets: \"[ADDRESS]:PORT\"");
		return -EINVAL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 0 || port > 65535) {
		snprintf(why, why_len, "port \"%s\" is not a number in 0-65535", colon + 1);
		return -EINVAL;
	}
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &a4) == 1) {
		l->loopback = (ntohl(a4.s_addr) >> 24) == 127;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		l->loopback = IN6_IS_ADDR_LOOPBACK(&a6);
	} else {
		snprintf(why, why_len, "\"%s\" is not an IP address", host);
		return -EINVAL;
	}
	snprintf(l->addr, sizeof(l->addr), "%s", host);
	l->port = (uint16_t)port;
	l->enabled = true;
	return 0;
}

static void get_file(struct json_object *v, const char *file, const char *key, char *dst,
		     struct verr *e)
{
	size_t n = e->n;

	jv_get_path(v, file, key, dst, e);
	if (e->n == n && access(dst, R_OK))
		verr_add(e, file, key, "\"%s\": %s", dst, strerror(errno));
}

static void parse_hosts(struct json_object *v, const char *file, const char *path,
			struct listen_cfg *l, struct verr *e)
{
	char why[128];

	if (!jv_expect(v, json_type_array, file, path, e))
		return;
	if (json_object_array_length(v) > CONFIG_MAX_HOSTS) {
		verr_add(e, file, path, "%zu hosts, at most %d", json_object_array_length(v),
			 CONFIG_MAX_HOSTS);
		return;
	}
	l->n_hosts = 0;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *o = json_object_array_get_idx(v, i);
		char ip[JV_PATH_MAX];
		const char *s;

		jv_path_idx(ip, path, i);
		if (!jv_expect(o, json_type_string, file, ip, e))
			continue;
		s = json_object_get_string(o);
		if (host_name_check(s, why, sizeof(why))) {
			verr_add(e, file, ip, "\"%.200s\": %s", s, why);
			continue;
		}
		snprintf(l->hosts[l->n_hosts++], sizeof(l->hosts[0]), "%s", s);
	}
}

/* "http" / "mcp": {"listen": "127.0.0.1:8090", "cert": F, "key": F, "origins": [...],
 * "hosts": [...]} */
void config_parse_listener(struct json_object *obj, const char *file, const char *name,
			   struct listen_cfg *l, const char *const *extra_keys, struct verr *e)
{
	static const char *const base[] = { "listen", "cert", "key", "origins", "hosts" };
	const char *keys[16];
	char path[JV_PATH_MAX], why[128];
	struct json_object *v;
	size_t nk = 0, n0 = e->n;

	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		keys[nk++] = base[i];
	for (size_t i = 0; extra_keys && extra_keys[i] && nk < 15; i++)
		keys[nk++] = extra_keys[i];
	keys[nk] = NULL;
	if (!jv_expect(obj, json_type_object, file, name, e))
		return;
	jv_check_keys(obj, file, name, keys, e);
	if (json_object_object_get_ex(obj, "listen", &v)) {
		jv_path_key(path, name, "listen");
		if (jv_expect(v, json_type_string, file, path, e) &&
		    listen_parse(json_object_get_string(v), l, why, sizeof(why)))
			verr_add(e, file, path, "\"%s\": %s", json_object_get_string(v), why);
	}
	if (json_object_object_get_ex(obj, "cert", &v)) {
		jv_path_key(path, name, "cert");
		get_file(v, file, path, l->cert, e);
	}
	if (json_object_object_get_ex(obj, "key", &v)) {
		jv_path_key(path, name, "key");
		get_file(v, file, path, l->key, e);
	}
	if (e->n == n0 && !l->cert[0] != !l->key[0])
		verr_add(e, file, name,
			 "\"cert\" and \"key\" go together: give both or neither (\"%s\" is "
			 "given without \"%s\")",
			 l->cert[0] ? "cert" : "key", l->cert[0] ? "key" : "cert");
	if (json_object_object_get_ex(obj, "hosts", &v)) {
		jv_path_key(path, name, "hosts");
		parse_hosts(v, file, path, l, e);
	}
	if (json_object_object_get_ex(obj, "origins", &v)) {
		jv_path_key(path, name, "origins");
		if (!jv_expect(v, json_type_array, file, path, e))
			return;
		if (json_object_array_length(v) > CONFIG_MAX_ORIGINS) {
			verr_add(e, file, path, "%zu origins, at most %d",
				 json_object_array_length(v), CONFIG_MAX_ORIGINS);
			return;
		}
		l->n_origins = 0;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *o = json_object_array_get_idx(v, i);
			char ip[JV_PATH_MAX];
			const char *s, *auth;

			jv_path_idx(ip, path, i);
			if (!jv_expect(o, json_type_string, file, ip, e))
				continue;
			s = json_object_get_string(o);
			/* The authority after the scheme: non-empty, no path. */
			auth = !strncmp(s, "http://", 7)    ? s + 7
			       : !strncmp(s, "https://", 8) ? s + 8
							    : NULL;
			if (!auth || !*auth || strlen(s) >= sizeof(l->origins[0]) ||
			    strchr(auth, '/')) {
				verr_add(e, file, ip,
					 "\"%s\" is not an origin (scheme://host[:port], no path)",
					 s);
				continue;
			}
			snprintf(l->origins[l->n_origins++], sizeof(l->origins[0]), "%s", s);
		}
	}
}

static void parse_peers(struct json_object *v, const char *file, struct config *cfg, struct verr *e)
{
	static const char *const keys[] = { "url", "token_file", "queue_max", NULL };
	char path[JV_PATH_MAX], kp[JV_PATH_MAX], why[128];

	if (!jv_expect(v, json_type_array, file, "mcp.peers", e))
		return;
	if (json_object_array_length(v) > CONFIG_MAX_PEERS) {
		verr_add(e, file, "mcp.peers", "%zu peers, at most %d", json_object_array_length(v),
			 CONFIG_MAX_PEERS);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *p = json_object_array_get_idx(v, i), *x;
		struct peer_cfg *pc = &cfg->peers[cfg->n_peers];
		struct peer_url u;

		jv_path_idx(path, "mcp.peers", i);
		if (!jv_expect(p, json_type_object, file, path, e))
			continue;
		jv_check_keys(p, file, path, keys, e);
		jv_path_key(kp, path, "url");
		if (!json_object_object_get_ex(p, "url", &x)) {
			verr_add(e, file, kp, "missing required key");
			continue;
		}
		if (!jv_expect(x, json_type_string, file, kp, e))
			continue;
		if (json_object_get_string_len(x) >= (int)sizeof(pc->url) ||
		    peer_url_parse(json_object_get_string(x), &u, why, sizeof(why))) {
			verr_add(e, file, kp, "\"%.200s\": %s", json_object_get_string(x),
				 json_object_get_string_len(x) >= (int)sizeof(pc->url) ? "too long"
										       : why);
			continue;
		}
		snprintf(pc->url, sizeof(pc->url), "%s", json_object_get_string(x));
		pc->token_file[0] = '\0';
		pc->queue_max = 10000;
		if (json_object_object_get_ex(p, "queue_max", &x)) {
			int64_t q;

			jv_path_key(kp, path, "queue_max");
			if (jv_get_int(x, 10, 1000000, file, kp, &q, e))
				pc->queue_max = (unsigned int)q;
		}
		if (json_object_object_get_ex(p, "token_file", &x)) {
			jv_path_key(kp, path, "token_file");
			get_file(x, file, kp, pc->token_file, e);
		}
		cfg->n_peers++;
	}
}

static void parse_mcp(struct json_object *v, const char *file, struct config *cfg, struct verr *e)
{
	static const char *const extra[] = { "auth", "peers", "peers_token_file", NULL };
	struct json_object *x;
	size_t n0 = e->n;

	config_parse_listener(v, file, "mcp", &cfg->mcp, extra, e);
	if (!json_object_is_type(v, json_type_object))
		return;
	if (json_object_object_get_ex(v, "auth", &x) &&
	    jv_expect(x, json_type_string, file, "mcp.auth", e)) {
		const char *a = json_object_get_string(x);

		if (!strcmp(a, "none"))
			cfg->mcp_auth_none = true;
		else if (strcmp(a, "token"))
			verr_add(e, file, "mcp.auth", "\"%s\": expected \"token\" or \"none\"", a);
	}
	if (e->n == n0 && cfg->mcp_auth_none && cfg->mcp.enabled && !cfg->mcp.loopback)
		verr_add(e, file, "mcp.auth",
			 "\"none\" is only allowed on a loopback listener, not on %s",
			 cfg->mcp.spec);
	if (json_object_object_get_ex(v, "peers", &x)) {
		if (json_object_is_type(x, json_type_string)) {
			if (strcmp(json_object_get_string(x), "auto"))
				verr_add(e, file, "mcp.peers",
					 "\"%.64s\": expected an array of peers or \"auto\"",
					 json_object_get_string(x));
			else
				cfg->peers_auto = true;
		} else {
			parse_peers(x, file, cfg, e);
		}
	}
	if (json_object_object_get_ex(v, "peers_token_file", &x)) {
		if (!cfg->peers_auto)
			verr_add(e, file, "mcp.peers_token_file", "only with \"peers\": \"auto\"");
		else
			get_file(x, file, "mcp.peers_token_file", cfg->peers_token_file, e);
	}
}

static void parse_ringbuf(struct json_object *v, const char *file, struct config *cfg,
			  struct verr *e)
{
	int64_t x;

	if (!jv_get_int(v, 4096, 1LL << 28, file, "ringbuf_bytes", &x, e))
		return;
	if (x & (x - 1)) {
		verr_add(e, file, "ringbuf_bytes", "%lld is not a power of two", (long long)x);
		return;
	}
	cfg->ringbuf_bytes = (unsigned int)x;
}

/* "network_namespaces": ["/run/netns/blue", ...], each once (relative paths are taken from
 * the config file's directory, like every path here). */
static void parse_netns(struct json_object *v, const char *file, struct config *cfg, struct verr *e)
{
	char p[64];
	size_t n;

	if (!jv_expect(v, json_type_array, file, "network_namespaces", e))
		return;
	n = json_object_array_length(v);
	if (n > CONFIG_MAX_NETNS) {
		verr_add(e, file, "network_namespaces", "%zu namespaces, at most %d", n,
			 CONFIG_MAX_NETNS);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t before = e->n;

		jv_path_idx(p, "network_namespaces", i);
		jv_get_path(json_object_array_get_idx(v, i), file, p, cfg->netns[i], e);
		if (e->n != before)
			continue;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(cfg->netns[i], cfg->netns[j]))
				verr_add(e, file, p, "\"%s\" is listed twice", cfg->netns[i]);
	}
	cfg->n_netns = n;
}

static void parse_field(const char *key, struct json_object *v, const char *file,
			struct config *cfg, struct verr *e)
{
	size_t n = e->n;

	if (!strcmp(key, "host")) {
		jv_get_string(v, file, key, cfg->host, sizeof(cfg->host), e);
		if (e->n == n && !host_name_valid(cfg->host))
			verr_add(e, file, key, "invalid host name \"%s\"", cfg->host);
	} else if (!strcmp(key, "mode")) {
		get_mode(v, file, key, false, &cfg->mode, e);
	} else if (!strcmp(key, "components")) {
		parse_components(v, file, cfg->comp_mode, e);
	} else if (!strcmp(key, "bpffs")) {
		jv_get_path(v, file, key, cfg->bpffs, e);
	} else if (!strcmp(key, "state_dir")) {
		jv_get_path(v, file, key, cfg->state_dir, e);
	} else if (!strcmp(key, "runtime_dir")) {
		jv_get_path(v, file, key, cfg->runtime_dir, e);
	} else if (!strcmp(key, "services_dir")) {
		jv_get_path(v, file, key, cfg->services_dir, e);
	} else if (!strcmp(key, "databases_dir")) {
		jv_get_path(v, file, key, cfg->databases_dir, e);
	} else if (!strcmp(key, "verify")) {
		parse_verify(v, file, cfg, e);
	} else if (!strcmp(key, "cgroup_root")) {
		jv_get_path(v, file, key, cfg->cgroup_root_cfg, e);
	} else if (!strcmp(key, "managed_ports")) {
		parse_managed(v, file, cfg, e);
	} else if (!strcmp(key, "journal")) {
		parse_journal(v, file, cfg, e);
	} else if (!strcmp(key, "ringbuf_bytes")) {
		parse_ringbuf(v, file, cfg, e);
	} else if (!strcmp(key, "bpf_stats")) {
		if (jv_expect(v, json_type_boolean, file, key, e))
			cfg->bpf_stats = json_object_get_boolean(v);
	} else if (!strcmp(key, "mcp")) {
		parse_mcp(v, file, cfg, e);
	} else if (!strcmp(key, "http")) {
		config_parse_listener(v, file, "http", &cfg->http, NULL, e);
	} else if (!strcmp(key, "capacity")) {
		capacity_parse(v, file, &cfg->cap, e);
	} else if (!strcmp(key, "network_namespaces")) {
		parse_netns(v, file, cfg, e);
	} else if (!strcmp(key, "registry")) {
		config_parse_registry(v, file, &cfg->registry, e);
	}
}

static bool addr_wildcard(const char *a)
{
	return !strcmp(a, "0.0.0.0") || !strcmp(a, "::");
}

/* Two listeners that would take the same socket: the same port (not 0, which the kernel
 * picks) on the same address, or on a wildcard address that covers the other's. */
static void check_listeners_apart(const struct config *cfg, const char *file, struct verr *e)
{
	const struct listen_cfg *h = &cfg->http, *m = &cfg->mcp;

	if (!h->enabled || !m->enabled || !h->port || h->port != m->port)
		return;
	if (strcmp(h->addr, m->addr) && !addr_wildcard(h->addr) && !addr_wildcard(m->addr))
		return;
	verr_add(e, file, "mcp.listen",
		 "\"%s\" takes the socket of http.listen \"%s\": the dashboard/API and MCP "
		 "need a port each",
		 m->spec, h->spec);
}

int config_from_json(struct json_object *root, const char *file, struct config *cfg, struct verr *e)
{
	size_t n0 = e->n + e->dropped;

	config_defaults(cfg);
	snprintf(cfg->path, sizeof(cfg->path), "%s", file);
	if (!jv_expect(root, json_type_object, file, NULL, e))
		return -EINVAL;
	jv_check_keys(root, file, NULL, config_keys, e);
	json_object_object_foreach (root, key, val)
		parse_field(key, val, file, cfg, e);
	for (int c = 0; c < CAELUM_COMP_MAX; c++)
		if (cfg->comp_mode[c] == CAELUM_MODE_UNSET)
			cfg->comp_mode[c] = cfg->mode;
	/* The peers of "auto" come from the machine registry, which only etcd has. */
	if (cfg->peers_auto && !cfg->registry.etcd)
		verr_add(e, file, "mcp.peers",
			 "\"auto\" needs the etcd backend (the machine registry): registry.backend "
			 "is \"file\"");
	check_listeners_apart(cfg, file, e);
	return e->n + e->dropped == n0 ? 0 : -EINVAL;
}

int config_load(const char *path, struct config *cfg, struct verr *e)
{
	struct json_object *root;
	int err;

	config_defaults(cfg);
	err = jv_parse_file(path, &root, e);
	if (err)
		return err;
	err = config_from_json(root, path, cfg, e);
	json_object_put(root);
	return err;
}

/* Each opted-in namespace must exist and be a network namespace; its cookie is kept. */
static int resolve_netns(struct config *cfg, struct verr *e)
{
	size_t n = e->n;

	for (size_t i = 0; i < cfg->n_netns; i++) {
		char p[64], why[128];

		jv_path_idx(p, "network_namespaces", i);
		if (netns_cookie_of(cfg->netns[i], &cfg->netns_cookie[i], why, sizeof(why)))
			verr_add(e, cfg->path, p, "\"%s\": %s", cfg->netns[i], why);
	}
	return e->n == n ? 0 : -EINVAL;
}

int config_resolve(struct config *cfg, struct verr *e)
{
	char real[PATH_MAX];
	int level;

	if (capacity_resolve(&cfg->cap, cfg->path, e) || resolve_netns(cfg, e))
		return -EINVAL;
	if (cgroup2_mount_find(cfg->cg2_mount, sizeof(cfg->cg2_mount))) {
		verr_add(e, cfg->path, NULL,
			 "no cgroup2 mount found in /proc/self/mountinfo (mount -t cgroup2 none "
			 "/sys/fs/cgroup/unified)");
		return -ENOENT;
	}
	if (!cfg->cgroup_root_cfg[0]) {
		strcpy(cfg->cgroup_root, cfg->cg2_mount);
		cfg->root_level = 0;
		return 0;
	}
	if (!realpath(cfg->cgroup_root_cfg, real)) {
		verr_add(e, cfg->path, "cgroup_root", "\"%s\": %s", cfg->cgroup_root_cfg,
			 strerror(errno));
		return -ENOENT;
	}
	level = cgroup_level(cfg->cg2_mount, real);
	if (level < 0 || !cgroup_is_v2(real)) {
		verr_add(e, cfg->path, "cgroup_root",
			 "\"%s\" is not a directory on cgroup2 (mounted at %s)",
			 cfg->cgroup_root_cfg, cfg->cg2_mount);
		return -EINVAL;
	}
	strcpy(cfg->cgroup_root, real);
	cfg->root_level = (unsigned int)level;
	return 0;
}
