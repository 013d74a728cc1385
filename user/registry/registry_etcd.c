// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd backend of the registry: the same ops as registry_file.c, over etcd (etcd.c), every
 * key under the configured prefix ("caelum/services/web", "caelum/reservations/8080/tcp").
 *
 *   range  one linearizable Range of the prefix at one revision
 *   txn    one Txn: a compare per guarded key (create_revision == 0 for "absent",
 *          mod_revision == R otherwise), the puts and deletes as its success branch; on
 *          success it returns once the watch delivered the txn's revision, so that the
 *          registry_poll() that follows sees its own write (bounded: WATCH_WAIT_MS)
 *   watch  one Watch of the prefix from rev + 1, in etcd.c's thread; a compacted start
 *          revision gives -ESTALE from watch_read, and the registry lists again
 *
 * The local copy: every key of the prefix as last received, written to
 * <state_dir>/registry-etcd.json (temp, fsync, rename) at most every CACHE_EVERY_MS. When
 * etcd cannot be reached at start, the backend serves that copy (stale) and watches from
 * its revision as soon as etcd answers; the kernel policy never goes empty for an outage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "config.h"
#include "etcd.h"
#include "fsutil.h"
#include "log.h"
#include "registry.h"
#include "sorted.h"

#define CACHE_FILE     "registry-etcd.json"
#define CACHE_FORMAT   1
#define CACHE_EVERY_MS 500
#define WATCH_WAIT_MS  3000

struct etcd_backend {
	struct registry_backend base;
	struct etcd *c;
	char prefix[128];
	char dir[PATH_MAX];
	/* The key space as last received (keys without the prefix), for the local copy. */
	struct kv *kvs;
	size_t n, cap;
	uint64_t rev;
	bool primed;	 /* kvs were read at open: the first range is answered from them */
	bool from_cache; /* kvs came from the local copy: etcd was not reached at start */
	bool dirty;
	uint64_t cache_at_ms;
	uint64_t cache_rev; /* revision of the local copy on disk */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int kv_cmp(const void *elem, const void *key)
{
	return strcmp(((const struct kv *)elem)->key, key);
}

/* Put (value copied) or, value NULL, delete key in the mirror. */
static int mirror_set(struct etcd_backend *eb, const char *key, const char *value, uint64_t rev)
{
	bool found;
	size_t i = sorted_find(eb->kvs, eb->n, sizeof(*eb->kvs), key, kv_cmp, &found);
	char *k, *v;

	if (!value) {
		if (!found)
			return 0;
		free(eb->kvs[i].key);
		free(eb->kvs[i].value);
		memmove(&eb->kvs[i], &eb->kvs[i + 1], (eb->n - i - 1) * sizeof(*eb->kvs));
		eb->n--;
		return 0;
	}
	v = strdup(value);
	if (!v)
		return -ENOMEM;
	if (found) {
		free(eb->kvs[i].value);
		eb->kvs[i].value = v;
		eb->kvs[i].mod_rev = rev;
		return 0;
	}
	if (eb->n == eb->cap) {
		size_t cap = eb->cap ? eb->cap * 2 : 64;
		struct kv *tmp = realloc(eb->kvs, cap * sizeof(*tmp));

		if (!tmp) {
			free(v);
			return -ENOMEM;
		}
		eb->kvs = tmp;
		eb->cap = cap;
	}
	k = strdup(key);
	if (!k) {
		free(v);
		return -ENOMEM;
	}
	memmove(&eb->kvs[i + 1], &eb->kvs[i], (eb->n - i) * sizeof(*eb->kvs));
	eb->kvs[i] = (struct kv){ .key = k, .value = v, .mod_rev = rev };
	eb->n++;
	return 0;
}

static void mirror_clear(struct etcd_backend *eb)
{
	kvs_free(eb->kvs, eb->n);
	eb->kvs = NULL;
	eb->n = eb->cap = 0;
}

/* ---- the local copy ---- */

static int cache_write(struct etcd_backend *eb)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	const char *text;
	int err = 0;

	json_object_object_add(o, "format", json_object_new_int(CACHE_FORMAT));
	json_object_object_add(o, "prefix", json_object_new_string(eb->prefix));
	json_object_object_add(o, "revision", json_object_new_uint64(eb->rev));
	json_object_object_add(o, "entries", arr);
	for (size_t i = 0; i < eb->n && !err; i++) {
		struct json_object *ent = json_object_new_object();

		json_object_object_add(ent, "key", json_object_new_string(eb->kvs[i].key));
		json_object_object_add(ent, "mod_revision",
				       json_object_new_uint64(eb->kvs[i].mod_rev));
		json_object_object_add(ent, "value", json_object_new_string(eb->kvs[i].value));
		json_object_array_add(arr, ent);
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
	err = file_write_atomic(eb->dir, CACHE_FILE, text, strlen(text), 0600);
	json_object_put(o);
	if (err)
		p_warn("failed to write the local copy of the registry '%s/%s': %s", eb->dir,
		       CACHE_FILE, strerror(-err));
	else
		eb->cache_rev = eb->rev;
	eb->dirty = !!err;
	eb->cache_at_ms = mono_ms();
	return err;
}

static int cache_entry(struct etcd_backend *eb, struct json_object *ent)
{
	struct json_object *k, *v, *r;

	if (!json_object_object_get_ex(ent, "key", &k) ||
	    !json_object_is_type(k, json_type_string) ||
	    !json_object_object_get_ex(ent, "value", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !json_object_object_get_ex(ent, "mod_revision", &r) ||
	    !json_object_is_type(r, json_type_int) || json_object_get_int64(r) < 1)
		return -EINVAL;
	return mirror_set(eb, json_object_get_string(k), json_object_get_string(v),
			  (uint64_t)json_object_get_int64(r));
}

/* The local copy into the mirror: 0, -ENOENT (none), -EINVAL (not ours or malformed). */
static int cache_load(struct etcd_backend *eb)
{
	char path[PATH_MAX];
	struct json_object *o = NULL, *x, *ents;
	int err;

	snprintf(path, sizeof(path), "%s/%s", eb->dir, CACHE_FILE);
	err = jv_parse_file(path, &o, &(struct verr){});
	if (err)
		return access(path, F_OK) ? -ENOENT : -EINVAL;
	if (!json_object_object_get_ex(o, "format", &x) || json_object_get_int(x) != CACHE_FORMAT ||
	    !json_object_object_get_ex(o, "prefix", &x) ||
	    strcmp(json_object_get_string(x), eb->prefix) ||
	    !json_object_object_get_ex(o, "revision", &x) ||
	    !json_object_is_type(x, json_type_int) ||
	    !json_object_object_get_ex(o, "entries", &ents) ||
	    !json_object_is_type(ents, json_type_array)) {
		json_object_put(o);
		p_err("local copy '%s' is not a copy of prefix '%s'", path, eb->prefix);
		return -EINVAL;
	}
	eb->rev = eb->cache_rev = (uint64_t)json_object_get_int64(x);
	for (size_t i = 0; i < json_object_array_length(ents) && !err; i++)
		err = cache_entry(eb, json_object_array_get_idx(ents, i));
	json_object_put(o);
	if (err)
		p_err("local copy '%s' is malformed: %s", path, strerror(-err));
	return err;
}

static void cache_maybe_write(struct etcd_backend *eb)
{
	if (eb->dirty && mono_ms() - eb->cache_at_ms >= CACHE_EVERY_MS)
		cache_write(eb);
}

/* ---- ops ---- */

static char *with_prefix(const struct etcd_backend *eb, const char *key)
{
	char *k;

	return asprintf(&k, "%s%s", eb->prefix, key) < 0 ? NULL : k;
}

/* The whole prefix from etcd into the mirror. */
static int mirror_load(struct etcd_backend *eb)
{
	char end[256];
	struct etcd_kv *kvs;
	size_t n, plen = strlen(eb->prefix), len;
	uint64_t rev;
	int err;

	etcd_prefix_end(eb->prefix, end, sizeof(end), &len);
	err = etcd_range(eb->c, eb->prefix, end, false, &kvs, &n, &rev);
	if (err)
		return err;
	mirror_clear(eb);
	for (size_t i = 0; i < n && !err; i++)
		if (!strncmp(kvs[i].key, eb->prefix, plen))
			err = mirror_set(eb, kvs[i].key + plen, kvs[i].value, kvs[i].mod_rev);
	etcd_kvs_free(kvs, n);
	eb->rev = rev;
	eb->dirty = true;
	return err;
}

/* A part of the key space, straight from etcd (the mirror holds the whole of it). */
static int range_direct(struct etcd_backend *eb, const char *prefix, struct kv **out, size_t *n,
			uint64_t *rev)
{
	char *key = with_prefix(eb, prefix), end[512];
	size_t plen = strlen(eb->prefix), cnt, len;
	struct etcd_kv *kvs = NULL;
	int err;

	if (!key)
		return -ENOMEM;
	etcd_prefix_end(key, end, sizeof(end), &len);
	err = etcd_range(eb->c, key, end, false, &kvs, &cnt, rev);
	free(key);
	if (err)
		return err;
	*out = calloc(cnt + 1, sizeof(**out));
	*n = 0;
	for (size_t i = 0; *out && i < cnt; i++) {
		(*out)[i] = (struct kv){ .key = strdup(kvs[i].key + plen),
					 .value = kvs[i].value,
					 .mod_rev = kvs[i].mod_rev };
		kvs[i].value = NULL;
		(*n)++;
		if (!(*out)[i].key)
			err = -ENOMEM;
	}
	etcd_kvs_free(kvs, cnt);
	if (!*out || err) {
		kvs_free(*out, *n);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int etcd_be_range(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n,
			 uint64_t *rev)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;
	size_t plen = strlen(prefix), cnt = 0;
	int err = 0;

	if (prefix[0])
		return range_direct(eb, prefix, out, n, rev);
	if (!eb->primed)
		err = mirror_load(eb);
	eb->primed = false;
	if (err)
		return err;
	*out = calloc(eb->n + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < eb->n; i++) {
		struct kv *d = &(*out)[cnt];

		if (strncmp(eb->kvs[i].key, prefix, plen))
			continue;
		d->key = strdup(eb->kvs[i].key);
		d->value = strdup(eb->kvs[i].value);
		d->mod_rev = eb->kvs[i].mod_rev;
		cnt++;
		if (!d->key || !d->value) {
			kvs_free(*out, cnt);
			return -ENOMEM;
		}
	}
	*n = cnt;
	*rev = eb->rev;
	cache_maybe_write(eb);
	return 0;
}

static int etcd_be_txn(struct registry_backend *b, const struct kv_op *ops, size_t n, uint64_t *rev,
		       size_t *failed)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;
	struct etcd_cmp *cmp = calloc(n + 1, sizeof(*cmp));
	struct etcd_op *eo = calloc(n + 1, sizeof(*eo));
	char **keys = calloc(n + 1, sizeof(*keys));
	size_t n_cmp = 0, first_cmp = 0;
	bool ok = false;
	int err = cmp && eo && keys ? 0 : -ENOMEM;

	for (size_t i = 0; i < n && !err; i++) {
		keys[i] = with_prefix(eb, ops[i].key);
		if (!keys[i]) {
			err = -ENOMEM;
			break;
		}
		eo[i] = (struct etcd_op){ .del = ops[i].type == KV_DEL,
					  .key = keys[i],
					  .value = ops[i].value };
		if (ops[i].expect_rev == KV_REV_ANY)
			continue;
		if (!n_cmp)
			first_cmp = i;
		cmp[n_cmp++] = (struct etcd_cmp){ keys[i], ops[i].expect_rev == KV_REV_ABSENT
								   ? 0
								   : ops[i].expect_rev };
	}
	if (!err)
		err = etcd_txn(eb->c, cmp, n_cmp, eo, n, &ok, rev);
	if (!err && !ok) {
		/* etcd does not say which compare failed: the first guarded key stands for it. */
		*failed = first_cmp;
		err = -ECANCELED;
	}
	/* Our own events before we return: the registry_poll() after a commit sees it. */
	if (!err && etcd_watch_wait(eb->c, *rev, WATCH_WAIT_MS))
		p_warn("registry: revision %llu committed, the watch has not delivered it after %d "
		       "ms",
		       (unsigned long long)*rev, WATCH_WAIT_MS);
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(cmp);
	free(eo);
	return err;
}

static int etcd_be_watch(struct registry_backend *b, uint64_t from_rev)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;

	return etcd_watch_start(eb->c, eb->prefix, from_rev + 1);
}

static int etcd_be_watch_fd(struct registry_backend *b)
{
	return etcd_watch_fd(((struct etcd_backend *)b)->c);
}

static int etcd_be_watch_read(struct registry_backend *b, struct kv_event **out, size_t *n_out)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;
	size_t plen = strlen(eb->prefix), n = 0, cnt = 0;
	struct etcd_event *ev = NULL;
	uint64_t compacted = 0;
	int err;

	*out = NULL;
	*n_out = 0;
	err = etcd_watch_take(eb->c, &ev, &n, &compacted);
	if (err)
		return err;
	if (compacted) {
		p_warn("registry watch: revision %llu was compacted (now %llu); listing again",
		       (unsigned long long)eb->rev + 1, (unsigned long long)compacted);
		etcd_events_free(ev, n);
		return -ESTALE;
	}
	*out = calloc(n + 1, sizeof(**out));
	if (!*out) {
		etcd_events_free(ev, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && !err; i++) {
		if (strncmp(ev[i].key, eb->prefix, plen))
			continue;
		(*out)[cnt] = (struct kv_event){ .type = ev[i].del ? KV_DEL : KV_PUT,
						 .mod_rev = ev[i].mod_rev };
		(*out)[cnt].key = strdup(ev[i].key + plen);
		(*out)[cnt].value = ev[i].value;
		ev[i].value = NULL;
		err = (*out)[cnt].key ? 0 : -ENOMEM;
		if (!err)
			err = mirror_set(eb, (*out)[cnt].key, (*out)[cnt].value, ev[i].mod_rev);
		cnt++;
		if (ev[i].mod_rev > eb->rev)
			eb->rev = ev[i].mod_rev;
		eb->dirty = true;
	}
	etcd_events_free(ev, n);
	*n_out = cnt;
	cache_maybe_write(eb);
	return err;
}

static void etcd_be_tick(struct registry_backend *b)
{
	cache_maybe_write((struct etcd_backend *)b);
}

static struct json_object *etcd_be_status(struct registry_backend *b)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;
	struct json_object *o = json_object_new_object(), *eps = json_object_new_array();
	struct etcd_stats s;

	etcd_stats_get(eb->c, &s);
	for (int i = 0; i < etcd_endpoint_count(eb->c); i++)
		json_object_array_add(eps, json_object_new_string(etcd_endpoint(eb->c, i)));
	json_object_object_add(o, "endpoints", eps);
	json_object_object_add(o, "endpoint",
			       json_object_new_string(etcd_endpoint(eb->c, s.endpoint)));
	json_object_object_add(o, "prefix", json_object_new_string(eb->prefix));
	json_object_object_add(o, "received_revision", json_object_new_uint64(eb->rev));
	/* Stale: the watch is not open, so changes elsewhere may not have reached us. */
	json_object_object_add(o, "stale", json_object_new_boolean(!s.watch_up));
	json_object_object_add(o, "started_from_local_copy",
			       json_object_new_boolean(eb->from_cache));
	json_object_object_add(o, "local_copy_revision", json_object_new_uint64(eb->cache_rev));
	json_object_object_add(o, "requests", json_object_new_uint64(s.requests));
	json_object_object_add(o, "failovers", json_object_new_uint64(s.failovers));
	json_object_object_add(o, "token_renewals", json_object_new_uint64(s.reauths));
	json_object_object_add(o, "watch_restarts", json_object_new_uint64(s.watch_restarts));
	json_object_object_add(o, "compactions", json_object_new_uint64(s.compactions));
	json_object_object_add(o, "leader_changes", json_object_new_uint64(s.leader_changes));
	json_object_object_add(o, "lease_losses", json_object_new_uint64(s.lease_losses));
	return o;
}

static void etcd_be_free(struct registry_backend *b)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;

	if (!eb)
		return;
	if (eb->dirty)
		cache_write(eb);
	if (eb->c)
		etcd_session_end(eb->c, 1000); /* this host's keys go now, not at lease expiry */
	etcd_close(eb->c);
	mirror_clear(eb);
	free(eb);
}

static const struct registry_backend_ops etcd_ops = {
	.name = "etcd",
	.range = etcd_be_range,
	.txn = etcd_be_txn,
	.watch = etcd_be_watch,
	.watch_fd = etcd_be_watch_fd,
	.watch_read = etcd_be_watch_read,
	.tick = etcd_be_tick,
	.status = etcd_be_status,
	.free = etcd_be_free,
};

struct etcd *registry_etcd_client(struct registry_backend *b)
{
	return b && b->ops == &etcd_ops ? ((struct etcd_backend *)b)->c : NULL;
}

int registry_etcd_keys(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n)
{
	struct etcd_backend *eb = (struct etcd_backend *)b;
	size_t plen = strlen(prefix);
	bool found;
	size_t i = sorted_find(eb->kvs, eb->n, sizeof(*eb->kvs), prefix, kv_cmp, &found), cnt = 0;

	*out = calloc(eb->n - i + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (; i < eb->n && !strncmp(eb->kvs[i].key, prefix, plen); i++, cnt++) {
		(*out)[cnt] = (struct kv){ .key = strdup(eb->kvs[i].key),
					   .value = strdup(eb->kvs[i].value),
					   .mod_rev = eb->kvs[i].mod_rev };
		if (!(*out)[cnt].key || !(*out)[cnt].value) {
			kvs_free(*out, cnt + 1);
			*out = NULL;
			return -ENOMEM;
		}
	}
	*n = cnt;
	return 0;
}

const char *registry_etcd_prefix(struct registry_backend *b)
{
	return b && b->ops == &etcd_ops ? ((struct etcd_backend *)b)->prefix : NULL;
}

/* The password: the first line of password_file. */
static int read_password(const struct registry_cfg *rc, char *dst, size_t size)
{
	char *text;
	size_t len;
	int err = file_read_all(rc->password_file, 4096, &text, &len);

	if (err) {
		p_err("failed to read registry.password_file '%s': %s", rc->password_file,
		      strerror(-err));
		return err;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (strlen(text) >= size) {
		free(text);
		p_err("registry.password_file '%s': password too long", rc->password_file);
		return -EINVAL;
	}
	snprintf(dst, size, "%s", text);
	explicit_bzero(text, len);
	free(text);
	return 0;
}

static int client_open(const struct registry_cfg *rc, struct etcd **out)
{
	struct etcd_cfg *ec = calloc(1, sizeof(*ec));
	int err = ec ? 0 : -ENOMEM;

	for (size_t i = 0; !err && i < rc->n_endpoints; i++)
		snprintf(ec->endpoints[i], sizeof(ec->endpoints[i]), "%s", rc->endpoints[i]);
	if (!err) {
		ec->n_endpoints = rc->n_endpoints;
		ec->timeout_ms = rc->timeout_ms;
		snprintf(ec->username, sizeof(ec->username), "%s", rc->username);
		snprintf(ec->ca, sizeof(ec->ca), "%s", rc->ca);
		snprintf(ec->cert, sizeof(ec->cert), "%s", rc->cert);
		snprintf(ec->key, sizeof(ec->key), "%s", rc->key);
	}
	if (!err && rc->username[0])
		err = read_password(rc, ec->password, sizeof(ec->password));
	if (!err)
		err = etcd_open(ec, out);
	if (ec)
		explicit_bzero(ec->password, sizeof(ec->password));
	free(ec);
	return err;
}

int registry_etcd_open(const struct registry_cfg *rc, const char *state_dir,
		       struct registry_backend **out)
{
	struct etcd_backend *eb = calloc(1, sizeof(*eb));
	int err;

	if (!eb)
		return -ENOMEM;
	eb->base.ops = &etcd_ops;
	snprintf(eb->prefix, sizeof(eb->prefix), "%s", rc->prefix);
	snprintf(eb->dir, sizeof(eb->dir), "%s", state_dir);
	err = client_open(rc, &eb->c);
	if (err)
		goto err;
	err = mirror_load(eb);
	if (err && etcd_unavailable(err)) {
		mirror_clear(eb);
		p_warn("etcd (%s...) cannot be reached: %s", rc->endpoints[0], strerror(-err));
		err = cache_load(eb);
		if (err == -ENOENT)
			p_err("no local copy of the registry in '%s/%s' either: nothing to enforce "
			      "from",
			      state_dir, CACHE_FILE);
		if (err) {
			err = -EHOSTUNREACH;
			goto err;
		}
		p_warn("enforcing the local copy of the registry at revision %llu (stale until "
		       "etcd answers)",
		       (unsigned long long)eb->rev);
		eb->from_cache = true;
	} else if (err) {
		p_err("failed to list registry prefix '%s' in etcd: %s", rc->prefix,
		      strerror(-err));
		goto err;
	} else {
		cache_write(eb);
	}
	eb->primed = true;
	*out = &eb->base;
	return 0;
err:
	etcd_be_free(&eb->base);
	return err;
}
