// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelum.json "registry": the backend and, for etcd, how to reach it.
 *
 *   "registry": {"backend": "etcd", "endpoints": ["http://10.0.0.1:2379"],
 *                "prefix": "caelum/", "username": "node-a",
 *                "password_file": "/etc/caelum/etcd.pass",
 *                "tls": {"ca": "...", "cert": "...", "key": "..."},
 *                "lease_ttl_s": 10, "timeout_ms": 5000}
 *
 * Only the shape is checked here: an etcd that cannot be reached at start is not a
 * configuration error (caelumd enforces its local copy and says so).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "names.h"

/* A non-empty string of fewer than size bytes. */
static void get_str(struct json_object *v, const char *file, const char *path, char *dst,
		    size_t size, struct verr *e)
{
	size_t n = e->n;

	jv_get_string(v, file, path, dst, size, e);
	if (e->n == n && !*dst)
		verr_add(e, file, path, "empty");
}

/* http[s]://HOST:PORT, nothing after the port: the client appends /v3/... */
static void parse_endpoint(struct json_object *v, const char *file, const char *path, char *dst,
			   size_t size, struct verr *e)
{
	struct peer_url u;
	char why[128];
	size_t n = e->n;

	get_str(v, file, path, dst, size, e);
	if (e->n != n)
		return;
	if (strncmp(dst, "http://", 7) && strncmp(dst, "https://", 8)) {
		verr_add(e, file, path, "\"%s\": expected http://HOST:PORT or https://HOST:PORT",
			 dst);
		return;
	}
	if (peer_url_parse(dst, &u, why, sizeof(why))) {
		verr_add(e, file, path, "\"%s\": %s", dst, why);
		return;
	}
	if (strcmp(u.path, "/") && u.path[0]) {
		verr_add(e, file, path, "\"%s\": no path expected after the port", dst);
		return;
	}
	if (dst[strlen(dst) - 1] == '/')
		dst[strlen(dst) - 1] = '\0';
}

static void parse_endpoints(struct json_object *v, const char *file, struct registry_cfg *r,
			    struct verr *e)
{
	char path[JV_PATH_MAX];
	size_t n;

	if (!jv_expect(v, json_type_array, file, "registry.endpoints", e))
		return;
	n = json_object_array_length(v);
	if (!n || n > CONFIG_MAX_ETCD) {
		verr_add(e, file, "registry.endpoints", "%zu endpoints, expected 1 to %d", n,
			 CONFIG_MAX_ETCD);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		jv_path_idx(path, "registry.endpoints", i);
		parse_endpoint(json_object_array_get_idx(v, i), file, path, r->endpoints[i],
			       sizeof(r->endpoints[i]), e);
		for (size_t j = 0; j < i; j++)
			if (r->endpoints[i][0] && !strcmp(r->endpoints[i], r->endpoints[j]))
				verr_add(e, file, path, "\"%s\" is listed twice", r->endpoints[i]);
	}
	r->n_endpoints = n;
}

/* Printable, no spaces, ending in '/': keys are PREFIX + "services/..." and so on. */
static void parse_prefix(struct json_object *v, const char *file, struct registry_cfg *r,
			 struct verr *e)
{
	size_t n = e->n;

	get_str(v, file, "registry.prefix", r->prefix, sizeof(r->prefix), e);
	if (e->n != n)
		return;
	for (const char *c = r->prefix; *c; c++)
		if (*c <= ' ' || *c > '~') {
			verr_add(e, file, "registry.prefix",
				 "\"%s\": only printable characters without spaces", r->prefix);
			return;
		}
	if (r->prefix[strlen(r->prefix) - 1] != '/')
		verr_add(e, file, "registry.prefix", "\"%s\": must end with '/'", r->prefix);
}

static void parse_tls(struct json_object *v, const char *file, struct registry_cfg *r,
		      struct verr *e)
{
	static const char *const keys[] = { "ca", "cert", "key", NULL };
	struct json_object *x;

	if (!jv_expect(v, json_type_object, file, "registry.tls", e))
		return;
	jv_check_keys(v, file, "registry.tls", keys, e);
	if (json_object_object_get_ex(v, "ca", &x))
		jv_get_path(x, file, "registry.tls.ca", r->ca, e);
	if (json_object_object_get_ex(v, "cert", &x))
		jv_get_path(x, file, "registry.tls.cert", r->cert, e);
	if (json_object_object_get_ex(v, "key", &x))
		jv_get_path(x, file, "registry.tls.key", r->key, e);
	if (!r->cert[0] != !r->key[0])
		verr_add(e, file, "registry.tls",
			 "\"cert\" and \"key\" go together (\"%s\" is given without \"%s\")",
			 r->cert[0] ? "cert" : "key", r->cert[0] ? "key" : "cert");
}

static void parse_backend(struct json_object *v, const char *file, struct registry_cfg *r,
			  struct verr *e)
{
	const char *s;

	if (!jv_expect(v, json_type_string, file, "registry.backend", e))
		return;
	s = json_object_get_string(v);
	if (!strcmp(s, "etcd"))
		r->etcd = true;
	else if (strcmp(s, "file"))
		verr_add(e, file, "registry.backend", "\"%.64s\": expected \"file\" or \"etcd\"",
			 s);
}

/* What only the etcd backend uses must not appear with the file backend, and the reverse. */
static void check_backend(struct json_object *v, const char *file, const struct registry_cfg *r,
			  struct verr *e)
{
	static const char *const etcd_only[] = { "endpoints",	  "prefix", "username",
						 "password_file", "tls",    "lease_ttl_s",
						 "timeout_ms",	  NULL };
	char path[JV_PATH_MAX];

	if (!r->etcd) {
		for (size_t i = 0; etcd_only[i]; i++)
			if (json_object_object_get_ex(v, etcd_only[i], NULL)) {
				jv_path_key(path, "registry", etcd_only[i]);
				verr_add(e, file, path,
					 "only with \"backend\": \"etcd\" (the backend is "
					 "\"file\")");
			}
		return;
	}
	if (!r->n_endpoints && !json_object_object_get_ex(v, "endpoints", NULL))
		verr_add(e, file, "registry.endpoints", "missing required key (backend \"etcd\")");
	if (r->username[0] && !r->password_file[0])
		verr_add(e, file, "registry.password_file", "missing: \"username\" needs it");
	if (!r->username[0] && r->password_file[0])
		verr_add(e, file, "registry.username", "missing: \"password_file\" needs it");
	for (size_t i = 0; i < r->n_endpoints; i++)
		if ((r->ca[0] || r->cert[0]) && !strncmp(r->endpoints[i], "http://", 7)) {
			jv_path_idx(path, "registry.endpoints", i);
			verr_add(e, file, path, "\"%s\": \"tls\" is set, expected https://",
				 r->endpoints[i]);
		}
}

void config_parse_registry(struct json_object *v, const char *file, struct registry_cfg *r,
			   struct verr *e)
{
	static const char *const keys[] = { "backend",	   "endpoints",	    "prefix",
					    "username",	   "password_file", "tls",
					    "lease_ttl_s", "timeout_ms",    NULL };
	struct json_object *x;
	int64_t n;

	if (!jv_expect(v, json_type_object, file, "registry", e))
		return;
	jv_check_keys(v, file, "registry", keys, e);
	if (json_object_object_get_ex(v, "backend", &x))
		parse_backend(x, file, r, e);
	if (json_object_object_get_ex(v, "endpoints", &x))
		parse_endpoints(x, file, r, e);
	if (json_object_object_get_ex(v, "prefix", &x))
		parse_prefix(x, file, r, e);
	if (json_object_object_get_ex(v, "username", &x))
		get_str(x, file, "registry.username", r->username, sizeof(r->username), e);
	if (json_object_object_get_ex(v, "password_file", &x))
		jv_get_path(x, file, "registry.password_file", r->password_file, e);
	if (json_object_object_get_ex(v, "tls", &x))
		parse_tls(x, file, r, e);
	if (json_object_object_get_ex(v, "lease_ttl_s", &x) &&
	    jv_get_int(x, 5, 3600, file, "registry.lease_ttl_s", &n, e))
		r->lease_ttl_s = (unsigned int)n;
	if (json_object_object_get_ex(v, "timeout_ms", &x) &&
	    jv_get_int(x, 500, 60000, file, "registry.timeout_ms", &n, e))
		r->timeout_ms = (unsigned int)n;
	check_backend(v, file, r, e);
}
