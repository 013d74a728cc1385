// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The parts of a service spec beyond ports and resources: databases, credentials, health. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define MAX_CONNECTIONS_MAX 1000000

static void parse_db_item(struct json_object *o, const char *file, const char *path,
			  struct service_spec *s, struct verr *e)
{
	static const char *const keys[] = { "name", "max_connections", NULL };
	struct spec_db *d = &s->dbs[s->n_dbs];
	struct json_object *v;
	char p[JV_PATH_MAX];

	if (!jv_expect(o, json_type_object, file, path, e))
		return;
	jv_check_keys(o, file, path, keys, e);
	jv_path_key(p, path, "name");
	if (!json_object_object_get_ex(o, "name", &v)) {
		verr_add(e, file, p, "missing required key");
		return;
	}
	if (!jv_expect(v, json_type_string, file, p, e))
		return;
	if (!service_name_valid(json_object_get_string(v))) {
		verr_add(e, file, p, "invalid database name \"%s\"", json_object_get_string(v));
		return;
	}
	strcpy(d->name, json_object_get_string(v));
	for (size_t i = 0; i < s->n_dbs; i++)
		if (!strcmp(s->dbs[i].name, d->name))
			verr_add(e, file, p, "database '%s' is already listed in databases[%zu]",
				 d->name, i);
	jv_path_key(p, path, "max_connections");
	if (json_object_object_get_ex(o, "max_connections", &v))
		jv_get_int(v, 1, MAX_CONNECTIONS_MAX, file, p, &d->max_connections, e);
}

void spec_parse_databases(struct json_object *v, const char *file, struct service_spec *s,
			  struct verr *e)
{
	size_t n;

	if (!jv_expect(v, json_type_array, file, "databases", e))
		return;
	n = json_object_array_length(v);
	if (n > SPEC_MAX_DBS) {
		verr_add(e, file, "databases", "%zu databases, at most %d", n, SPEC_MAX_DBS);
		return;
	}
	s->dbs = calloc(n ? n : 1, sizeof(*s->dbs));
	if (!s->dbs) {
		verr_add(e, file, "databases", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char p[JV_PATH_MAX];

		jv_path_idx(p, "databases", i);
		parse_db_item(json_object_array_get_idx(v, i), file, p, s, e);
		/* Every item takes its slot, refused or not, so that dbs[i] is databases[i] in
		 * "already listed" messages; a refused spec is freed whole. */
		s->n_dbs++;
	}
}

void cred_mode_fmt(int mode, char *buf, size_t len)
{
	snprintf(buf, len, "%04o", mode & 07777);
}

static bool env_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (!len || len > CRED_ENV_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* "0600": octal, at most 4 digits, no bits beyond 07777. */
static int mode_parse(const char *s)
{
	char *end;
	long m;

	if (!*s || strlen(s) > 4 || strspn(s, "01234567") != strlen(s))
		return -1;
	m = strtol(s, &end, 8);
	return *end || m < 0 || m > 07777 ? -1 : (int)m;
}

static void parse_cred_file(struct json_object *o, const char *file, const char *path,
			    struct spec_cred *c, struct verr *e)
{
	struct json_object *v;
	char p[JV_PATH_MAX];
	const char *f = json_object_get_string(json_object_object_get(o, "file"));

	c->kind = CRED_FILE;
	c->mode = -1;
	c->owner_uid = -1;
	jv_path_key(p, path, "file");
	if (f[0] != '/' || strlen(f) > CRED_PATH_MAX)
		verr_add(e, file, p, "\"%s\" is not an absolute path", f);
	else
		strcpy(c->file, f);
	jv_path_key(p, path, "mode");
	if (json_object_object_get_ex(o, "mode", &v) &&
	    jv_expect(v, json_type_string, file, p, e) &&
	    (c->mode = mode_parse(json_object_get_string(v))) < 0)
		verr_add(e, file, p, "invalid mode \"%s\" (expected octal like \"0600\")",
			 json_object_get_string(v));
	jv_path_key(p, path, "owner");
	if (json_object_object_get_ex(o, "owner", &v) &&
	    jv_expect(v, json_type_string, file, p, e)) {
		struct passwd *pw = getpwnam(json_object_get_string(v));

		snprintf(c->owner, sizeof(c->owner), "%s", json_object_get_string(v));
		if (!pw)
			verr_add(e, file, p, "unknown user \"%s\"", c->owner);
		else
			c->owner_uid = pw->pw_uid;
	}
}

static void parse_cred_item(struct json_object *o, const char *file, const char *path,
			    struct service_spec *s, struct verr *e)
{
	static const char *const env_keys[] = { "env", NULL };
	static const char *const file_keys[] = { "file", "mode", "owner", NULL };
	struct spec_cred *c = &s->creds[s->n_creds];
	struct json_object *v;
	char p[JV_PATH_MAX];
	size_t n0 = e->n + e->dropped;

	if (!jv_expect(o, json_type_object, file, path, e))
		return;
	if (json_object_object_get_ex(o, "env", &v)) {
		jv_check_keys(o, file, path, env_keys, e);
		jv_path_key(p, path, "env");
		if (!jv_expect(v, json_type_string, file, p, e))
			return;
		if (!env_name_valid(json_object_get_string(v)))
			verr_add(e, file, p, "invalid environment variable name \"%s\"",
				 json_object_get_string(v));
		c->kind = CRED_ENV;
		snprintf(c->env, sizeof(c->env), "%s", json_object_get_string(v));
	} else if (json_object_object_get_ex(o, "file", &v)) {
		jv_check_keys(o, file, path, file_keys, e);
		jv_path_key(p, path, "file");
		if (!jv_expect(v, json_type_string, file, p, e))
			return;
		parse_cred_file(o, file, path, c, e);
	} else {
		verr_add(e, file, path,
			 "expected {\"env\": NAME} or {\"file\": PATH, ...}, got %.120s",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
		return;
	}
	if (e->n + e->dropped == n0)
		s->n_creds++;
}

void spec_parse_credentials(struct json_object *v, const char *file, struct service_spec *s,
			    struct verr *e)
{
	size_t n;

	if (!jv_expect(v, json_type_array, file, "credentials", e))
		return;
	n = json_object_array_length(v);
	if (n > SPEC_MAX_CREDS) {
		verr_add(e, file, "credentials", "%zu credentials, at most %d", n, SPEC_MAX_CREDS);
		return;
	}
	s->creds = calloc(n ? n : 1, sizeof(*s->creds));
	if (!s->creds) {
		verr_add(e, file, "credentials", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char p[JV_PATH_MAX];

		jv_path_idx(p, "credentials", i);
		parse_cred_item(json_object_array_get_idx(v, i), file, p, s, e);
	}
}

static void parse_health_exec(struct json_object *v, const char *file, struct spec_health *h,
			      struct verr *e)
{
	bool ok = true;
	size_t n;

	if (!jv_expect(v, json_type_array, file, "health.exec", e))
		return;
	n = json_object_array_length(v);
	if (!n || n > SPEC_MAX_ARGV) {
		verr_add(e, file, "health.exec", "%zu arguments, expected 1-%d", n, SPEC_MAX_ARGV);
		return;
	}
	h->argv = calloc(n + 1, sizeof(*h->argv));
	if (!h->argv) {
		verr_add(e, file, "health.exec", "out of memory");
		return;
	}
	h->kind = HEALTH_EXEC;
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(v, i);
		char p[JV_PATH_MAX];

		jv_path_idx(p, "health.exec", i);
		if (jv_expect(a, json_type_string, file, p, e))
			h->argv[i] = strdup(json_object_get_string(a));
		else
			ok = false;
	}
	if (!ok) { /* a hole: the spec is refused; free every string, the ones after it too */
		for (size_t i = 0; i < n; i++)
			free(h->argv[i]);
		free(h->argv);
		h->argv = NULL;
		return;
	}
	if (h->argv[0][0] != '/')
		verr_add(e, file, "health.exec[0]", "\"%s\" is not an absolute path", h->argv[0]);
}

/* health.user: a login name as useradd(8) takes it ([a-z_][a-z0-9_-]*, '$' last) or a decimal
 * uid below 2^32 - 1; only an exec check runs as someone. */
static void parse_health_user(struct json_object *v, const char *file, struct spec_health *h,
			      struct verr *e)
{
	const char *u;
	char buf[64];
	size_t n;
	bool ok;

	if (!jv_expect(v, json_type_string, file, "health.user", e))
		return;
	u = json_object_get_string(v);
	n = strlen(u);
	if (strspn(u, "0123456789") == n && n) {
		ok = n <= 10 && strtoull(u, NULL, 10) < 4294967295ULL;
	} else {
		size_t body = n && u[n - 1] == '$' ? n - 1 : n;

		ok = n && (u[0] == '_' || (u[0] >= 'a' && u[0] <= 'z')) &&
		     strspn(u, "abcdefghijklmnopqrstuvwxyz0123456789_-") == body;
	}
	if (!ok || n > SPEC_HEALTH_USER_MAX) {
		verr_add(e, file, "health.user",
			 "invalid user %s (expected a login name or a uid below 4294967295)",
			 jv_repr(v, buf, sizeof(buf)));
		return;
	}
	if (h->kind != HEALTH_EXEC) {
		verr_add(e, file, "health.user",
			 "%s: only an exec check runs as a user, not a %s check",
			 jv_repr(v, buf, sizeof(buf)), h->kind == HEALTH_TCP ? "tcp" : "http");
		return;
	}
	if (!(h->user = strdup(u)))
		verr_add(e, file, "health.user", "out of memory");
}

/* A probe target of at most SPEC_HEALTH_TARGET_MAX bytes, never cut short. */
static void set_target(struct spec_health *h, const char *v, const char *file, const char *path,
		       struct verr *e)
{
	size_t n = strlen(v);

	if (n > SPEC_HEALTH_TARGET_MAX)
		verr_add(e, file, path, "%zu bytes long, at most %d", n, SPEC_HEALTH_TARGET_MAX);
	else if (!(h->target = strdup(v)))
		verr_add(e, file, path, "out of memory");
}

/* "tcp and exec", "none": the kinds of check a health object gives. */
static const char *kinds_given(struct json_object *o, char *buf, size_t len)
{
	static const char *const kinds[] = { "tcp", "http", "exec" };

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (json_object_object_get_ex(o, kinds[i], NULL))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
				 buf[0] ? " and " : "", kinds[i]);
	return buf[0] ? buf : "none";
}

static void parse_health_target(struct json_object *o, const char *file, struct spec_health *h,
				struct verr *e)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, "tcp", &v) &&
	    jv_expect(v, json_type_string, file, "health.tcp", e)) {
		h->kind = HEALTH_TCP;
		if (!strchr(json_object_get_string(v), ':'))
			verr_add(e, file, "health.tcp", "\"%s\": expected host:port",
				 json_object_get_string(v));
		set_target(h, json_object_get_string(v), file, "health.tcp", e);
	} else if (json_object_object_get_ex(o, "http", &v) &&
		   jv_expect(v, json_type_string, file, "health.http", e)) {
		const char *url = json_object_get_string(v);

		h->kind = HEALTH_HTTP;
		if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
			verr_add(e, file, "health.http",
				 "\"%s\": expected an http:// or https:// URL", url);
		set_target(h, url, file, "health.http", e);
	} else if (json_object_object_get_ex(o, "exec", &v)) {
		parse_health_exec(v, file, h, e);
	}
}

void spec_parse_health(struct json_object *o, const char *file, struct service_spec *s,
		       struct verr *e)
{
	static const char *const keys[] = { "tcp",
					    "http",
					    "exec",
					    "user",
					    "interval_s",
					    "timeout_s",
					    "failures_before_critical",
					    NULL };
	struct spec_health *h = &s->health;
	struct json_object *v;
	char buf[32];
	int kinds;

	h->interval_s = 10;
	h->timeout_s = 2;
	h->failures_before_critical = 3;
	if (!jv_expect(o, json_type_object, file, "health", e))
		return;
	jv_check_keys(o, file, "health", keys, e);
	kinds = json_object_object_get_ex(o, "tcp", NULL) +
		json_object_object_get_ex(o, "http", NULL) +
		json_object_object_get_ex(o, "exec", NULL);
	if (kinds != 1) {
		verr_add(e, file, "health", "exactly one of tcp, http or exec is required, got %s",
			 kinds_given(o, buf, sizeof(buf)));
		return;
	}
	parse_health_target(o, file, h, e);
	if (json_object_object_get_ex(o, "user", &v))
		parse_health_user(v, file, h, e);
	if (json_object_object_get_ex(o, "interval_s", &v))
		jv_get_int(v, 1, 3600, file, "health.interval_s", &h->interval_s, e);
	if (json_object_object_get_ex(o, "timeout_s", &v))
		jv_get_int(v, 1, 300, file, "health.timeout_s", &h->timeout_s, e);
	if (json_object_object_get_ex(o, "failures_before_critical", &v))
		jv_get_int(v, 1, 100, file, "health.failures_before_critical",
			   &h->failures_before_critical, e);
	if (h->timeout_s > h->interval_s)
		verr_add(e, file, "health.timeout_s", "%lld is longer than interval_s %lld",
			 (long long)h->timeout_s, (long long)h->interval_s);
}

static struct json_object *creds_json(const struct service_spec *s)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->n_creds; i++) {
		const struct spec_cred *c = &s->creds[i];
		struct json_object *o = json_object_new_object();
		char m[8];

		if (c->kind == CRED_ENV) {
			json_object_object_add(o, "env", json_object_new_string(c->env));
		} else {
			json_object_object_add(o, "file", json_object_new_string(c->file));
			if (c->mode >= 0) {
				cred_mode_fmt(c->mode, m, sizeof(m));
				json_object_object_add(o, "mode", json_object_new_string(m));
			}
			if (c->owner[0])
				json_object_object_add(o, "owner",
						       json_object_new_string(c->owner));
		}
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *health_json(const struct spec_health *h)
{
	struct json_object *o = json_object_new_object();
	static const char *const names[] = { [HEALTH_TCP] = "tcp", [HEALTH_HTTP] = "http" };

	if (h->kind == HEALTH_EXEC) {
		struct json_object *argv = json_object_new_array();

		for (size_t i = 0; h->argv[i]; i++)
			json_object_array_add(argv, json_object_new_string(h->argv[i]));
		json_object_object_add(o, "exec", argv);
		if (h->user)
			json_object_object_add(o, "user", json_object_new_string(h->user));
	} else {
		json_object_object_add(o, names[h->kind],
				       json_object_new_string(h->target ? h->target : ""));
	}
	json_object_object_add(o, "interval_s", json_object_new_int64(h->interval_s));
	json_object_object_add(o, "timeout_s", json_object_new_int64(h->timeout_s));
	json_object_object_add(o, "failures_before_critical",
			       json_object_new_int64(h->failures_before_critical));
	return o;
}

void spec_ext_to_json(const struct service_spec *s, struct json_object *obj)
{
	if (s->n_dbs) {
		struct json_object *arr = json_object_new_array();

		for (size_t i = 0; i < s->n_dbs; i++) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "name", json_object_new_string(s->dbs[i].name));
			if (s->dbs[i].max_connections)
				json_object_object_add(
					o, "max_connections",
					json_object_new_int64(s->dbs[i].max_connections));
			json_object_array_add(arr, o);
		}
		json_object_object_add(obj, "databases", arr);
	}
	if (s->n_creds)
		json_object_object_add(obj, "credentials", creds_json(s));
	if (s->health.kind != HEALTH_NONE)
		json_object_object_add(obj, "health", health_json(&s->health));
}

int spec_ext_copy(struct service_spec *dst, const struct service_spec *src)
{
	int err = 0;

	/* dst is a shallow copy of src: replace every pointer before anything can fail. */
	dst->dbs = NULL;
	dst->creds = NULL;
	dst->health.target = NULL;
	dst->health.argv = NULL;
	dst->health.user = NULL;
	if (src->health.user && !(dst->health.user = strdup(src->health.user)))
		err = -ENOMEM;
	if (src->n_dbs && !(dst->dbs = malloc(src->n_dbs * sizeof(*dst->dbs))))
		err = -ENOMEM;
	else if (src->n_dbs)
		memcpy(dst->dbs, src->dbs, src->n_dbs * sizeof(*dst->dbs));
	if (src->n_creds && !(dst->creds = malloc(src->n_creds * sizeof(*dst->creds))))
		err = -ENOMEM;
	else if (src->n_creds)
		memcpy(dst->creds, src->creds, src->n_creds * sizeof(*dst->creds));
	if (src->health.target && !(dst->health.target = strdup(src->health.target)))
		err = -ENOMEM;
	if (src->health.argv) {
		size_t n = 0;

		while (src->health.argv[n])
			n++;
		dst->health.argv = calloc(n + 1, sizeof(*dst->health.argv));
		for (size_t i = 0; dst->health.argv && i < n; i++)
			if (!(dst->health.argv[i] = strdup(src->health.argv[i])))
				err = -ENOMEM;
		if (!dst->health.argv)
			err = -ENOMEM;
	}
	return err;
}

void spec_ext_free(struct service_spec *s)
{
	free(s->dbs);
	free(s->creds);
	for (size_t i = 0; s->health.argv && s->health.argv[i]; i++)
		free(s->health.argv[i]);
	free(s->health.argv);
	free(s->health.target);
	free(s->health.user);
	s->health.user = NULL;
	s->dbs = NULL;
	s->creds = NULL;
	s->n_dbs = s->n_creds = 0;
	s->health.argv = NULL;
	s->health.target = NULL;
}
