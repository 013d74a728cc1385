// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbprobe.h"
#include "dbspec.h"
#include "portrange.h"
#include "spec.h"

static const char *const db_keys[] = { "name", "kind", "address", "unmanaged", NULL };

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
			snprintf(why, whylen, "\"%s\": expected host:port ([addr]:port for IPv6)", s);
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

int dbspec_from_json(struct json_object *obj, const char *file, struct db_spec *d,
		     struct verr *e)
{
	size_t n0 = e->n + e->dropped;
	const char *name, *kind, *addr, *unmanaged = NULL;
	struct json_object *v;
	char why[256];

	memset(d, 0, sizeof(*d));
	d->unmanaged_allow = true;
	if (!jv_expect(obj, json_type_object, file, NULL, e))
		return -EINVAL;
	jv_check_keys(obj, file, NULL, db_keys, e);
	parse_str_field(obj, "name", file, &name, e);
	if (name && !service_name_valid(name))
		verr_add(e, file, "name", "invalid database name \"%s\" (expected [a-z0-9][a-z0-9-]{0,62})",
			 name);
	else if (name)
		strcpy(d->name, name);
	parse_str_field(obj, "kind", file, &kind, e);
	if (kind && (d->kind = db_kind_parse(kind)) < 0)
		verr_add(e, file, "kind", "unknown kind \"%s\" (expected postgresql, mysql, redis or tcp)",
			 kind);
	parse_str_field(obj, "address", file, &addr, e);
	if (addr && db_address_parse(addr, d->host, sizeof(d->host), &d->port, why, sizeof(why)))
		verr_add(e, file, "address", "%s", why);
	if (json_object_object_get_ex(obj, "unmanaged", &v) &&
	    jv_expect(v, json_type_string, file, "unmanaged", e)) {
		unmanaged = json_object_get_string(v);
		if (strcmp(unmanaged, "allow") && strcmp(unmanaged, "deny"))
			verr_add(e, file, "unmanaged", "invalid value \"%s\" (expected allow or deny)",
				 unmanaged);
		else
			d->unmanaged_allow = !strcmp(unmanaged, "allow");
	}
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
			struct db_spec *tmp = realloc(*out, (cap = cap ? cap * 2 : 8) * sizeof(*tmp));

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

int db_resolve(const struct db_spec *d, struct db_addr *out, size_t max, size_t *n,
	       char *why, size_t whylen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	char port[8];
	int rc;

	*n = 0;
	snprintf(port, sizeof(port), "%u", d->port);
	rc = getaddrinfo(d->host, port, &hints, &res);
	if (rc) {
		snprintf(why, whylen, "cannot resolve \"%s\": %s", d->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai && *n < max; ai = ai->ai_next) {
		bool dup = false;

		for (size_t i = 0; i < *n && !dup; i++)
			dup = out[i].len == ai->ai_addrlen && !memcmp(&out[i].sa, ai->ai_addr, ai->ai_addrlen);
		if (dup)
			continue;
		memcpy(&out[*n].sa, ai->ai_addr, ai->ai_addrlen);
		out[*n].len = ai->ai_addrlen;
		(*n)++;
	}
	freeaddrinfo(res);
	return 0;
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
