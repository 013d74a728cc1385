// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbprobe.h"
#include "dbspec.h"
#include "portrange.h"
#include "spec.h"

static const char *const db_keys[] = { "name", "kind", "address", "unmanaged", "resolve_interval_s",
				       NULL };

int db_address_parse(const char *s, char *host, size_t hlen, uint16_t *port, char *why,
		     size_t whylen)
{
	const char *colon, *h = s;
	size_t len;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':') {
			snprintf(why, whylen, "\"%s\": expected [IPv6]:port", s);
			return -EINVAL;
		}
		h = s + 1;
		len = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon) {
			snprintf(why, whylen, "\"%s\": expected host:port ([addr]:port for IPv6)",
				 s);
			return -EINVAL;
		}
		len = (size_t)(colon - s);
	}
	if (!len || len > DB_HOST_MAX || len >= hlen) {
		snprintf(why, whylen, "\"%s\": missing or too long host", s);
		return -EINVAL;
	}
	if (port_parse(colon + 1, port)) {
		snprintf(why, whylen, "\"%s\": invalid port \"%s\" (1-65535)", s, colon + 1);
		return -EINVAL;
	}
	memcpy(host, h, len);
	host[len] = '\0';
	return 0;
}

static void parse_str_field(struct json_object *obj, const char *key, const char *file,
			    const char **out, struct verr *e)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v)) {
		verr_add(e, file, key, "missing required key");
		return;
	}
	if (jv_expect(v, json_type_string, file, key, e))
		*out = json_object_get_string(v);
}

static void parse_interval(struct json_object *obj, const char *file, struct db_spec *d,
			   struct verr *e)
{
	struct json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(obj, "resolve_interval_s", &v) ||
	    !jv_expect(v, json_type_int, file, "resolve_interval_s", e))
		return;
	x = json_object_get_int64(v);
	if (x < 1 || x > DB_RESOLVE_INTERVAL_MAX_S)
		verr_add(e, file, "resolve_interval_s",
			 "invalid value %lld (expected 1-%d seconds)", (long long)x,
			 DB_RESOLVE_INTERVAL_MAX_S);
	else
		d->resolve_interval_s = (uint32_t)x;
}

int dbspec_from_json(struct json_object *obj, const char *file, struct db_spec *d, struct verr *e)
{
	size_t n0 = e->n + e->dropped;
	const char *name, *kind, *addr, *unmanaged = NULL;
	struct json_object *v;
	char why[256];

	memset(d, 0, sizeof(*d));
	d->unmanaged_allow = true;
	d->resolve_interval_s = DB_RESOLVE_INTERVAL_DEFAULT_S;
	if (!jv_expect(obj, json_type_object, file, NULL, e))
		return -EINVAL;
	jv_check_keys(obj, file, NULL, db_keys, e);
	parse_str_field(obj, "name", file, &name, e);
	if (name && !service_name_valid(name))
		verr_add(e, file, "name",
			 "invalid database name \"%s\" (expected [a-z0-9][a-z0-9-]{0,62})", name);
	else if (name)
		strcpy(d->name, name);
	parse_str_field(obj, "kind", file, &kind, e);
	if (kind && (d->kind = db_kind_parse(kind)) < 0)
		verr_add(e, file, "kind",
			 "unknown kind \"%s\" (expected postgresql, mysql, redis or tcp)", kind);
	parse_str_field(obj, "address", file, &addr, e);
	if (addr && db_address_parse(addr, d->host, sizeof(d->host), &d->port, why, sizeof(why)))
		verr_add(e, file, "address", "%s", why);
	if (json_object_object_get_ex(obj, "unmanaged", &v) &&
	    jv_expect(v, json_type_string, file, "unmanaged", e)) {
		unmanaged = json_object_get_string(v);
		if (strcmp(unmanaged, "allow") && strcmp(unmanaged, "deny"))
			verr_add(e, file, "unmanaged",
				 "invalid value \"%s\" (expected allow or deny)", unmanaged);
		else
			d->unmanaged_allow = !strcmp(unmanaged, "allow");
	}
	parse_interval(obj, file, d, e);
	return e->n + e->dropped == n0 ? 0 : -EINVAL;
}

static int load_file(const char *path, const char *fname, struct db_spec *d, struct verr *e)
{
	struct json_object *obj;
	size_t blen = strlen(fname);
	int err;

	/* The caller frees d on failure, also when the file cannot be parsed at all. */
	memset(d, 0, sizeof(*d));
	err = jv_parse_file(path, &obj, e);
	if (err)
		return err;
	err = dbspec_from_json(obj, path, d, e);
	json_object_put(obj);
	if (err)
		return err;
	if (strlen(d->name) != blen - 5 || strncmp(fname, d->name, blen - 5)) {
		verr_add(e, path, "name", "\"%s\" does not match the file name (expected %s.json)",
			 d->name, d->name);
		return -EINVAL;
	}
	d->source = strdup(path);
	return d->source ? 0 : -ENOMEM;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct db_spec *)a)->name, ((const struct db_spec *)b)->name);
}

int dbspec_load_dir(const char *dir, struct db_spec **out, size_t *n, struct verr *e)
{
	size_t n0 = e->n + e->dropped, cap = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char path[PATH_MAX];

		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		if (*n == cap) {
			struct db_spec *tmp =
				realloc(*out, (cap = cap ? cap * 2 : 8) * sizeof(*tmp));

			if (!tmp)
				break;
			*out = tmp;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!load_file(path, de->d_name, &(*out)[*n], e))
			(*n)++;
		else
			dbspec_free(&(*out)[*n]);
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), name_cmp);
	if (e->n + e->dropped != n0) {
		dbspecs_free(*out, *n);
		*out = NULL;
		*n = 0;
		return -EINVAL;
	}
	return 0;
}

struct json_object *dbspec_to_json(const struct db_spec *d)
{
	struct json_object *o = json_object_new_object();
	char addr[DB_HOST_MAX + 16];

	if (strchr(d->host, ':'))
		snprintf(addr, sizeof(addr), "[%s]:%u", d->host, d->port);
	else
		snprintf(addr, sizeof(addr), "%s:%u", d->host, d->port);
	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "kind", json_object_new_string(db_kind_name(d->kind)));
	json_object_object_add(o, "address", json_object_new_string(addr));
	json_object_object_add(o, "unmanaged",
			       json_object_new_string(d->unmanaged_allow ? "allow" : "deny"));
	json_object_object_add(o, "resolve_interval_s",
			       json_object_new_int64(d->resolve_interval_s));
	return o;
}

int dbspec_copy(struct db_spec *dst, const struct db_spec *src)
{
	*dst = *src;
	dst->source = src->source ? strdup(src->source) : NULL;
	return src->source && !dst->source ? -ENOMEM : 0;
}

void dbspec_free(struct db_spec *d)
{
	free(d->source);
	d->source = NULL;
}

void dbspecs_free(struct db_spec *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dbspec_free(&d[i]);
	free(d);
}

static void addr_add(struct db_addr *out, size_t max, size_t *n, const struct sockaddr *sa,
		     socklen_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (out[i].len == len && !memcmp(&out[i].sa, sa, len))
			return;
	if (*n == max || len > sizeof(out[0].sa))
		return;
	memset(&out[*n], 0, sizeof(out[*n]));
	memcpy(&out[*n].sa, sa, len);
	out[*n].len = len;
	(*n)++;
}

void db_addrs_from_ai(const struct addrinfo *ai, struct db_addr *out, size_t max, size_t *n)
{
	*n = 0;
	for (; ai; ai = ai->ai_next)
		addr_add(out, max, n, ai->ai_addr, ai->ai_addrlen);
}

bool db_host_is_localhost(const char *host)
{
	size_t len = strlen(host);

	if (len && host[len - 1] == '.')
		len--;
	return (len == 9 && !strncasecmp(host, "localhost", 9)) ||
	       (len > 10 && !strncasecmp(host + len - 10, ".localhost", 10));
}

bool db_resolve_static(const char *host, uint16_t port, struct db_addr *out, size_t max, size_t *n)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	*n = 0;
	if (db_host_is_localhost(host)) {
		s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s6.sin6_addr = in6addr_loopback;
		addr_add(out, max, n, (struct sockaddr *)&s4, sizeof(s4));
		addr_add(out, max, n, (struct sockaddr *)&s6, sizeof(s6));
		return true;
	}
	if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
		addr_add(out, max, n, (struct sockaddr *)&s4, sizeof(s4));
		return true;
	}
	if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
		addr_add(out, max, n, (struct sockaddr *)&s6, sizeof(s6));
		return true;
	}
	return false;
}

int db_resolve(const struct db_spec *d, struct db_addr *out, size_t max, size_t *n, char *why,
	       size_t whylen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	char port[8];
	int rc;

	if (db_resolve_static(d->host, d->port, out, max, n))
		return 0;
	snprintf(port, sizeof(port), "%u", d->port);
	rc = getaddrinfo(d->host, port, &hints, &res);
	if (rc) {
		snprintf(why, whylen, "cannot resolve \"%s\": %s", d->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	db_addrs_from_ai(res, out, max, n);
	freeaddrinfo(res);
	if (!*n) {
		snprintf(why, whylen, "cannot resolve \"%s\": no addresses", d->host);
		return -EHOSTUNREACH;
	}
	return 0;
}

bool db_addrs_same(const struct db_addr *a, size_t na, const struct db_addr *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		bool found = false;

		for (size_t j = 0; j < nb && !found; j++)
			found = a[i].len == b[j].len && !memcmp(&a[i].sa, &b[j].sa, a[i].len);
		if (!found)
			return false;
	}
	return true;
}

void db_addr_fmt(const struct db_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

/* FNV-1a: stable across restarts and hosts, so kernel counts keyed by it stay valid. */
uint32_t db_id_of(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h ? h : 1;
}
