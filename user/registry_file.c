// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File backend of the registry: the whole key space in <dir>/registry.json, rewritten
 * atomically (fsutil) by every transaction. One writer at a time, enforced with an
 * exclusive flock on <dir>/registry.lock held for the backend's lifetime.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "registry.h"

#define REG_FILE "registry.json"
#define REG_LOCK "registry.lock"
#define REG_FORMAT 1
#define REG_FILE_MAX (256U << 20)

struct file_backend {
	struct registry_backend base;
	char dir[PATH_MAX];
	int lock_fd;
	struct kv *kvs; /* sorted by key */
	size_t n;
	uint64_t rev;
};

void kvs_free(struct kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

static struct kv *kv_find(struct kv *kvs, size_t n, const char *key)
{
	struct kv k = { .key = (char *)key };

	return n ? bsearch(&k, kvs, n, sizeof(*kvs), kv_cmp) : NULL;
}

static int kv_dup(struct kv *dst, const char *key, const char *value, uint64_t rev)
{
	dst->key = strdup(key);
	dst->value = strdup(value);
	dst->mod_rev = rev;
	if (!dst->key || !dst->value) {
		free(dst->key);
		free(dst->value);
		return -ENOMEM;
	}
	return 0;
}

static int entry_parse(struct json_object *ent, struct kv *out)
{
	struct json_object *k, *v, *r;

	if (!json_object_is_type(ent, json_type_object) ||
	    !json_object_object_get_ex(ent, "key", &k) || !json_object_is_type(k, json_type_string) ||
	    !json_object_object_get_ex(ent, "value", &v) ||
	    !json_object_object_get_ex(ent, "mod_revision", &r) || !json_object_is_type(r, json_type_int))
		return -EINVAL;
	return kv_dup(out, json_object_get_string(k),
		      json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE),
		      (uint64_t)json_object_get_int64(r));
}

static int file_parse(struct file_backend *fb, const char *path, struct json_object *root)
{
	struct json_object *fmt, *rev, *ents;
	size_t n;

	if (!json_object_object_get_ex(root, "format", &fmt) || json_object_get_int(fmt) != REG_FORMAT ||
	    !json_object_object_get_ex(root, "revision", &rev) ||
	    !json_object_object_get_ex(root, "entries", &ents) ||
	    !json_object_is_type(ents, json_type_array)) {
		p_err("registry '%s' is not a format %d registry", path, REG_FORMAT);
		return -EINVAL;
	}
	n = json_object_array_length(ents);
	fb->kvs = calloc(n ? n : 1, sizeof(*fb->kvs));
	if (!fb->kvs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (entry_parse(json_object_array_get_idx(ents, i), &fb->kvs[fb->n])) {
			p_err("registry '%s': entries[%zu] is malformed", path, i);
			return -EINVAL;
		}
		fb->n++;
	}
	fb->rev = (uint64_t)json_object_get_int64(rev);
	qsort(fb->kvs, fb->n, sizeof(*fb->kvs), kv_cmp);
	return 0;
}

static int file_load(struct file_backend *fb)
{
	char path[PATH_MAX];
	struct json_object *root;
	struct verr e = {};
	char *text, *msg;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/%s", fb->dir, REG_FILE);
	err = file_read_all(path, REG_FILE_MAX, &text, &len);
	if (err == -ENOENT)
		return 0; /* a new registry */
	if (err) {
		p_err("failed to read registry '%s': %s", path, strerror(-err));
		return err;
	}
	err = jv_parse_string(path, text, len, &root, &e);
	free(text);
	if (err) {
		msg = verr_join(&e);
		p_err("registry is corrupt: %s", msg ? msg : path);
		free(msg);
		verr_free(&e);
		return err;
	}
	err = file_parse(fb, path, root);
	json_object_put(root);
	return err;
}

static int file_store(struct file_backend *fb, const struct kv *kvs, size_t n, uint64_t rev)
{
	struct json_object *root = json_object_new_object();
	struct json_object *ents = json_object_new_array();
	const char *text;
	int err;

	json_object_object_add(root, "format", json_object_new_int(REG_FORMAT));
	json_object_object_add(root, "revision", json_object_new_int64((int64_t)rev));
	for (size_t i = 0; i < n; i++) {
		struct json_object *ent = json_object_new_object();

		json_object_object_add(ent, "key", json_object_new_string(kvs[i].key));
		json_object_object_add(ent, "mod_revision", json_object_new_int64((int64_t)kvs[i].mod_rev));
		json_object_object_add(ent, "value", json_tokener_parse(kvs[i].value));
		json_object_array_add(ents, ent);
	}
	json_object_object_add(root, "entries", ents);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	err = file_write_atomic(fb->dir, REG_FILE, text, strlen(text), 0600);
	if (err)
		p_err("failed to write registry '%s/%s': %s", fb->dir, REG_FILE, strerror(-err));
	json_object_put(root);
	return err;
}

static int file_range(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n,
		      uint64_t *rev)
{
	struct file_backend *fb = (struct file_backend *)b;
	size_t plen = strlen(prefix), cnt = 0;

	*out = calloc(fb->n ? fb->n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < fb->n; i++) {
		if (strncmp(fb->kvs[i].key, prefix, plen))
			continue;
		if (kv_dup(&(*out)[cnt], fb->kvs[i].key, fb->kvs[i].value, fb->kvs[i].mod_rev)) {
			kvs_free(*out, cnt);
			*out = NULL;
			return -ENOMEM;
		}
		cnt++;
	}
	*n = cnt;
	*rev = fb->rev;
	return 0;
}

static bool compare_holds(struct file_backend *fb, const struct kv_op *op)
{
	struct kv *cur = kv_find(fb->kvs, fb->n, op->key);

	if (op->expect_rev == KV_REV_ANY)
		return true;
	if (op->expect_rev == KV_REV_ABSENT)
		return !cur;
	return cur && cur->mod_rev == op->expect_rev;
}

static int op_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct kv_op *const *)a)->key, (*(const struct kv_op *const *)b)->key);
}

static const struct kv_op *op_find(const struct kv_op **sorted, size_t n, const char *key)
{
	struct kv_op k = { .key = key };
	const struct kv_op *kp = &k, **hit;

	hit = bsearch(&kp, sorted, n, sizeof(*sorted), op_ptr_cmp);
	return hit ? *hit : NULL;
}

/*
 * New sorted key space = old one with ops applied, built as a copy so that the old one
 * stays valid when the write fails. ops must not name a key twice (as in etcd).
 */
static int apply_ops(struct file_backend *fb, const struct kv_op **sorted, size_t n, uint64_t rev,
		     struct kv **out, size_t *out_n)
{
	struct kv *kvs = calloc(fb->n + n + 1, sizeof(*kvs));
	size_t cnt = 0;

	if (!kvs)
		return -ENOMEM;
	for (size_t i = 0; i < fb->n; i++) {
		if (op_find(sorted, n, fb->kvs[i].key))
			continue;
		if (kv_dup(&kvs[cnt++], fb->kvs[i].key, fb->kvs[i].value, fb->kvs[i].mod_rev))
			goto nomem;
	}
	for (size_t i = 0; i < n; i++)
		if (sorted[i]->type == KV_PUT &&
		    kv_dup(&kvs[cnt++], sorted[i]->key, sorted[i]->value, rev))
			goto nomem;
	qsort(kvs, cnt, sizeof(*kvs), kv_cmp);
	*out = kvs;
	*out_n = cnt;
	return 0;
nomem:
	kvs_free(kvs, cnt);
	return -ENOMEM;
}

/* Sorted view of ops; -EINVAL when a key appears twice. */
static int ops_sort(const struct kv_op *ops, size_t n, const struct kv_op ***out)
{
	const struct kv_op **sorted = calloc(n ? n : 1, sizeof(*sorted));

	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &ops[i];
	qsort(sorted, n, sizeof(*sorted), op_ptr_cmp);
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(sorted[i - 1]->key, sorted[i]->key)) {
			free(sorted);
			return -EINVAL;
		}
	}
	*out = sorted;
	return 0;
}

static int file_txn(struct registry_backend *b, const struct kv_op *ops, size_t n, uint64_t *rev,
		    size_t *failed)
{
	struct file_backend *fb = (struct file_backend *)b;
	const struct kv_op **sorted;
	struct kv *kvs;
	size_t cnt;
	int err;

	for (size_t i = 0; i < n; i++) {
		if (!compare_holds(fb, &ops[i])) {
			*failed = i;
			return -ECANCELED;
		}
	}
	err = ops_sort(ops, n, &sorted);
	if (err)
		return err;
	err = apply_ops(fb, sorted, n, fb->rev + 1, &kvs, &cnt);
	free(sorted);
	if (err)
		return err;
	err = file_store(fb, kvs, cnt, fb->rev + 1);
	if (err) {
		kvs_free(kvs, cnt);
		return err;
	}
	kvs_free(fb->kvs, fb->n);
	fb->kvs = kvs;
	fb->n = cnt;
	*rev = ++fb->rev;
	return 0;
}

static int file_watch_fd(struct registry_backend *b)
{
	(void)b;
	return -1; /* the lock makes this process the only writer */
}

static void file_free(struct registry_backend *b)
{
	struct file_backend *fb = (struct file_backend *)b;

	if (!fb)
		return;
	kvs_free(fb->kvs, fb->n);
	if (fb->lock_fd >= 0)
		close(fb->lock_fd);
	free(fb);
}

static const struct registry_backend_ops file_ops = {
	.name = "file",
	.range = file_range,
	.txn = file_txn,
	.watch_fd = file_watch_fd,
	.free = file_free,
};

int registry_file_open(const char *dir, struct registry_backend **out)
{
	struct file_backend *fb = calloc(1, sizeof(*fb));
	char lock[PATH_MAX];
	int err;

	if (!fb)
		return -ENOMEM;
	fb->base.ops = &file_ops;
	fb->lock_fd = -1;
	snprintf(fb->dir, sizeof(fb->dir), "%s", dir);
	snprintf(lock, sizeof(lock), "%s/%s", dir, REG_LOCK);
	fb->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fb->lock_fd < 0) {
		err = -errno;
		p_err("failed to open registry lock '%s': %s", lock, strerror(errno));
		goto err;
	}
	if (flock(fb->lock_fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		p_err("failed to lock registry '%s': %s (is another caelumd running?)", lock,
		      err == -EBUSY ? "held by another process" : strerror(errno));
		goto err;
	}
	err = file_load(fb);
	if (err)
		goto err;
	*out = &fb->base;
	return 0;
err:
	file_free(&fb->base);
	return err;
}
