// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "registry.h"
#include "rejects.h"
#include "sorted.h"

#define SVC_PREFIX   "services/"
#define RESV_PREFIX  "reservations/"
#define HRESV_PREFIX "hostreservations/"
#define GUARD_PREFIX "portowners/"
#define RESV_KEY_MAX 320 /* hostreservations/<253-byte host>/<port>/<proto> */
#define RESV_RETRIES 8	 /* guard compares lost to other hosts' writers, then give up */
#define GPU_PREFIX   "gpus/"
#define DB_PREFIX    "databases/"
#define HDB_PREFIX   "hostdatabases/"
#define MAX_WATCHERS 8
/* After the backend answered, the watch has this long to bring the revision to the model
 * (the figure the etcd backend waited for it, blocking, before). */
#define WATCH_WAIT_MS 3000
/* The backend answers within its own budget; past this one the caller hears -ETIMEDOUT. */
#define ANSWER_WAIT_MS 10000

struct watcher {
	registry_watch_cb cb;
	void *ctx;
};

struct registry {
	struct registry_backend *b;
	const struct capacity *cap;
	struct reg_state st;
	struct watcher watchers[MAX_WATCHERS];
	size_t n_watchers;
	uint64_t last_commit;	    /* revision of this registry's last transaction */
	struct reg_commit *commits; /* submitted, continuation not yet run or answer not in */
	unsigned int answer_ms;	    /* how long a commit may wait for the backend's answer */
	bool relist_pending;	    /* the watch lost its history and listing again failed */
	uint64_t relists;	    /* times the model was listed again after losing the watch */
	char self[256];		    /* this host (registry_set_host), "" for none */
	struct reg_placement placement; /* where services run (registry_set_placement) */
	bool placed;
	struct rejects rejects; /* entries this caelumd cannot read (rejects.h) */
	bool inconsistent;	/* the model failed state_validate: checked again on changes */
	struct verr known;	/* what state_validate says of the model then */
};

const char *origin_name(enum reg_origin o)
{
	switch (o) {
	case ORIGIN_FILE:
		return "file";
	case ORIGIN_API:
		return "api";
	case ORIGIN_RUNTIME:
		return "runtime";
	}
	return "unknown";
}

/* ---- service names held by reservations ----
 * One copy of each name, counted: a reservation holds a pointer (8 bytes), not a 64-byte
 * array — 65,535 reservations of a few services. Like the registry, the loop's thread only. */

struct name_ref {
	char *name;
	size_t refs;
};

static struct {
	struct name_ref *v;
	size_t n, cap;
} names;

static int name_ref_cmp(const void *elem, const void *key)
{
	return strcmp(((const struct name_ref *)elem)->name, key);
}

/* The pooled copy of name with one more holder, or NULL (ENOMEM). */
static const char *name_hold(const char *name)
{
	bool found;
	size_t i = sorted_find(names.v, names.n, sizeof(*names.v), name, name_ref_cmp, &found);

	if (!found) {
		char *copy = strdup(name);

		if (!copy)
			return NULL;
		if (names.n == names.cap) {
			size_t cap = names.cap ? names.cap * 2 : 16;
			struct name_ref *tmp = realloc(names.v, cap * sizeof(*tmp));

			if (!tmp) {
				free(copy);
				return NULL;
			}
			names.v = tmp;
			names.cap = cap;
		}
		memmove(&names.v[i + 1], &names.v[i], (names.n - i) * sizeof(*names.v));
		names.v[i] = (struct name_ref){ copy, 0 };
		names.n++;
	}
	names.v[i].refs++;
	return names.v[i].name;
}

/* One holder fewer; the name is freed with its last holder. */
static void name_drop(const char *name)
{
	bool found;
	size_t i;

	if (!name)
		return;
	i = sorted_find(names.v, names.n, sizeof(*names.v), name, name_ref_cmp, &found);
	if (!found || --names.v[i].refs)
		return;
	free(names.v[i].name);
	memmove(&names.v[i], &names.v[i + 1], (names.n - i - 1) * sizeof(*names.v));
	if (!--names.n) {
		free(names.v);
		names.v = NULL;
		names.cap = 0;
	}
}

/* ---- state ---- */

static void state_free(struct reg_state *st)
{
	for (size_t i = 0; i < st->n_svcs; i++)
		spec_free(&st->svcs[i].spec);
	for (size_t i = 0; i < st->n_dbs; i++) {
		dbspec_free(&st->dbs[i].spec);
		name_drop(st->dbs[i].host);
	}
	for (size_t i = 0; i < st->n_resv; i++) {
		name_drop(st->resv[i].service);
		name_drop(st->resv[i].host);
	}
	free(st->guards);
	free(st->dbs);
	free(st->svcs);
	free(st->resv);
	free(st->gpus);
	free(st->spec_owner);
	memset(st, 0, sizeof(*st));
}

static int state_copy(struct reg_state *dst, const struct reg_state *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->svcs = calloc(src->n_svcs + 1, sizeof(*dst->svcs));
	dst->cap_svcs = src->n_svcs + 1;
	dst->resv = calloc(src->n_resv + 1, sizeof(*dst->resv));
	dst->gpus = calloc(src->n_gpus + 1, sizeof(*dst->gpus));
	dst->guards = calloc(src->n_guards + 1, sizeof(*dst->guards));
	if (!dst->svcs || !dst->resv || !dst->gpus || !dst->guards)
		goto nomem;
	memcpy(dst->guards, src->guards, src->n_guards * sizeof(*dst->guards));
	dst->n_guards = src->n_guards;
	dst->cap_guards = src->n_guards + 1;
	dst->self = src->self;
	memcpy(dst->gpus, src->gpus, src->n_gpus * sizeof(*dst->gpus));
	dst->n_gpus = src->n_gpus;
	for (size_t i = 0; i < src->n_svcs; i++) {
		dst->svcs[i] = src->svcs[i];
		if (spec_copy(&dst->svcs[i].spec, &src->svcs[i].spec))
			goto nomem;
		dst->n_svcs++;
	}
	for (size_t i = 0; i < src->n_resv; i++) {
		dst->resv[i] = src->resv[i];
		dst->resv[i].service = name_hold(src->resv[i].service);
		dst->resv[i].host = src->resv[i].host ? name_hold(src->resv[i].host) : NULL;
		dst->n_resv++;
		if (!dst->resv[i].service || (src->resv[i].host && !dst->resv[i].host))
			goto nomem;
	}
	dst->cap_resv = src->n_resv + 1;
	dst->dbs = calloc(src->n_dbs + 1, sizeof(*dst->dbs));
	dst->cap_dbs = src->n_dbs + 1;
	if (!dst->dbs)
		goto nomem;
	for (size_t i = 0; i < src->n_dbs; i++) {
		dst->dbs[i] = src->dbs[i];
		dst->dbs[i].host = NULL;
		if (dbspec_copy(&dst->dbs[i].spec, &src->dbs[i].spec))
			goto nomem;
		dst->n_dbs++;
		if (src->dbs[i].host && !(dst->dbs[i].host = name_hold(src->dbs[i].host)))
			goto nomem;
	}
	dst->rev = src->rev;
	return 0;
nomem:
	state_free(dst);
	return -ENOMEM;
}

static int svc_cmp(const void *a, const void *b)
{
	return strcmp(((const struct reg_service *)a)->spec.name,
		      ((const struct reg_service *)b)->spec.name);
}

/* Host names, the cluster-wide NULL before every host. */
static int host_cmp(const char *a, const char *b)
{
	if (!a || !b)
		return !!a - !!b;
	return strcmp(a, b);
}

/* (port, proto, host): a (port, proto)'s reservations are adjacent, cluster-wide first. */
static int resv_cmp(const void *a, const void *b)
{
	const struct reg_resv *x = a, *y = b;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if (x->proto != y->proto)
		return (int)x->proto - (int)y->proto;
	return host_cmp(x->host, y->host);
}

static int guard_cmp(const void *a, const void *b)
{
	const struct reg_guard *x = a, *y = b;

	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Insert elem into the sorted array *base[*n] of capacity *cap (doubled when full):
 * O(log n) + one memmove, amortized O(1) growth. */
static int sorted_insert(void **base, size_t *n, size_t *cap, size_t size, const void *elem,
			 int (*cmp)(const void *, const void *))
{
	char *tmp = *base;
	bool found;
	size_t i;

	if (*n + 1 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;

		tmp = realloc(*base, ncap * size);
		if (!tmp)
			return -ENOMEM;
		*base = tmp;
		*cap = ncap;
	}
	i = sorted_find(tmp, *n, size, elem, cmp, &found);
	memmove(tmp + (i + 1) * size, tmp + i * size, (*n - i) * size);
	memcpy(tmp + i * size, elem, size);
	(*n)++;
	return 0;
}

/* Remove the element at elem (inside base[*n]), keeping the order. */
static void sorted_remove(void *base, size_t *n, size_t size, void *elem)
{
	char *end = (char *)base + *n * size;

	memmove(elem, (char *)elem + size, (size_t)(end - (char *)elem) - size);
	(*n)--;
}

static struct reg_service *state_service(const struct reg_state *st, const char *name)
{
	struct reg_service k;

	snprintf(k.spec.name, sizeof(k.spec.name), "%s", name);
	return st->n_svcs ? bsearch(&k, st->svcs, st->n_svcs, sizeof(k), svc_cmp) : NULL;
}

static struct reg_resv *state_resv(const struct reg_state *st, uint16_t port, uint8_t proto,
				   const char *host)
{
	struct reg_resv k = { .port = port, .proto = proto, .host = host };

	return st->n_resv ? bsearch(&k, st->resv, st->n_resv, sizeof(k), resv_cmp) : NULL;
}

const struct reg_resv *registry_resv(const struct reg_state *st, uint16_t port, uint8_t proto,
				     const char *host)
{
	return state_resv(st, port, proto, host);
}

/* The guard's mod_revision as the model saw it last; KV_REV_ABSENT: never written. */
static uint64_t guard_rev(const struct reg_state *st, uint32_t slot)
{
	struct reg_guard k = { .slot = slot }, *g;

	g = st->n_guards ? bsearch(&k, st->guards, st->n_guards, sizeof(k), guard_cmp) : NULL;
	return g ? g->mod_rev : KV_REV_ABSENT;
}

/* Takes ownership of spec's buffers. */
static int state_put_service(struct reg_state *st, struct service_spec *spec, enum reg_origin o)
{
	struct reg_service *cur = state_service(st, spec->name), *tmp;

	if (cur) {
		spec_free(&cur->spec);
		cur->spec = *spec;
		cur->origin = o;
		return 0;
	}
	tmp = &(struct reg_service){ .spec = *spec, .origin = o };
	return sorted_insert((void **)&st->svcs, &st->n_svcs, &st->cap_svcs, sizeof(*tmp), tmp,
			     svc_cmp);
}

static void state_del_service(struct reg_state *st, const char *name)
{
	struct reg_service *cur = state_service(st, name);
	size_t w = 0;

	if (!cur)
		return;
	spec_free(&cur->spec);
	sorted_remove(st->svcs, &st->n_svcs, sizeof(*cur), cur);
	/* A service's runtime reservations and GPUs go with it. */
	for (size_t i = 0; i < st->n_resv; i++) {
		if (strcmp(st->resv[i].service, name)) {
			st->resv[w++] = st->resv[i];
		} else {
			name_drop(st->resv[i].service);
			name_drop(st->resv[i].host);
		}
	}
	st->n_resv = w;
	w = 0;
	for (size_t i = 0; i < st->n_gpus; i++)
		if (strcmp(st->gpus[i].service, name))
			st->gpus[w++] = st->gpus[i];
	st->n_gpus = w;
}

/* (name, host): a name's definitions are adjacent, the cluster-wide one first. */
static int db_cmp(const void *a, const void *b)
{
	const struct reg_db *x = a, *y = b;
	int c = strcmp(x->spec.name, y->spec.name);

	return c ? c : host_cmp(x->host, y->host);
}

/* The definition of name on host (NULL: the cluster-wide one), or NULL. */
static struct reg_db *state_db_at(const struct reg_state *st, const char *name, const char *host)
{
	struct reg_db k;

	snprintf(k.spec.name, sizeof(k.spec.name), "%s", name);
	k.host = host;
	return st->n_dbs ? bsearch(&k, st->dbs, st->n_dbs, sizeof(k), db_cmp) : NULL;
}

/* Any definition of name, cluster-wide or on some host (the first), or NULL. */
static struct reg_db *state_db_any(const struct reg_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_dbs; i++)
		if (!strcmp(st->dbs[i].spec.name, name))
			return &st->dbs[i];
	return NULL;
}

bool registry_db_here(const struct reg_state *st, const struct reg_db *d)
{
	return !d->host || (st->self && !strcmp(d->host, st->self));
}

/* Takes ownership of d's buffers. */
static int state_put_db(struct reg_state *st, struct db_spec *d, enum reg_origin o,
			const char *host)
{
	struct reg_db *cur = state_db_at(st, d->name, host), *tmp;
	int err;

	if (cur) {
		dbspec_free(&cur->spec);
		cur->spec = *d;
		cur->origin = o;
		return 0;
	}
	tmp = &(struct reg_db){ .spec = *d, .origin = o, .host = host ? name_hold(host) : NULL };
	if (host && !tmp->host)
		return -ENOMEM;
	err = sorted_insert((void **)&st->dbs, &st->n_dbs, &st->cap_dbs, sizeof(*tmp), tmp, db_cmp);
	if (err)
		name_drop(tmp->host);
	return err;
}

static void state_del_db(struct reg_state *st, const char *name, const char *host)
{
	struct reg_db *cur = state_db_at(st, name, host);

	if (!cur)
		return;
	dbspec_free(&cur->spec);
	name_drop(cur->host);
	sorted_remove(st->dbs, &st->n_dbs, sizeof(*cur), cur);
}

/* Index of (port, proto, host) in st->resv, or where it would go (*found = false). */
static size_t resv_pos(const struct reg_state *st, uint16_t port, uint8_t proto, const char *host,
		       bool *found)
{
	struct reg_resv k = { .port = port, .proto = proto, .host = host };

	return sorted_find(st->resv, st->n_resv, sizeof(k), &k, resv_cmp, found);
}

/* Insert or replace r (names copied into the pool), keeping the array sorted: O(log n)
 * search, one memmove. */
static int state_put_resv(struct reg_state *st, const struct reg_resv *r)
{
	const char *held = name_hold(r->service), *host = r->host ? name_hold(r->host) : NULL;
	bool found;
	size_t i = resv_pos(st, r->port, r->proto, r->host, &found);

	if (!held || (r->host && !host)) {
		name_drop(held);
		name_drop(host);
		return -ENOMEM;
	}
	if (found) {
		name_drop(st->resv[i].service);
		name_drop(st->resv[i].host);
	} else {
		if (st->n_resv + 1 > st->cap_resv) {
			size_t cap = st->cap_resv ? st->cap_resv * 2 : 64;
			struct reg_resv *tmp = realloc(st->resv, cap * sizeof(*tmp));

			if (!tmp) {
				name_drop(held);
				name_drop(host);
				return -ENOMEM;
			}
			st->resv = tmp;
			st->cap_resv = cap;
		}
		memmove(&st->resv[i + 1], &st->resv[i], (st->n_resv - i) * sizeof(*st->resv));
		st->n_resv++;
	}
	st->resv[i] = (struct reg_resv){ .port = r->port,
					 .proto = r->proto,
					 .host = host,
					 .service = held,
					 .mod_rev = r->mod_rev };
	return 0;
}

static void state_del_resv(struct reg_state *st, uint16_t port, uint8_t proto, const char *host)
{
	bool found;
	size_t i = resv_pos(st, port, proto, host, &found);

	if (!found)
		return;
	name_drop(st->resv[i].service);
	name_drop(st->resv[i].host);
	memmove(&st->resv[i], &st->resv[i + 1], (st->n_resv - i - 1) * sizeof(*st->resv));
	st->n_resv--;
	/* Give memory back when most reservations are released. */
	if (st->cap_resv > 256 && st->n_resv < st->cap_resv / 4) {
		struct reg_resv *tmp = realloc(st->resv, (st->cap_resv / 2) * sizeof(*tmp));

		if (tmp) {
			st->resv = tmp;
			st->cap_resv /= 2;
		}
	}
}

/* ---- (de)serialisation ---- */

/* A value's text: obj serialized (consumed). */
static char *value_text(struct json_object *obj)
{
	char *text = strdup(json_object_to_json_string_ext(
		obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(obj);
	return text;
}

/* Services and databases: the object's own fields, with "origin" and "source" beside them. */
static char *owned_value(struct json_object *obj, enum reg_origin origin, const char *source)
{
	json_object_object_add(obj, "origin", json_object_new_string(origin_name(origin)));
	json_object_object_add(obj, "source", source ? json_object_new_string(source) : NULL);
	return value_text(obj);
}

static char *service_value(const struct reg_service *s)
{
	return owned_value(spec_to_json(&s->spec), s->origin, s->spec.source);
}

static char *db_value(const struct reg_db *d)
{
	return owned_value(dbspec_to_json(&d->spec), d->origin, d->spec.source);
}

/* Reservations and GPU assignments: {"service": ..., "origin": "runtime"?}. */
static char *assignment_value(const char *service, bool runtime)
{
	struct json_object *obj = json_object_new_object();

	json_object_object_add(obj, "service", json_object_new_string(service));
	if (runtime)
		json_object_object_add(obj, "origin", json_object_new_string("runtime"));
	return value_text(obj);
}

static char *resv_value(const struct reg_resv *r)
{
	return assignment_value(r->service, true);
}

typedef int (*spec_parse_fn)(struct json_object *obj, const char *label, void *out, struct verr *e);

/*
 * The inverse of owned_value(): "origin" and "source" taken out, the rest parsed by parse
 * into spec; the source (or NULL) in *source, malloc'd. Registry values were written by us:
 * anything unexpected means corruption.
 */
static int owned_parse(const struct kv *kv, spec_parse_fn parse, void *spec,
		       enum reg_origin *origin_out, char **source_out, struct verr *e)
{
	struct json_object *obj, *origin = NULL, *source = NULL;
	int err;

	*source_out = NULL;
	err = jv_parse_string(kv->key, kv->value, strlen(kv->value), &obj, e);
	if (err)
		return err;
	/* Any writer may have put any JSON here: json-c asserts on an object op on others. */
	if (!json_object_is_type(obj, json_type_object)) {
		verr_add(e, kv->key, NULL, "value is %s, not an object",
			 json_type_to_name(json_object_get_type(obj)));
		json_object_put(obj);
		return -EINVAL;
	}
	json_object_object_get_ex(obj, "origin", &origin);
	json_object_object_get_ex(obj, "source", &source);
	*origin_out = origin && !strcmp(json_object_get_string(origin), "file") ? ORIGIN_FILE
										: ORIGIN_API;
	/* Keep the source alive past its removal from obj (which frees it). */
	source = json_object_is_type(source, json_type_string) ? json_object_get(source) : NULL;
	json_object_object_del(obj, "origin");
	json_object_object_del(obj, "source");
	err = parse(obj, kv->key, spec, e);
	if (!err && source)
		*source_out = strdup(json_object_get_string(source));
	json_object_put(source);
	json_object_put(obj);
	return err;
}

static bool has_prefix(const char *key, const char *prefix)
{
	return !strncmp(key, prefix, strlen(prefix));
}

static int db_spec_parse(struct json_object *obj, const char *label, void *out, struct verr *e)
{
	return dbspec_from_json(obj, label, out, e);
}

static int svc_spec_parse(struct json_object *obj, const char *label, void *out, struct verr *e)
{
	return spec_from_json(obj, label, out, e);
}

/* databases/<name> (host NULL) or hostdatabases/<host>/<name>: the name and the host (into
 * host_buf, NULL for a cluster-wide key); 0 or -EINVAL. */
/* "<prefix><host>/<rest>": the host (a valid host name) into host_buf, and <rest>; NULL when
 * the key has no such host segment. */
static const char *host_segment(const char *key, const char *prefix, char host_buf[256])
{
	const char *h = key + strlen(prefix), *slash = strchr(h, '/');
	size_t len = slash ? (size_t)(slash - h) : 0;

	if (!len || len > 255)
		return NULL;
	memcpy(host_buf, h, len);
	host_buf[len] = '\0';
	return host_name_valid(host_buf) ? slash + 1 : NULL;
}

static int db_key_parse(const char *key, const char **name, const char **host, char host_buf[256],
			struct verr *e)
{
	*host = NULL;
	*name = key + strlen(DB_PREFIX);
	if (has_prefix(key, HDB_PREFIX)) {
		if (!(*name = host_segment(key, HDB_PREFIX, host_buf)))
			goto bad;
		*host = host_buf;
	}
	if (**name && strlen(*name) <= DB_NAME_MAX)
		return 0;
bad:
	verr_add(e, key, NULL, "malformed database key");
	return -EINVAL;
}

/* out's host is pooled: the caller stores it in a state or drops it. */
static int db_parse(const struct kv *kv, struct reg_db *out, struct verr *e)
{
	char host[256];
	const char *name, *h;
	int err = db_key_parse(kv->key, &name, &h, host, e);

	out->host = NULL;
	if (!err)
		err = owned_parse(kv, db_spec_parse, &out->spec, &out->origin, &out->spec.source,
				  e);
	out->mod_rev = kv->mod_rev;
	if (!err && strcmp(out->spec.name, name)) {
		verr_add(e, kv->key, "name", "database '%s' stored under another name",
			 out->spec.name);
		err = -EINVAL;
	}
	if (!err && h && !(out->host = name_hold(h)))
		err = -ENOMEM;
	return err;
}

static char *gpu_value(const struct reg_gpu *g)
{
	return assignment_value(g->service, false);
}

/* The "service" of an assignment value (assignment_value()) into svc; 0 or -EINVAL. */
static int assignment_parse(const struct kv *kv, char svc[SERVICE_NAME_MAX + 1], struct verr *e)
{
	struct json_object *obj, *v;
	int err = 0;

	if (jv_parse_string(kv->key, kv->value, strlen(kv->value), &obj, e))
		return -EINVAL;
	if (!json_object_object_get_ex(obj, "service", &v) ||
	    !service_name_valid(json_object_get_string(v))) {
		verr_add(e, kv->key, "service", "missing or invalid");
		err = -EINVAL;
	} else {
		snprintf(svc, SERVICE_NAME_MAX + 1, "%s", json_object_get_string(v));
	}
	json_object_put(obj);
	return err;
}

static int gpu_parse(const struct kv *kv, struct reg_gpu *out, struct verr *e)
{
	const char *id = kv->key + strlen(GPU_PREFIX);

	if (!gpu_id_valid(id)) {
		verr_add(e, kv->key, NULL, "malformed GPU key");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (assignment_parse(kv, out->service, e))
		return -EINVAL;
	snprintf(out->gpu, sizeof(out->gpu), "%s", id);
	out->mod_rev = kv->mod_rev;
	return 0;
}

/* reservations/<port>/<proto> (host NULL) or hostreservations/<host>/<port>/<proto>. */
static void resv_key(char *buf, size_t len, uint16_t port, uint8_t proto, const char *host)
{
	if (host)
		snprintf(buf, len, HRESV_PREFIX "%s/%u/%s", host, port, proto_name(proto));
	else
		snprintf(buf, len, RESV_PREFIX "%u/%s", port, proto_name(proto));
}

/* portowners/<port>/<proto>: the guard every reservation of (port, proto) writes. */
static void guard_key(char *buf, size_t len, uint16_t port, uint8_t proto)
{
	snprintf(buf, len, GUARD_PREFIX "%u/%s", port, proto_name(proto));
}

/* "<port>/<proto>", the tail of a key; false when malformed (port 0 included). */
static bool port_proto_parse(const char *s, uint16_t *port, uint8_t *proto)
{
	unsigned int x;
	char p[8];
	int n = 0, pr;

	if (sscanf(s, "%u/%7s%n", &x, p, &n) != 2 || s[n] || x < 1 || x > 65535 ||
	    (pr = proto_parse(p)) < 0)
		return false;
	*port = (uint16_t)x;
	*proto = (uint8_t)pr;
	return true;
}

static int service_parse(const struct kv *kv, struct reg_service *out, struct verr *e)
{
	int err = owned_parse(kv, svc_spec_parse, &out->spec, &out->origin, &out->spec.source, e);

	out->mod_rev = kv->mod_rev;
	return err;
}

/* A reservation key -> out's port, proto and host (pointing into host_buf, NULL for a
 * cluster-wide key). */
static int resv_key_parse(const char *key, struct reg_resv *out, char host_buf[256], struct verr *e)
{
	const char *tail = key + strlen(RESV_PREFIX);

	out->host = NULL;
	if (has_prefix(key, HRESV_PREFIX)) {
		if (!(tail = host_segment(key, HRESV_PREFIX, host_buf)))
			goto bad;
		out->host = host_buf;
	}
	if (port_proto_parse(tail, &out->port, &out->proto))
		return 0;
bad:
	verr_add(e, key, NULL, "malformed reservation key");
	return -EINVAL;
}

/* One reservation from its key and value: out holds its names (pooled); the caller stores
 * them in a state or drops them (resv_drop). */
static int resv_parse(const struct kv *kv, struct reg_resv *out, struct verr *e)
{
	char svc[SERVICE_NAME_MAX + 1], host[256];
	struct reg_resv k = {};

	memset(out, 0, sizeof(*out));
	if (resv_key_parse(kv->key, &k, host, e) || assignment_parse(kv, svc, e))
		return -EINVAL;
	*out = (struct reg_resv){ .port = k.port,
				  .proto = k.proto,
				  .mod_rev = kv->mod_rev,
				  .host = k.host ? name_hold(k.host) : NULL,
				  .service = name_hold(svc) };
	return out->service && (!k.host || out->host) ? 0 : -ENOMEM;
}

static void resv_drop(struct reg_resv *r)
{
	name_drop(r->service);
	name_drop(r->host);
	r->service = r->host = NULL;
}

/* portowners/<port>/<proto> -> its slot and revision. */
static int guard_parse(const char *key, uint64_t mod_rev, struct reg_guard *out, struct verr *e)
{
	uint16_t port;
	uint8_t proto;

	if (!port_proto_parse(key + strlen(GUARD_PREFIX), &port, &proto)) {
		verr_add(e, key, NULL, "malformed port owner key");
		return -EINVAL;
	}
	*out = (struct reg_guard){ .slot = REG_SLOT(port, proto), .mod_rev = mod_rev };
	return 0;
}

/* Rebuild st->spec_owner from the services' specs. A fresh calloc, not a memset: the 512 KiB
 * come as untouched zero pages, resident only where a spec declares ports. */
static int owner_index(struct reg_state *st)
{
	free(st->spec_owner);
	st->spec_owner = calloc(REG_SLOTS, sizeof(*st->spec_owner));
	if (!st->spec_owner)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct service_spec *s = &st->svcs[i].spec;

		for (size_t j = 0; j < s->n_ports; j++)
			for (uint32_t p = s->ports[j].lo; p <= s->ports[j].hi; p++)
				st->spec_owner[REG_SLOT(p, s->ports[j].proto)] = (uint32_t)i + 1;
	}
	return 0;
}

/* The kinds of key the model holds, by prefix (anything else is ignored). */
enum key_kind { K_SVC, K_RESV, K_HRESV, K_GPU, K_DB, K_HDB, K_GUARD, K_OTHER };

static const char *const kind_prefix[K_OTHER] = {
	[K_SVC] = SVC_PREFIX,	  [K_RESV] = RESV_PREFIX, [K_HRESV] = HRESV_PREFIX,
	[K_GPU] = GPU_PREFIX,	  [K_DB] = DB_PREFIX,	  [K_HDB] = HDB_PREFIX,
	[K_GUARD] = GUARD_PREFIX,
};

static enum key_kind key_kind(const char *key)
{
	for (int k = 0; k < K_OTHER; k++)
		if (has_prefix(key, kind_prefix[k]))
			return (enum key_kind)k;
	return K_OTHER;
}

/* One kv of a range into the state (arrays sized by the caller, sorted after). */
static int state_add_kv(struct reg_state *st, const struct kv *kv, struct verr *e)
{
	int err = 0;

	switch (key_kind(kv->key)) {
	case K_SVC:
		if (!(err = service_parse(kv, &st->svcs[st->n_svcs], e))) {
			st->n_svcs++;
		} else {
			spec_free(&st->svcs[st->n_svcs].spec);
			memset(&st->svcs[st->n_svcs], 0, sizeof(st->svcs[0]));
		}
		break;
	case K_RESV:
	case K_HRESV:
		/* a failed parse leaves no names held */
		if (!(err = resv_parse(kv, &st->resv[st->n_resv], e)))
			st->n_resv++;
		else
			resv_drop(&st->resv[st->n_resv]);
		break;
	case K_GPU:
		if (!(err = gpu_parse(kv, &st->gpus[st->n_gpus], e)))
			st->n_gpus++;
		break;
	case K_DB:
	case K_HDB:
		if (!(err = db_parse(kv, &st->dbs[st->n_dbs], e)))
			st->n_dbs++;
		else
			dbspec_free(&st->dbs[st->n_dbs].spec);
		break;
	case K_GUARD:
		if (!(err = guard_parse(kv->key, kv->mod_rev, &st->guards[st->n_guards], e)))
			st->n_guards++;
		break;
	case K_OTHER:
		p_debug("registry: ignoring unknown key '%s'", kv->key);
		break;
	}
	return err;
}

/* kv cannot be read (ke says why): recorded in rj, left out of the model. 0 or -ENOMEM. */
static int reject_kv(struct rejects *rj, const char *key, uint64_t mod_rev, struct verr *ke)
{
	char *why = verr_join(ke);
	int err;

	p_warn("registry: '%s' (revision %llu) cannot be read and is not applied: %s", key,
	       (unsigned long long)mod_rev, why ? why : "malformed");
	err = rejects_put(rj, key, mod_rev, why ? why : "malformed");
	free(why);
	verr_free(ke);
	return err;
}

/* The whole model from one range: every object at the same revision. An entry that cannot
 * be read goes to rj instead (rejects.h); the rest loads. */
static int state_load(struct registry_backend *b, struct reg_state *st, struct rejects *rj,
		      struct verr *e)
{
	size_t n = 0, count[K_OTHER + 1] = {};
	struct kv *kvs = NULL;
	int err;

	memset(st, 0, sizeof(*st));
	err = b->ops->range(b, "", &kvs, &n, &st->rev);
	if (err)
		return err;
	/* Each array sized for its own kind: a service is 1.7 KB, a reservation 80 bytes. */
	for (size_t i = 0; i < n; i++)
		count[key_kind(kvs[i].key)]++;
	count[K_RESV] += count[K_HRESV];
	count[K_DB] += count[K_HDB];
	st->svcs = calloc(count[K_SVC] + 1, sizeof(*st->svcs));
	st->resv = calloc(count[K_RESV] + 1, sizeof(*st->resv));
	st->gpus = calloc(count[K_GPU] + 1, sizeof(*st->gpus));
	st->dbs = calloc(count[K_DB] + 1, sizeof(*st->dbs));
	st->guards = calloc(count[K_GUARD] + 1, sizeof(*st->guards));
	st->cap_resv = count[K_RESV] + 1;
	st->cap_svcs = count[K_SVC] + 1;
	st->cap_dbs = count[K_DB] + 1;
	st->cap_guards = count[K_GUARD] + 1;
	if (!st->svcs || !st->resv || !st->gpus || !st->dbs || !st->guards)
		err = -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		struct verr ke = {};

		err = state_add_kv(st, &kvs[i], &ke);
		if (err == -EINVAL) {
			err = reject_kv(rj, kvs[i].key, kvs[i].mod_rev, &ke);
			continue;
		}
		for (size_t j = 0; j < ke.n; j++)
			verr_add_raw(e, ke.msgs[j]);
		verr_free(&ke);
	}
	kvs_free(kvs, n);
	if (err)
		goto out;
	qsort(st->dbs, st->n_dbs, sizeof(*st->dbs), db_cmp);
	qsort(st->svcs, st->n_svcs, sizeof(*st->svcs), svc_cmp);
	qsort(st->resv, st->n_resv, sizeof(*st->resv), resv_cmp);
	qsort(st->gpus, st->n_gpus, sizeof(*st->gpus), reg_gpu_cmp);
	qsort(st->guards, st->n_guards, sizeof(*st->guards), guard_cmp);
	err = owner_index(st);
out:
	if (err)
		state_free(st);
	return err;
}

/* ---- watch events -> model ---- */

static int delta_add_slot(struct reg_delta *d, uint32_t slot)
{
	if (d->n_slots == d->cap_slots) {
		size_t cap = d->cap_slots ? d->cap_slots * 2 : 16;
		uint32_t *tmp = realloc(d->slots, cap * sizeof(*tmp));

		if (!tmp)
			return -ENOMEM;
		d->slots = tmp;
		d->cap_slots = cap;
	}
	d->slots[d->n_slots++] = slot;
	return 0;
}

static int delta_add_spec(struct reg_delta *d, const struct service_spec *s)
{
	int err = 0;

	for (size_t j = 0; j < s->n_ports && !err; j++)
		for (uint32_t p = s->ports[j].lo; p <= s->ports[j].hi && !err; p++)
			err = delta_add_slot(d, REG_SLOT(p, s->ports[j].proto));
	return err;
}

static int event_service(struct reg_state *st, const struct kv_event *ev, struct reg_delta *d,
			 struct verr *e)
{
	struct reg_service *cur = state_service(st, ev->key + strlen(SVC_PREFIX)), nsvc;
	struct kv kv = { .key = ev->key, .value = ev->value, .mod_rev = ev->mod_rev };
	int err = 0;

	d->services = true;
	if (cur)
		err = delta_add_spec(d, &cur->spec);
	if (err)
		return err;
	if (ev->type == KV_DEL) {
		if (cur) {
			spec_free(&cur->spec);
			sorted_remove(st->svcs, &st->n_svcs, sizeof(*cur), cur);
		}
		return 0;
	}
	memset(&nsvc, 0, sizeof(nsvc));
	err = service_parse(&kv, &nsvc, e);
	if (!err)
		err = delta_add_spec(d, &nsvc.spec);
	if (!err)
		err = state_put_service(st, &nsvc.spec, nsvc.origin);
	if (err) {
		spec_free(&nsvc.spec);
		return err;
	}
	state_service(st, nsvc.spec.name)->mod_rev = ev->mod_rev;
	return 0;
}

static int event_resv(struct reg_state *st, const struct kv_event *ev, struct reg_delta *d,
		      struct verr *e)
{
	struct kv kv = { .key = ev->key, .value = ev->value, .mod_rev = ev->mod_rev };
	struct reg_resv r = {};
	char host[256];
	int err;

	if (ev->type == KV_DEL) {
		err = resv_key_parse(ev->key, &r, host, e);
		if (!err)
			err = delta_add_slot(d, REG_SLOT(r.port, r.proto));
		if (!err)
			state_del_resv(st, r.port, r.proto, r.host);
		return err;
	}
	/* Any host's: the slot's owner here changes only for ours, and the ports component
	 * writes only entries that differ. */
	err = resv_parse(&kv, &r, e);
	if (!err)
		err = delta_add_slot(d, REG_SLOT(r.port, r.proto));
	if (!err)
		err = state_put_resv(st, &r);
	resv_drop(&r);
	return err;
}

static int event_guard(struct reg_state *st, const struct kv_event *ev, struct verr *e)
{
	struct reg_guard g;
	bool found;
	size_t i;
	int err = guard_parse(ev->key, ev->mod_rev, &g, e);

	if (err)
		return err;
	i = sorted_find(st->guards, st->n_guards, sizeof(g), &g, guard_cmp, &found);
	if (found && ev->type == KV_DEL)
		sorted_remove(st->guards, &st->n_guards, sizeof(g), &st->guards[i]);
	else if (found)
		st->guards[i].mod_rev = ev->mod_rev;
	else if (ev->type == KV_PUT)
		err = sorted_insert((void **)&st->guards, &st->n_guards, &st->cap_guards, sizeof(g),
				    &g, guard_cmp);
	return err;
}

static int event_gpu(struct reg_state *st, const struct kv_event *ev, struct reg_delta *d,
		     struct verr *e)
{
	struct kv kv = { .key = ev->key, .value = ev->value, .mod_rev = ev->mod_rev };
	struct reg_gpu g = {}, *tmp;
	size_t w = 0;
	int err = 0;

	if (ev->type == KV_PUT)
		err = gpu_parse(&kv, &g, e);
	else
		snprintf(g.gpu, sizeof(g.gpu), "%s", ev->key + strlen(GPU_PREFIX));
	if (err)
		return err;
	d->gpus = true;
	for (size_t i = 0; i < st->n_gpus; i++)
		if (strcmp(st->gpus[i].gpu, g.gpu))
			st->gpus[w++] = st->gpus[i];
	st->n_gpus = w;
	if (ev->type == KV_DEL)
		return 0;
	tmp = realloc(st->gpus, (st->n_gpus + 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	st->gpus = tmp;
	st->gpus[st->n_gpus++] = g;
	qsort(st->gpus, st->n_gpus, sizeof(*st->gpus), reg_gpu_cmp);
	return 0;
}

static int event_db(struct reg_state *st, const struct kv_event *ev, struct reg_delta *d,
		    struct verr *e)
{
	struct kv kv = { .key = ev->key, .value = ev->value, .mod_rev = ev->mod_rev };
	struct reg_db db;
	char host[256];
	const char *name, *h;
	int err;

	d->dbs = true;
	if (ev->type == KV_DEL) {
		if (!db_key_parse(ev->key, &name, &h, host, e))
			state_del_db(st, name, h);
		return 0;
	}
	memset(&db, 0, sizeof(db));
	err = db_parse(&kv, &db, e);
	if (!err)
		err = state_put_db(st, &db.spec, db.origin, db.host);
	if (err) {
		dbspec_free(&db.spec);
		name_drop(db.host);
		return err;
	}
	state_db_at(st, db.spec.name, db.host)->mod_rev = ev->mod_rev;
	name_drop(db.host); /* the state holds its own */
	return 0;
}

static int model_apply(struct reg_state *st, const struct kv_event *ev, struct reg_delta *d,
		       struct verr *e)
{
	switch (key_kind(ev->key)) {
	case K_SVC:
		return event_service(st, ev, d, e);
	case K_RESV:
	case K_HRESV:
		return event_resv(st, ev, d, e);
	case K_GPU:
		return event_gpu(st, ev, d, e);
	case K_DB:
	case K_HDB:
		return event_db(st, ev, d, e);
	case K_GUARD:
		return event_guard(st, ev, e);
	case K_OTHER:
		break;
	}
	return 0;
}

/* ---- validation ---- */

static int state_validate(const struct reg_state *st, struct verr *e)
{
	struct service_spec *specs = calloc(st->n_svcs + 1, sizeof(*specs));
	size_t n0 = e->n + e->dropped;
	const char **owner;

	if (!specs)
		return -ENOMEM;
	/* The kernel's service maps have room for this many, with Caelum's own cgroups. */
	if (st->n_svcs > REG_MAX_SERVICES) {
		free(specs);
		verr_add(e, "registry", "services",
			 "%zu services: at most %d fit the kernel's maps", st->n_svcs,
			 REG_MAX_SERVICES);
		return -EINVAL;
	}
	for (size_t i = 0; i < st->n_svcs; i++)
		specs[i] = st->svcs[i].spec; /* shallow: read only */
	spec_check_conflicts(specs, st->n_svcs, e);
	free(specs);
	if (e->n + e->dropped != n0)
		return -EINVAL;

	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct service_spec *s = &st->svcs[i].spec;

		for (size_t j = 0; j < s->n_dbs; j++) {
			char p[JV_PATH_MAX];

			if (state_db_any(st, s->dbs[j].name))
				continue;
			jv_path_idx(p, "databases", j);
			strcat(p, ".name");
			verr_add(e, s->source ? s->source : s->name, p, "unknown database '%s'",
				 s->dbs[j].name);
		}
	}
	owner = calloc(REG_SLOTS, sizeof(*owner));
	if (!owner)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct service_spec *s = &st->svcs[i].spec;

		for (size_t j = 0; j < s->n_ports; j++)
			for (uint32_t p = s->ports[j].lo; p <= s->ports[j].hi; p++)
				owner[REG_SLOT(p, s->ports[j].proto)] = s->name;
	}
	for (size_t i = 0; i < st->n_resv; i++) {
		const struct reg_resv *r = &st->resv[i];
		const char *o = owner[REG_SLOT(r->port, r->proto)];
		const struct reg_service *svc = state_service(st, r->service);
		const struct reg_resv *all =
			r->host ? state_resv(st, r->port, r->proto, NULL) : NULL;
		char key[RESV_KEY_MAX];

		resv_key(key, sizeof(key), r->port, r->proto, r->host);
		if (!svc)
			verr_add(e, "registry", key, "reserved for unknown service '%s'",
				 r->service);
		else if (o && strcmp(o, r->service)) {
			/* Name the file that declares the port: that is the one to edit. */
			const struct reg_service *decl = state_service(st, o);

			verr_add(e, decl && decl->spec.source ? decl->spec.source : "registry",
				 NULL,
				 "%u/%s is declared by service '%s' but reserved at runtime by "
				 "service '%s' (release it first: caelumctl port release %u/%s)",
				 r->port, proto_name(r->proto), o, r->service, r->port,
				 proto_name(r->proto));
		} else if (all && strcmp(all->service, r->service)) {
			verr_add(e, "registry", key,
				 "reserved on every host by service '%s' and on host '%s' by "
				 "service "
				 "'%s'",
				 all->service, r->host, r->service);
		}
	}
	free(owner);
	return e->n + e->dropped == n0 ? 0 : -EINVAL;
}

/* ---- commit ---- */

struct op_list {
	struct kv_op *ops;
	char **bufs; /* keys and values we own */
	size_t n, nb;
};

static int ops_add(struct op_list *l, enum kv_op_type t, char *key, char *value, uint64_t rev)
{
	struct kv_op *ops = realloc(l->ops, (l->n + 1) * sizeof(*ops));
	char **bufs = realloc(l->bufs, (l->nb + 2) * sizeof(*bufs));

	if (ops)
		l->ops = ops;
	if (bufs)
		l->bufs = bufs;
	if (!ops || !bufs || !key || (t == KV_PUT && !value)) {
		free(key);
		free(value);
		return -ENOMEM;
	}
	l->bufs[l->nb++] = key;
	if (value)
		l->bufs[l->nb++] = value;
	l->ops[l->n++] = (struct kv_op){ .type = t, .key = key, .value = value, .expect_rev = rev };
	return 0;
}

static void ops_free(struct op_list *l)
{
	for (size_t i = 0; i < l->nb; i++)
		free(l->bufs[i]);
	free(l->bufs);
	free(l->ops);
}

static char *svc_key(const char *name)
{
	char *k;

	return asprintf(&k, SVC_PREFIX "%s", name) < 0 ? NULL : k;
}

static int diff_services(const struct reg_state *old, const struct reg_state *new,
			 struct op_list *l)
{
	int err = 0;

	for (size_t i = 0; i < new->n_svcs && !err; i++) {
		const struct reg_service *n = &new->svcs[i];
		const struct reg_service *o = state_service(old, n->spec.name);
		char *nv = service_value(n), *ov = o ? service_value(o) : NULL;

		if (!o || !ov || !nv || strcmp(nv, ov)) {
			err = ops_add(l, KV_PUT, svc_key(n->spec.name), nv,
				      o ? o->mod_rev : KV_REV_ABSENT);
			nv = NULL;
		}
		free(nv);
		free(ov);
	}
	for (size_t i = 0; i < old->n_svcs && !err; i++)
		if (!state_service(new, old->svcs[i].spec.name))
			err = ops_add(l, KV_DEL, svc_key(old->svcs[i].spec.name), NULL,
				      old->svcs[i].mod_rev);
	return err;
}

static int diff_resv(const struct reg_state *old, const struct reg_state *new, struct op_list *l)
{
	char key[RESV_KEY_MAX];
	int err = 0;

	for (size_t i = 0; i < new->n_resv && !err; i++) {
		const struct reg_resv *n = &new->resv[i];
		const struct reg_resv *o = state_resv(old, n->port, n->proto, n->host);

		if (o && !strcmp(o->service, n->service))
			continue;
		resv_key(key, sizeof(key), n->port, n->proto, n->host);
		err = ops_add(l, KV_PUT, strdup(key), resv_value(n),
			      o ? o->mod_rev : KV_REV_ABSENT);
	}
	for (size_t i = 0; i < old->n_resv && !err; i++) {
		const struct reg_resv *o = &old->resv[i];

		if (state_resv(new, o->port, o->proto, o->host))
			continue;
		resv_key(key, sizeof(key), o->port, o->proto, o->host);
		err = ops_add(l, KV_DEL, strdup(key), NULL, o->mod_rev);
	}
	return err;
}

static struct reg_gpu *state_gpu(const struct reg_state *st, const char *id)
{
	for (size_t i = 0; i < st->n_gpus; i++)
		if (!strcmp(st->gpus[i].gpu, id))
			return &st->gpus[i];
	return NULL;
}

static char *gpu_key(const char *id)
{
	char *k;

	return asprintf(&k, GPU_PREFIX "%s", id) < 0 ? NULL : k;
}

static int diff_gpus(const struct reg_state *old, const struct reg_state *new, struct op_list *l)
{
	int err = 0;

	for (size_t i = 0; i < new->n_gpus && !err; i++) {
		const struct reg_gpu *n = &new->gpus[i], *o = state_gpu(old, n->gpu);

		if (o && !strcmp(o->service, n->service))
			continue;
		err = ops_add(l, KV_PUT, gpu_key(n->gpu), gpu_value(n),
			      o ? o->mod_rev : KV_REV_ABSENT);
	}
	for (size_t i = 0; i < old->n_gpus && !err; i++)
		if (!state_gpu(new, old->gpus[i].gpu))
			err = ops_add(l, KV_DEL, gpu_key(old->gpus[i].gpu), NULL,
				      old->gpus[i].mod_rev);
	return err;
}

static char *db_key(const struct reg_db *d)
{
	char *k;
	int n = d->host ? asprintf(&k, HDB_PREFIX "%s/%s", d->host, d->spec.name)
			: asprintf(&k, DB_PREFIX "%s", d->spec.name);

	return n < 0 ? NULL : k;
}

static int diff_dbs(const struct reg_state *old, const struct reg_state *new, struct op_list *l)
{
	int err = 0;

	for (size_t i = 0; i < new->n_dbs && !err; i++) {
		const struct reg_db *n = &new->dbs[i], *o = state_db_at(old, n->spec.name, n->host);
		char *nv = db_value(n), *ov = o ? db_value(o) : NULL;

		if (!o || !ov || !nv || strcmp(nv, ov)) {
			err = ops_add(l, KV_PUT, db_key(n), nv, o ? o->mod_rev : KV_REV_ABSENT);
			nv = NULL;
		}
		free(nv);
		free(ov);
	}
	for (size_t i = 0; i < old->n_dbs && !err; i++)
		if (!state_db_at(new, old->dbs[i].spec.name, old->dbs[i].host))
			err = ops_add(l, KV_DEL, db_key(&old->dbs[i]), NULL, old->dbs[i].mod_rev);
	return err;
}

/*
 * A commit in flight, from txn_submit until both the backend answered (its memory is the
 * backend's argument until then) and the continuation ran (or the caller cancelled it).
 */
struct reg_commit {
	struct registry *r;
	registry_commit_fn fn; /* NULL once cancelled */
	void *arg;
	char *failed_key; /* the key of each op, for a lost compare's message */
	char **keys;
	size_t n_keys;
	/* a reservation: re-validated against the model when its compare lost */
	bool resv;
	uint16_t port;
	uint8_t proto;
	char host[256]; /* "" for every host */
	char service[SERVICE_NAME_MAX + 1];
	uint64_t guard;	       /* the guard's revision it compared */
	unsigned int attempts; /* submitted again after a lost compare */
	bool answered, fired;
	int err;
	uint64_t rev;
	uint64_t answer_by, watch_by; /* mono ms: no answer / no revision by then */
	struct reg_commit *next;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void commit_answered(void *arg, int err, uint64_t rev, size_t failed)
{
	struct reg_commit *c = arg;

	c->answered = true;
	c->err = err;
	c->rev = rev;
	c->failed_key = failed < c->n_keys ? c->keys[failed] : NULL;
	c->watch_by = now_ms() + WATCH_WAIT_MS;
	if (!err && !c->fired)
		c->r->last_commit = rev;
}

static int resv_recheck(struct registry *r, struct reg_commit *c, struct verr *e);

/* The outcome of an answered commit (e filled on failure), or 1: not ready to tell yet. */
static int commit_outcome(struct registry *r, struct reg_commit *c, uint64_t now, struct verr *e)
{
	bool caught_up = r->st.rev >= c->rev || now >= c->watch_by;

	if (c->err == -ECANCELED) {
		/* the winner's write moved the guard: the model has it */
		if (!caught_up &&
		    !(c->resv && guard_rev(&r->st, REG_SLOT(c->port, c->proto)) != c->guard))
			return 1;
		if (c->resv)
			return resv_recheck(r, c, e);
		verr_add(e, "registry", c->failed_key,
			 "changed concurrently by another writer; try again");
		return -ECANCELED;
	}
	if (registry_err_unavailable(c->err)) {
		/* Not "nothing changed": a request etcd received may sit in its log and
		 * commit once a quorum is back (etcd's own rule for a timed-out request). */
		verr_add(e, "registry", NULL,
			 "the %s backend is unavailable (%s): the change was not confirmed and "
			 "this host's policy is unchanged; if the store received it, it may "
			 "still be committed when the store recovers: repeat the command then "
			 "(a change already made is a no-op)",
			 r->b->ops->name, strerror(-c->err));
		return c->err;
	}
	if (c->err) {
		verr_add(e, "registry", NULL, "write failed: %s", strerror(-c->err));
		return c->err;
	}
	if (!caught_up)
		return 1;
	if (r->st.rev < c->rev)
		p_warn("registry: revision %llu committed, the watch has not delivered it after %d "
		       "ms",
		       (unsigned long long)c->rev, WATCH_WAIT_MS);
	return 0;
}

static void commit_free(struct reg_commit *c)
{
	for (size_t i = 0; i < c->n_keys; i++)
		free(c->keys[i]);
	free(c->keys);
	free(c);
}

/*
 * One commit whose time has come, or NULL: answered and able to tell its outcome (unlinked),
 * answered after it timed out (unlinked, nothing to tell), or out of time without an answer
 * (*keep: it stays listed, the backend still holds it). *err and e: the outcome.
 */
static struct reg_commit *commit_next(struct registry *r, const struct reg_commit *only,
				      uint64_t now, bool *keep, int *err, struct verr *e)
{
	for (struct reg_commit **pp = &r->commits, *c; (c = *pp); pp = &c->next) {
		*keep = false;
		if (only && c != only)
			continue;
		if (!c->answered && !c->fired && now >= c->answer_by) {
			verr_add(
				e, "registry", NULL,
				"the %s backend did not answer within %u ms: the change may or may "
				"not have been made",
				r->b->ops->name, r->answer_ms);
			*err = -ETIMEDOUT;
			*keep = true;
			return c;
		}
		if (!c->answered)
			continue;
		if (c->fired || (*err = commit_outcome(r, c, now, e)) != 1) {
			*pp = c->next;
			return c;
		}
	}
	return NULL;
}

/*
 * Run the continuation of every commit (or only the one named) that can tell its outcome
 * now. One at a time and from the start each time: a continuation may submit a commit, or
 * cancel another.
 */
static void commits_fire(struct registry *r, const struct reg_commit *only)
{
	uint64_t now = now_ms();
	struct reg_commit *c;
	struct verr e = {};
	bool keep;
	int err = 0;

	while ((c = commit_next(r, only, now, &keep, &err, &e))) {
		registry_commit_fn fn = c->fired ? NULL : c->fn;

		c->fired = true;
		c->fn = NULL;
		if (fn) /* a lost compare that turned out ours committed nothing */
			fn(c->arg, err, err || c->err ? 0 : c->rev, &e);
		verr_free(&e);
		err = 0;
		if (!keep)
			commit_free(c);
		if (only) /* its address may be the next commit's */
			break;
	}
}

/* Submit ops in one transaction; the continuation runs from registry_poll/registry_tick. */
static int txn_submit(struct registry *r, const struct op_list *l, const struct reg_async *as,
		      struct reg_commit **out)
{
	struct reg_commit *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->r = r;
	c->fn = as->fn;
	c->arg = as->arg;
	c->keys = calloc(l->n + 1, sizeof(*c->keys));
	for (size_t i = 0; c->keys && i < l->n; i++) {
		c->keys[i] = strdup(l->ops[i].key);
		if (c->keys[i])
			c->n_keys++;
	}
	if (!c->keys || c->n_keys != l->n) {
		commit_free(c);
		return -ENOMEM;
	}
	/* A key the model lacks because its value could not be read is not absent in the
	 * backend: a put over it compares against the unreadable value's revision. */
	for (size_t i = 0; i < l->n; i++)
		if (l->ops[i].expect_rev == KV_REV_ABSENT &&
		    rejects_rev(&r->rejects, l->ops[i].key))
			l->ops[i].expect_rev = rejects_rev(&r->rejects, l->ops[i].key);
	c->answer_by = now_ms() + r->answer_ms;
	err = r->b->ops->txn_submit(r->b, l->ops, l->n, commit_answered, c);
	if (err) {
		commit_free(c);
		return err;
	}
	c->next = r->commits;
	r->commits = c;
	*out = c;
	return REG_PENDING;
}

/* Submit c again with other ops (a reservation retried after a lost compare). */
static int txn_resubmit(struct registry *r, struct reg_commit *c, const struct op_list *l)
{
	char **keys = calloc(l->n + 1, sizeof(*keys));
	int err = keys ? 0 : -ENOMEM;

	for (size_t i = 0; !err && i < l->n; i++)
		if (!(keys[i] = strdup(l->ops[i].key)))
			err = -ENOMEM;
	if (!err)
		err = r->b->ops->txn_submit(r->b, l->ops, l->n, commit_answered, c);
	if (err) {
		for (size_t i = 0; keys && i < l->n; i++)
			free(keys[i]);
		free(keys);
		return err;
	}
	for (size_t i = 0; i < c->n_keys; i++)
		free(c->keys[i]);
	free(c->keys);
	c->keys = keys;
	c->n_keys = l->n;
	c->failed_key = NULL;
	c->answered = false;
	c->err = 0;
	c->rev = 0;
	c->answer_by = now_ms() + r->answer_ms;
	return 0;
}

void registry_commit_cancel(struct reg_commit *c)
{
	if (c)
		c->fn = NULL;
}

/* A synchronous caller's wait: what the continuation reported. */
struct sync_wait {
	bool done;
	int err;
	struct verr *e;
};

static void sync_done(void *arg, int err, uint64_t rev, struct verr *e)
{
	struct sync_wait *w = arg;

	(void)rev;
	w->done = true;
	w->err = err;
	for (size_t i = 0; i < e->n; i++)
		verr_add_raw(w->e, e->msgs[i]);
}

static int watch_apply(struct registry *r);

void registry_wait(struct registry *r, struct reg_commit *c, const bool *done)
{
	struct pollfd pfd = { .fd = registry_watch_fd(r), .events = POLLIN };

	while (!*done) {
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			p_warn("registry: poll: %s", strerror(errno));
		watch_apply(r);
		r->b->ops->txn_reap(r->b);
		/* Only c: the others go on from the next registry_poll, once the caller (a
		 * reload that holds the kernel apply back) has recorded what it applied. */
		commits_fire(r, c);
	}
}

/* The synchronous form of every mutation: submit, then poll the watch until the outcome. */
static int commit_wait(struct registry *r, int rc, struct reg_commit *c, struct sync_wait *w)
{
	if (rc != REG_PENDING)
		return rc;
	registry_wait(r, c, &w->done);
	return w->err;
}

/* new passes the checks a commit must, or fails only those the model fails already (an
 * inconsistency another writer left, consistency_check): a change may not add one. */
static int validate_change(const struct registry *r, const struct reg_state *new, struct verr *e)
{
	struct verr ne = {};
	int err = state_validate(new, &ne);
	bool known = err == -EINVAL && r->inconsistent && !ne.dropped;

	for (size_t i = 0; known && i < ne.n; i++) {
		bool found = false;

		for (size_t j = 0; j < r->known.n && !found; j++)
			found = !strcmp(ne.msgs[i], r->known.msgs[j]);
		known = found;
	}
	if (known)
		err = 0;
	for (size_t i = 0; err && i < ne.n; i++)
		verr_add_raw(e, ne.msgs[i]);
	verr_free(&ne);
	return err;
}

/* Validate new, submit the difference from the current state. Consumes new; the model
 * changes only through the watch. 0: nothing to change; REG_PENDING: submitted. */
static int commit(struct registry *r, struct reg_state *new, const struct reg_async *as,
		  struct reg_commit **out, struct verr *e)
{
	struct op_list l = {};
	int err;

	err = validate_change(r, new, e);
	if (!err && r->cap)
		err = registry_admit(r->cap, r->placed ? &r->placement : NULL, &r->st, new, e);
	if (!err)
		err = diff_services(&r->st, new, &l);
	if (!err)
		err = diff_resv(&r->st, new, &l);
	if (!err)
		err = diff_gpus(&r->st, new, &l);
	if (!err)
		err = diff_dbs(&r->st, new, &l);
	state_free(new);
	if (!err && l.n)
		err = txn_submit(r, &l, as, out);
	ops_free(&l);
	return err;
}

/* The record of the model's own consistency among the rejections. */
#define CONSISTENCY_KEY "(consistency)"

/*
 * What the registry holds, checked as a commit is (state_validate): two services declaring
 * one port, a reservation of an unknown or unreadable service, ... Another writer (etcdctl,
 * a race documented in ARCHITECTURE, an entry that could not be read) can leave such a
 * registry; it is reported as one rejection record and enforced as it stands, not a reason
 * to stop: a caelumd that exits enforces nothing new and answers no repair. Changes made
 * here are checked as usual (one that keeps a conflict is refused); the record goes once a
 * change repairs it. 0 or -ENOMEM.
 */
static int consistency_check(struct registry *r)
{
	struct verr e = {};
	char *why;
	int err = state_validate(&r->st, &e);
	bool same = r->inconsistent && err == -EINVAL && e.n == r->known.n;

	for (size_t i = 0; same && i < e.n; i++)
		same = !strcmp(e.msgs[i], r->known.msgs[i]);
	r->inconsistent = err == -EINVAL;
	verr_free(&r->known);
	for (size_t i = 0; r->inconsistent && i < e.n; i++)
		verr_add_raw(&r->known, e.msgs[i]);
	if (same) {
		err = 0; /* reported already, since the record's revision */
	} else if (err == -EINVAL) {
		why = verr_join(&e);
		p_warn("registry: revision %llu is inconsistent, enforced as it stands: %s",
		       (unsigned long long)r->st.rev, why ? why : "");
		err = rejects_put(&r->rejects, CONSISTENCY_KEY, r->st.rev, why ? why : "");
		free(why);
	} else if (!err && rejects_drop(&r->rejects, CONSISTENCY_KEY)) {
		p_info("registry: consistent again at revision %llu",
		       (unsigned long long)r->st.rev);
	}
	verr_free(&e);
	return err;
}

/* A put this caelumd cannot read: the entry it would replace (if any) stays in force, at the
 * new revision, so that a change made here compares against what the registry holds. */
static void keep_last_good(struct reg_state *st, const struct kv_event *ev)
{
	char host_buf[256];
	const char *name, *host;
	struct reg_resv k = {};
	struct verr e = {};
	uint64_t *rev = NULL;

	switch (key_kind(ev->key)) {
	case K_SVC: {
		struct reg_service *s = state_service(st, ev->key + strlen(SVC_PREFIX));

		rev = s ? &s->mod_rev : NULL;
		break;
	}
	case K_RESV:
	case K_HRESV: {
		struct reg_resv *x = resv_key_parse(ev->key, &k, host_buf, &e)
					     ? NULL
					     : state_resv(st, k.port, k.proto, k.host);

		rev = x ? &x->mod_rev : NULL;
		break;
	}
	case K_DB:
	case K_HDB: {
		struct reg_db *x = db_key_parse(ev->key, &name, &host, host_buf, &e)
					   ? NULL
					   : state_db_at(st, name, host);

		rev = x ? &x->mod_rev : NULL;
		break;
	}
	case K_GPU: {
		struct reg_gpu *g = state_gpu(st, ev->key + strlen(GPU_PREFIX));

		rev = g ? &g->mod_rev : NULL;
		break;
	}
	case K_GUARD:
	case K_OTHER:
		break;
	}
	if (rev)
		*rev = ev->mod_rev;
	verr_free(&e);
}

static void notify_watchers(struct registry *r, struct reg_delta *d)
{
	d->rev = r->st.rev;
	for (size_t i = 0; i < r->n_watchers; i++)
		r->watchers[i].cb(r->watchers[i].ctx, &r->st, d);
}

/*
 * The watch lost its history (compacted while we were away): list everything at one
 * revision, hand the watchers the whole model (they diff against what the kernel holds),
 * and watch again from that revision (Cilium's ListAndWatch). A failed list is retried by
 * registry_tick(); until then the last applied model stays in force.
 */
static int relist(struct registry *r)
{
	struct reg_delta d = { .from_rev = r->st.rev, .services = true, .dbs = true, .gpus = true };
	struct reg_state fresh;
	struct rejects rj = {};
	struct verr e = {};
	int err;

	r->relist_pending = true;
	err = state_load(r->b, &fresh, &rj, &e);
	fresh.self = r->st.self;
	if (err) {
		rejects_clear(&rj);
		char *msg = verr_join(&e);

		p_warn("registry: listing again failed (%s); keeping revision %llu, retrying",
		       msg ? msg : strerror(-err), (unsigned long long)r->st.rev);
		free(msg);
		verr_free(&e);
		return err;
	}
	verr_free(&e);
	state_free(&r->st);
	r->st = fresh;
	rejects_replace(&r->rejects, &rj);
	consistency_check(r);
	err = r->b->ops->watch(r->b, r->st.rev);
	if (err)
		return err;
	r->relist_pending = false;
	r->relists++;
	p_info("registry: listed again at revision %llu and watching from there",
	       (unsigned long long)r->st.rev);
	notify_watchers(r, &d);
	return 0;
}

/* The backend's watch events into the model, the watchers told. */
static int watch_apply(struct registry *r)
{
	struct reg_delta d = { .from_rev = r->st.rev };
	struct kv_event *ev = NULL;
	struct verr e = {};
	size_t n = 0;
	int err;

	err = r->b->ops->watch_read(r->b, &ev, &n);
	if (err == -ESTALE)
		return relist(r);
	if (err || !n) {
		kv_events_free(ev, n);
		return err;
	}
	for (size_t i = 0; i < n && !err; i++) {
		struct verr ke = {};

		err = model_apply(&r->st, &ev[i], &d, &ke);
		if (err == -EINVAL && ev[i].type == KV_PUT) {
			keep_last_good(&r->st, &ev[i]);
			err = reject_kv(&r->rejects, ev[i].key, ev[i].mod_rev, &ke);
		} else {
			if (err == -EINVAL) /* a delete of a key that could never be read */
				err = 0;
			if (!err)
				rejects_drop(&r->rejects, ev[i].key);
			for (size_t j = 0; j < ke.n; j++)
				verr_add_raw(&e, ke.msgs[j]);
			verr_free(&ke);
		}
		if (!err && ev[i].mod_rev > r->st.rev)
			r->st.rev = ev[i].mod_rev;
	}
	if (!err && d.services)
		err = owner_index(&r->st);
	if (!err && r->inconsistent)
		err = consistency_check(r);
	if (err) {
		char *msg = verr_join(&e);
		struct reg_state fresh;

		p_err("failed to apply registry change at revision %llu: %s; listing the registry "
		      "again",
		      (unsigned long long)r->st.rev, msg ? msg : strerror(-err));
		free(msg);
		verr_free(&e);
		/* The model may be half changed: list it again at one revision (as a watcher
		 * does after losing its watch) and let the watchers take everything. */
		struct rejects rj = {};

		if (!state_load(r->b, &fresh, &rj, &e)) {
			fresh.self = r->st.self;
			state_free(&r->st);
			r->st = fresh;
			rejects_replace(&r->rejects, &rj);
			consistency_check(r);
			d.services = d.dbs = d.gpus = true;
			err = 0;
		}
		rejects_clear(&rj);
	}
	verr_free(&e);
	kv_events_free(ev, n);
	notify_watchers(r, &d);
	free(d.slots);
	return err;
}

int registry_poll(struct registry *r)
{
	int err;

	err = watch_apply(r);
	/* The answers after the events: both share the watch fd, and an answer that comes
	 * after watch_read consumed its wake-up is taken here (or leaves it readable). */
	r->b->ops->txn_reap(r->b);
	commits_fire(r, NULL);
	return err;
}

void registry_tick(struct registry *r)
{
	if (r->relist_pending)
		relist(r);
	r->b->ops->txn_reap(r->b);
	commits_fire(r, NULL);
	if (r->b->ops->tick)
		r->b->ops->tick(r->b);
}

struct json_object *registry_status_json(const struct registry *r)
{
	struct json_object *o =
		r->b->ops->status ? r->b->ops->status(r->b) : json_object_new_object();

	json_object_object_add(o, "backend", json_object_new_string(r->b->ops->name));
	json_object_object_add(o, "model_revision", json_object_new_uint64(r->st.rev));
	json_object_object_add(o, "relists", json_object_new_uint64(r->relists));
	/* entries this caelumd cannot read (rejects.h): the first 32 of them, and a count */
	json_object_object_add(o, "rejected", rejects_json(&r->rejects, 32));
	json_object_object_add(o, "rejected_now", json_object_new_uint64(r->rejects.n));
	json_object_object_add(o, "rejections", json_object_new_uint64(r->rejects.total));
	return o;
}

struct registry_backend *registry_backend_of(const struct registry *r)
{
	return r->b;
}

bool registry_err_unavailable(int err)
{
	return err == -ETIMEDOUT || err == -EHOSTUNREACH;
}

int registry_watch_fd(const struct registry *r)
{
	return r->b->ops->watch_fd(r->b);
}

uint64_t registry_last_commit(const struct registry *r)
{
	return r->last_commit;
}

/* Owner of (port, proto) on this host: a spec, else the cluster-wide reservation, else this
 * host's own; *origin tells which (may be NULL). */
static const char *owner_here(const struct reg_state *st, uint16_t port, uint8_t proto,
			      enum reg_origin *origin)
{
	uint32_t i = st->spec_owner ? st->spec_owner[REG_SLOT(port, proto)] : 0;
	const struct reg_resv *rv;

	if (i) {
		if (origin)
			*origin = st->svcs[i - 1].origin;
		return st->svcs[i - 1].spec.name;
	}
	rv = state_resv(st, port, proto, NULL);
	if (!rv && st->self)
		rv = state_resv(st, port, proto, st->self);
	if (rv && origin)
		*origin = ORIGIN_RUNTIME;
	return rv ? rv->service : NULL;
}

const char *registry_slot_owner(const struct reg_state *st, uint32_t slot)
{
	return owner_here(st, REG_SLOT_PORT(slot), REG_SLOT_PROTO(slot), NULL);
}

/* ---- public ---- */

int registry_open(struct registry_backend *b, struct registry **out, struct verr *e)
{
	struct registry *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->b = b;
	r->answer_ms = ANSWER_WAIT_MS;
	err = state_load(b, &r->st, &r->rejects, e);
	if (!err)
		err = consistency_check(r);
	if (!err) {
		err = b->ops->watch(b, r->st.rev);
		if (err)
			verr_add(e, "registry", NULL, "failed to watch from revision %llu: %s",
				 (unsigned long long)r->st.rev, strerror(-err));
	}
	if (err) {
		state_free(&r->st);
		rejects_clear(&r->rejects);
		verr_free(&r->known);
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

void registry_close(struct registry *r)
{
	if (!r)
		return;
	/* Continuations not run yet hear that the daemon is going; the backend drops the
	 * answers it still owes without calling them. */
	for (struct reg_commit *c = r->commits; c; c = c->next) {
		struct verr e = {};
		registry_commit_fn fn = c->fired ? NULL : c->fn;

		c->fired = true;
		if (!fn)
			continue;
		verr_add(&e, "registry", NULL, "caelumd is shutting down");
		fn(c->arg, -ESHUTDOWN, 0, &e);
		verr_free(&e);
	}
	r->b->ops->free(r->b);
	while (r->commits) {
		struct reg_commit *c = r->commits;

		r->commits = c->next;
		commit_free(c);
	}
	state_free(&r->st);
	verr_free(&r->known);
	rejects_clear(&r->rejects);
	free(r);
}

void registry_set_answer_timeout(struct registry *r, unsigned int ms)
{
	r->answer_ms = ms;
}

void registry_set_capacity(struct registry *r, const struct capacity *cap)
{
	r->cap = cap;
}

void registry_set_placement(struct registry *r, const struct reg_placement *pl)
{
	r->placed = pl != NULL;
	r->placement = pl ? *pl : (struct reg_placement){};
}

void registry_set_host(struct registry *r, const char *host)
{
	snprintf(r->self, sizeof(r->self), "%s", host ? host : "");
	r->st.self = r->self[0] ? r->self : NULL;
}

int registry_admit_service(const struct registry *r, const char *name, struct verr *e)
{
	struct admit_svc *a;
	size_t k = 0;
	int err;

	if (!r->cap)
		return 0;
	a = calloc(r->st.n_svcs + 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < r->st.n_svcs; i++) {
		const char *s = r->st.svcs[i].spec.name;
		bool self = !strcmp(s, name);

		if (!self && r->placed && !r->placement.runs_here(r->placement.ctx, s))
			continue;
		a[k++] = (struct admit_svc){ s, &r->st.svcs[i].spec.res, self };
	}
	err = admission_check(r->cap, a, k, e);
	free(a);
	return err;
}

const struct reg_state *registry_state(const struct registry *r)
{
	return &r->st;
}

const char *registry_backend_name(const struct registry *r)
{
	return r->b->ops->name;
}

void registry_watch(struct registry *r, registry_watch_cb cb, void *ctx)
{
	if (r->n_watchers < MAX_WATCHERS)
		r->watchers[r->n_watchers++] = (struct watcher){ cb, ctx };
}

const struct reg_service *registry_service(const struct registry *r, const char *name)
{
	return state_service(&r->st, name);
}

static int claim_cmp(const void *a, const void *b)
{
	const struct reg_claim *x = a, *y = b;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if (x->proto != y->proto)
		return (int)x->proto - (int)y->proto;
	return host_cmp(x->host, y->host);
}

/* Does r add a claim to the list: on this host (all false) or anywhere (all true)? */
static bool resv_claims(const struct reg_state *st, const struct reg_resv *r, bool all)
{
	uint32_t i = st->spec_owner ? st->spec_owner[REG_SLOT(r->port, r->proto)] : 0;

	/* A runtime reservation of a port the spec already declares adds nothing. */
	if (i && !strcmp(st->svcs[i - 1].spec.name, r->service))
		return false;
	if (!r->host || all)
		return true;
	/* Another host's, or covered by the cluster-wide reservation. */
	return st->self && !strcmp(r->host, st->self) && !state_resv(st, r->port, r->proto, NULL);
}

static int claims_collect(const struct reg_state *st, bool all, struct reg_claim **out, size_t *n)
{
	size_t total = st->n_resv, k = 0;
	struct reg_claim *c;

	for (size_t i = 0; i < st->n_svcs; i++)
		total += spec_port_count(&st->svcs[i].spec);
	c = calloc(total + 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct reg_service *s = &st->svcs[i];

		for (size_t j = 0; j < s->spec.n_ports; j++)
			for (uint32_t p = s->spec.ports[j].lo; p <= s->spec.ports[j].hi; p++)
				c[k++] = (struct reg_claim){ (uint16_t)p, s->spec.ports[j].proto,
							     s->origin, s->spec.name, NULL };
	}
	for (size_t i = 0; i < st->n_resv; i++) {
		const struct reg_resv *r = &st->resv[i];

		if (resv_claims(st, r, all))
			c[k++] = (struct reg_claim){ r->port, r->proto, ORIGIN_RUNTIME, r->service,
						     r->host };
	}
	qsort(c, k, sizeof(*c), claim_cmp);
	*out = c;
	*n = k;
	return 0;
}

int registry_claims(const struct reg_state *st, struct reg_claim **out, size_t *n)
{
	return claims_collect(st, false, out, n);
}

int registry_claims_all(const struct reg_state *st, struct reg_claim **out, size_t *n)
{
	return claims_collect(st, true, out, n);
}

const char *registry_owner(const struct registry *r, uint16_t port, uint8_t proto,
			   enum reg_origin *origin)
{
	return owner_here(&r->st, port, proto, origin);
}

static int service_apply(struct registry *r, const struct service_spec *s, enum reg_origin origin,
			 const struct reg_async *as, struct reg_commit **out, struct verr *e)
{
	const struct reg_service *cur = registry_service(r, s->name);
	struct service_spec copy;
	struct reg_state new;
	int err;

	if (cur && cur->origin != origin) {
		verr_add(e, s->source ? s->source : s->name, "name",
			 "service '%s' is managed by %s; change it there", s->name,
			 cur->origin == ORIGIN_FILE ? cur->spec.source
						    : "the API (caelumctl service apply)");
		return -EEXIST;
	}
	err = state_copy(&new, &r->st);
	if (err)
		return err;
	err = spec_copy(&copy, s);
	if (!err)
		err = state_put_service(&new, &copy, origin);
	if (err) {
		state_free(&new);
		return err;
	}
	return commit(r, &new, as, out, e);
}

static int service_delete(struct registry *r, const char *name, const struct reg_async *as,
			  struct reg_commit **out, struct verr *e)
{
	const struct reg_service *cur = registry_service(r, name);
	struct reg_state new;
	int err;

	if (!cur) {
		char msg[SERVICE_NAME_MAX + 32];

		/* the wording of every lookup of a service by name (service show, where) */
		snprintf(msg, sizeof(msg), "service '%s' not found", name);
		verr_add_raw(e, msg);
		return -ENOENT;
	}
	if (cur->origin == ORIGIN_FILE) {
		verr_add(e, name, NULL, "service is defined by %s; remove the file and reload",
			 cur->spec.source);
		return -EEXIST;
	}
	err = state_copy(&new, &r->st);
	if (err)
		return err;
	state_del_service(&new, name);
	return commit(r, &new, as, out, e);
}

static int ownership_check(const struct registry *r, const struct service_spec *specs, size_t n,
			   const struct db_spec *dbs, size_t n_dbs, struct verr *e)
{
	size_t n0 = e->n + e->dropped;

	for (size_t i = 0; i < n; i++) {
		const struct reg_service *cur = registry_service(r, specs[i].name);

		if (cur && cur->origin != ORIGIN_FILE)
			verr_add(e, specs[i].source, "name",
				 "service '%s' was applied through the API; delete it there first "
				 "(caelumctl service delete %s)",
				 specs[i].name, specs[i].name);
	}
	for (size_t i = 0; i < n_dbs; i++) {
		const struct reg_db *cur = state_db_any(&r->st, dbs[i].name);

		for (; cur < r->st.dbs + r->st.n_dbs && cur && !strcmp(cur->spec.name, dbs[i].name);
		     cur++) {
			char where[300] = "";

			if (cur->origin == ORIGIN_FILE)
				continue;
			if (cur->host)
				snprintf(where, sizeof(where), " host %s", cur->host);
			verr_add(e, dbs[i].source, "name",
				 "database '%s' was applied through the API; delete it there first "
				 "(caelumctl db delete %s%s)",
				 dbs[i].name, dbs[i].name, where);
		}
	}
	return e->n + e->dropped != n0 ? -EEXIST : 0;
}

/* new = current state with every file-origin object replaced by specs and dbs. */
static int files_state(const struct registry *r, const struct service_spec *specs, size_t n,
		       const struct db_spec *dbs, size_t n_dbs, struct reg_state *new)
{
	int err = state_copy(new, &r->st);

	for (size_t i = 0; !err && i < r->st.n_svcs; i++) {
		const struct reg_service *s = &r->st.svcs[i];
		bool keep = s->origin != ORIGIN_FILE;

		for (size_t j = 0; j < n && !keep; j++)
			keep = !strcmp(specs[j].name, s->spec.name);
		if (!keep)
			state_del_service(new, s->spec.name);
	}
	for (size_t i = 0; !err && i < r->st.n_dbs; i++) {
		const struct reg_db *d = &r->st.dbs[i];
		bool keep = d->origin != ORIGIN_FILE;

		for (size_t j = 0; j < n_dbs && !keep; j++)
			keep = !strcmp(dbs[j].name, d->spec.name);
		if (!keep)
			state_del_db(new, d->spec.name, d->host);
	}
	for (size_t i = 0; i < n && !err; i++) {
		struct service_spec copy;

		err = spec_copy(&copy, &specs[i]);
		if (!err)
			err = state_put_service(new, &copy, ORIGIN_FILE);
	}
	for (size_t i = 0; i < n_dbs && !err; i++) {
		struct db_spec copy;

		err = dbspec_copy(&copy, &dbs[i]);
		if (!err)
			err = state_put_db(new, &copy, ORIGIN_FILE, NULL);
	}
	return err;
}

static int sync_all(struct registry *r, const struct service_spec *specs, size_t n,
		    const struct db_spec *dbs, size_t n_dbs, const struct reg_async *as,
		    struct reg_commit **out, struct verr *e)
{
	struct reg_state new = {};
	int err;

	err = ownership_check(r, specs, n, dbs, n_dbs, e);
	if (err)
		return err;
	err = files_state(r, specs, n, dbs, n_dbs, &new);
	if (err) {
		state_free(&new);
		return err;
	}
	return commit(r, &new, as, out, e);
}

int registry_sync_files(struct registry *r, const struct service_spec *specs, size_t n,
			struct verr *e)
{
	struct db_spec *dbs = calloc(r->st.n_dbs + 1, sizeof(*dbs));
	size_t k = 0;
	int err;

	if (!dbs)
		return -ENOMEM;
	for (size_t i = 0; i < r->st.n_dbs; i++)
		if (r->st.dbs[i].origin == ORIGIN_FILE)
			dbs[k++] = r->st.dbs[i].spec; /* shallow: sync copies what it keeps */
	err = registry_sync_all(r, specs, n, dbs, k, e);
	free(dbs);
	return err;
}

const struct reg_db *registry_db(const struct registry *r, const char *name)
{
	const struct reg_db *d = r->st.self ? state_db_at(&r->st, name, r->st.self) : NULL;

	return d ? d : state_db_at(&r->st, name, NULL);
}

const struct reg_db *registry_db_at(const struct reg_state *st, const char *name, const char *host)
{
	return state_db_at(st, name, host);
}

/* A name is defined cluster-wide or host-only (on any number of hosts), never both: the
 * other kind's definition that d on host would meet, named in e (-EEXIST), or 0. */
static int db_kind_conflict(const struct registry *r, const struct db_spec *d, const char *host,
			    struct verr *e)
{
	const struct reg_db *o = state_db_any(&r->st, d->name);

	if (host && o && !o->host) {
		verr_add(e, d->source ? d->source : d->name, "host",
			 "database '%s' is defined on every host; a definition on host '%s' "
			 "would meet it (delete one first)",
			 d->name, host);
		return -EEXIST;
	}
	if (!host && o && o->host) {
		verr_add(e, d->source ? d->source : d->name, "name",
			 "database '%s' is defined on host '%s'; a definition on every host "
			 "would meet it (delete it there first: caelumctl db delete %s host %s)",
			 d->name, o->host, d->name, o->host);
		return -EEXIST;
	}
	return 0;
}

static int db_apply(struct registry *r, const struct db_spec *d, enum reg_origin origin,
		    const char *host, const struct reg_async *as, struct reg_commit **out,
		    struct verr *e)
{
	const struct reg_db *cur;
	struct reg_state new;
	struct db_spec copy;
	int err;

	if (host && !host_name_valid(host)) {
		verr_add(e, d->source ? d->source : d->name, "host", "invalid host name '%s'",
			 host);
		return -EINVAL;
	}
	err = db_kind_conflict(r, d, host, e);
	if (err)
		return err;
	cur = state_db_at(&r->st, d->name, host);
	if (cur && cur->origin != origin) {
		verr_add(e, d->source ? d->source : d->name, "name",
			 "database '%s' is managed by %s; change it there", d->name,
			 cur->origin == ORIGIN_FILE ? cur->spec.source
						    : "the API (caelumctl db apply)");
		return -EEXIST;
	}
	err = state_copy(&new, &r->st);
	if (!err)
		err = dbspec_copy(&copy, d);
	if (!err)
		err = state_put_db(&new, &copy, origin, host);
	if (err) {
		state_free(&new);
		return err;
	}
	return commit(r, &new, as, out, e);
}

static int db_delete(struct registry *r, const char *name, const char *host,
		     const struct reg_async *as, struct reg_commit **out, struct verr *e)
{
	const struct reg_db *cur, *first;
	struct reg_state new;
	int err = 0;

	if (host && !host_name_valid(host)) {
		verr_add(e, name, "host", "invalid host name '%s'", host);
		return -EINVAL;
	}
	cur = state_db_at(&r->st, name, host);
	if (!cur) {
		char msg[SERVICE_NAME_MAX + 300];

		if (host)
			snprintf(msg, sizeof(msg), "database '%s' not found on host '%s'", name,
				 host);
		else
			snprintf(msg, sizeof(msg), "database '%s' not found", name);
		verr_add_raw(e, msg);
		return -ENOENT;
	}
	/* Another host's definition of the name is left: the services that declare it keep
	 * a database there. */
	first = state_db_any(&r->st, name);
	if (host && (first != cur ||
		     (cur + 1 < r->st.dbs + r->st.n_dbs && !strcmp(cur[1].spec.name, name))))
		goto commit;
	if (cur->origin == ORIGIN_FILE) {
		verr_add(e, name, NULL, "database is defined by %s; remove the file and reload",
			 cur->spec.source);
		return -EEXIST;
	}
	for (size_t i = 0; i < r->st.n_svcs; i++)
		for (size_t j = 0; j < r->st.svcs[i].spec.n_dbs; j++)
			if (!strcmp(r->st.svcs[i].spec.dbs[j].name, name)) {
				verr_add(e, name, NULL, "database is declared by service '%s'",
					 r->st.svcs[i].spec.name);
				err = -EEXIST;
			}
	if (err)
		return err;
commit:
	err = state_copy(&new, &r->st);
	if (err)
		return err;
	state_del_db(&new, name, host);
	return commit(r, &new, as, out, e);
}

/* "<port>/<proto>" or "<port>/<proto> on host '<host>'": how messages name a reservation. */
static void resv_what(char *buf, size_t len, uint16_t port, uint8_t proto, const char *host)
{
	if (host)
		snprintf(buf, len, "%u/%s on host '%s'", port, proto_name(proto), host);
	else
		snprintf(buf, len, "%u/%s", port, proto_name(proto));
}

/*
 * May service reserve (port, proto) on host (NULL: every host), given the spec owner and the
 * runtime reservations of that (port, proto) (group[n], sorted, cluster-wide first)?
 * 0: free; 1: already the service's (nothing to write); -EEXIST: the owner named in e.
 */
static int resv_conflict(const char *spec, const struct reg_resv *group, size_t n, const char *host,
			 const char *service, const char *what, const char *when, struct verr *e)
{
	if (spec) {
		if (strcmp(spec, service))
			goto taken_spec;
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct reg_resv *g = &group[i];

		if (g->host && host && strcmp(g->host, host))
			continue; /* another host's: two hosts may differ */
		if (strcmp(g->service, service)) {
			if (g->host)
				verr_add(e, what, NULL,
					 "already reserved on host '%s' by service '%s' (runtime "
					 "reservation%s)",
					 g->host, g->service, when);
			else
				verr_add(e, what, NULL,
					 "already reserved by service '%s' (runtime reservation%s)",
					 g->service, when);
			return -EEXIST;
		}
		/* ours on every host, or ours on this very host; a cluster-wide reservation
		 * next to the service's own host-only ones is new */
		if (!g->host || host)
			return 1;
	}
	return 0;
taken_spec:
	verr_add(e, what, NULL, "already reserved by service '%s' (declared in its spec)", spec);
	return -EEXIST;
}

/* The model's answer: resv_conflict over this (port, proto)'s reservations. */
static int resv_check(const struct reg_state *st, uint16_t port, uint8_t proto, const char *host,
		      const char *service, const char *what, const char *when, struct verr *e)
{
	uint32_t i = st->spec_owner ? st->spec_owner[REG_SLOT(port, proto)] : 0;
	bool found;
	size_t lo = resv_pos(st, port, proto, NULL, &found), hi = lo;

	while (hi < st->n_resv && st->resv[hi].port == port && st->resv[hi].proto == proto)
		hi++;
	return resv_conflict(i ? st->svcs[i - 1].spec.name : NULL, st->resv + lo, hi - lo, host,
			     service, what, when, e);
}

/*
 * The ops that create (service set) or delete one reservation key in one transaction. A
 * creation also writes the (port, proto)'s guard, compared with guard (the revision the
 * caller validated against): of all creations of one (port, proto) validated against the
 * same state, cluster-wide or host-only, on any host, exactly one commits
 * (docs/ARCHITECTURE.md).
 */
static int resv_ops(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		    const char *service, uint64_t guard, struct op_list *l)
{
	const struct reg_resv *cur = state_resv(&r->st, port, proto, host);
	struct reg_resv rv = { .port = port, .proto = proto };
	char key[RESV_KEY_MAX], gkey[64];
	struct json_object *gv;
	int err;

	resv_key(key, sizeof(key), port, proto, host);
	if (!service)
		return ops_add(l, KV_DEL, strdup(key), NULL, cur ? cur->mod_rev : KV_REV_ANY);
	rv.service = service; /* borrowed: rv only renders the value */
	guard_key(gkey, sizeof(gkey), port, proto);
	gv = json_object_new_object();
	json_object_object_add(gv, "service", json_object_new_string(service));
	if (host)
		json_object_object_add(gv, "host", json_object_new_string(host));
	err = ops_add(l, KV_PUT, strdup(key), resv_value(&rv), KV_REV_ABSENT);
	if (!err)
		err = ops_add(l, KV_PUT, strdup(gkey), value_text(gv), guard);
	else
		json_object_put(gv);
	return err;
}

/* Submit resv_ops; a creation remembers what to check again when its compare is lost. */
static int resv_commit(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		       const char *service, uint64_t guard, const struct reg_async *as,
		       struct reg_commit **out)
{
	struct op_list l = {};
	int err = resv_ops(r, port, proto, host, service, guard, &l);

	if (!err)
		err = txn_submit(r, &l, as, out);
	ops_free(&l);
	if (err == REG_PENDING && service) {
		(*out)->resv = true;
		(*out)->port = port;
		(*out)->proto = proto;
		snprintf((*out)->host, sizeof((*out)->host), "%s", host ? host : "");
		snprintf((*out)->service, sizeof((*out)->service), "%s", service);
		(*out)->guard = guard;
	}
	return err;
}

/*
 * A reservation's compare was lost: someone wrote this (port, proto)'s guard or key since
 * the model saw them, and the model has caught up with the store's revision at the refusal.
 * Check again against it: taken (-EEXIST, the owner named), ours after all (0: a retry of a
 * call whose answer was lost), or free again: the same commit is submitted anew with the
 * guard's revision now (1), at most RESV_RETRIES times.
 */
static int resv_recheck(struct registry *r, struct reg_commit *c, struct verr *e)
{
	const char *host = c->host[0] ? c->host : NULL;
	char what[RESV_KEY_MAX];
	struct op_list l = {};
	int err;

	resv_what(what, sizeof(what), c->port, c->proto, host);
	err = resv_check(&r->st, c->port, c->proto, host, c->service, what,
			 ", committed concurrently", e);
	if (err)
		return err < 0 ? err : 0;
	if (c->attempts++ == RESV_RETRIES) {
		verr_add(e, "registry", c->failed_key,
			 "changed concurrently by another writer; try again");
		return -ECANCELED;
	}
	c->guard = guard_rev(&r->st, REG_SLOT(c->port, c->proto));
	err = resv_ops(r, c->port, c->proto, host, c->service, c->guard, &l);
	if (!err)
		err = txn_resubmit(r, c, &l);
	ops_free(&l);
	if (err) {
		verr_add(e, "registry", NULL, "write failed: %s", strerror(-err));
		return err;
	}
	return 1;
}

static int reserve(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		   const char *service, const struct reg_async *as, struct reg_commit **out,
		   struct verr *e)
{
	uint64_t guard = guard_rev(&r->st, REG_SLOT(port, proto));
	char what[RESV_KEY_MAX];
	int err;

	if (host && !host_name_valid(host)) {
		verr_add(e, "host", NULL, "invalid host name '%s'", host);
		return -EINVAL;
	}
	resv_what(what, sizeof(what), port, proto, host);
	if (!registry_service(r, service)) {
		verr_add(e, what, NULL, "unknown service '%s'", service);
		return -ENOENT;
	}
	/* O(log n) validation against the model, then one key created only if absent. */
	err = resv_check(&r->st, port, proto, host, service, what, "", e);
	if (err)
		return err < 0 ? err : 0; /* 1: already the service's, nothing changes */
	return resv_commit(r, port, proto, host, service, guard, as, out);
}

static int release(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		   const struct reg_async *as, struct reg_commit **out, struct verr *e)
{
	uint32_t i = r->st.spec_owner ? r->st.spec_owner[REG_SLOT(port, proto)] : 0;
	char what[RESV_KEY_MAX];

	if (host && !host_name_valid(host)) {
		verr_add(e, "host", NULL, "invalid host name '%s'", host);
		return -EINVAL;
	}
	resv_what(what, sizeof(what), port, proto, host);
	if (i && !host) {
		verr_add(e, what, NULL,
			 "declared in the spec of service '%s'; remove it from the spec instead",
			 r->st.svcs[i - 1].spec.name);
		return -EEXIST;
	}
	if (!state_resv(&r->st, port, proto, host)) {
		verr_add(e, what, NULL, "not reserved");
		return -ENOENT;
	}
	return resv_commit(r, port, proto, host, NULL, KV_REV_ANY, as, out);
}

bool registry_port_free(const struct reg_state *st, uint16_t port, uint8_t proto)
{
	bool found;
	size_t i = resv_pos(st, port, proto, NULL, &found);

	if (st->spec_owner && st->spec_owner[REG_SLOT(port, proto)])
		return false;
	/* the (port, proto)'s reservations start at i, the cluster-wide one first */
	return i >= st->n_resv || st->resv[i].port != port || st->resv[i].proto != proto;
}
/* ---- the two forms of every mutation ----
 * _async: 0 (nothing to commit) or -errno (refused, e) now, or REG_PENDING: as->fn runs
 * later. The plain form waits for the outcome, polling the backend's watch. */

#define SYNC_CALL(call)                                                                            \
	do {                                                                                       \
		struct sync_wait w = { .e = e };                                                   \
		struct reg_async as = { sync_done, &w };                                           \
		struct reg_commit *c = NULL;                                                       \
		int rc = call; /* sets c: before commit_wait reads it */                           \
		return commit_wait(r, rc, c, &w);                                                  \
	} while (0)

int registry_service_apply(struct registry *r, const struct service_spec *s, enum reg_origin origin,
			   struct verr *e)
{
	SYNC_CALL(service_apply(r, s, origin, &as, &c, e));
}

int registry_service_apply_async(struct registry *r, const struct service_spec *s,
				 enum reg_origin origin, const struct reg_async *as,
				 struct reg_commit **out, struct verr *e)
{
	return service_apply(r, s, origin, as, out, e);
}

int registry_service_delete(struct registry *r, const char *name, struct verr *e)
{
	SYNC_CALL(service_delete(r, name, &as, &c, e));
}

int registry_service_delete_async(struct registry *r, const char *name, const struct reg_async *as,
				  struct reg_commit **out, struct verr *e)
{
	return service_delete(r, name, as, out, e);
}

int registry_sync_all(struct registry *r, const struct service_spec *specs, size_t n,
		      const struct db_spec *dbs, size_t n_dbs, struct verr *e)
{
	SYNC_CALL(sync_all(r, specs, n, dbs, n_dbs, &as, &c, e));
}

int registry_db_apply(struct registry *r, const struct db_spec *d, enum reg_origin origin,
		      const char *host, struct verr *e)
{
	SYNC_CALL(db_apply(r, d, origin, host, &as, &c, e));
}

int registry_db_apply_async(struct registry *r, const struct db_spec *d, enum reg_origin origin,
			    const char *host, const struct reg_async *as, struct reg_commit **out,
			    struct verr *e)
{
	return db_apply(r, d, origin, host, as, out, e);
}

int registry_db_delete(struct registry *r, const char *name, const char *host, struct verr *e)
{
	SYNC_CALL(db_delete(r, name, host, &as, &c, e));
}

int registry_db_delete_async(struct registry *r, const char *name, const char *host,
			     const struct reg_async *as, struct reg_commit **out, struct verr *e)
{
	return db_delete(r, name, host, as, out, e);
}

int registry_reserve(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		     const char *service, struct verr *e)
{
	SYNC_CALL(reserve(r, port, proto, host, service, &as, &c, e));
}

int registry_reserve_async(struct registry *r, uint16_t port, uint8_t proto, const char *host,
			   const char *service, const struct reg_async *as, struct reg_commit **out,
			   struct verr *e)
{
	return reserve(r, port, proto, host, service, as, out, e);
}

int registry_release(struct registry *r, uint16_t port, uint8_t proto, const char *host,
		     struct verr *e)
{
	SYNC_CALL(release(r, port, proto, host, &as, &c, e));
}

int registry_release_async(struct registry *r, uint16_t port, uint8_t proto, const char *host,
			   const struct reg_async *as, struct reg_commit **out, struct verr *e)
{
	return release(r, port, proto, host, as, out, e);
}
