// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File backend of the registry, stored the way etcd stores its own keys: a snapshot plus an
 * append-only log of transactions since it (etcd's snap/ + wal/).
 *
 *   <dir>/registry.json  snapshot: {"format": 1, "revision": R, "entries": [...]}, one entry a
 *                        line; replaced atomically (temp, fsync, rename, fsync dir)
 *   <dir>/registry.wal   one JSON line per committed transaction after the snapshot:
 *                        {"rev": N, "ops": [{"put": KEY, "value": V} | {"del": KEY}, ...]}
 *                        written with one write() and made durable with fdatasync() before
 *                        the transaction is acknowledged
 *   <dir>/registry.lock  exclusive flock held for the backend's lifetime: one writer
 *
 * A commit costs O(change) on disk: one appended line. When the log outgrows the snapshot
 * (and at least WAL_COMPACT_MIN_BYTES), the whole key space is written as a new snapshot and
 * the log is truncated. Recovery: load the snapshot, replay log lines with rev > R in order.
 * A kill during an append leaves a torn last line (no newline, or not JSON): it was never
 * acknowledged, so it is cut off. A kill during compaction leaves either the old snapshot
 * with the whole log or the new snapshot with log lines it already holds (skipped by rev).
 * Temporary files of interrupted snapshot writes are removed at open.
 *
 * Memory: keys and revisions are held; a value is held only once changed since the snapshot
 * was read or written. The others are read back from registry.json (struct fkv's snap_ref)
 * when a range or a compaction needs them, after checking it is the file they came from.
 * The snapshot is read a line at a time (snap_parse_lines), any other JSON layout whole.
 *
 * Watch: every committed transaction is queued as one batch of events and the eventfd
 * becomes readable, whoever committed: the registry applies changes only from here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "registry.h"
#include "sorted.h"

#define REG_FILE	      "registry.json"
#define REG_WAL		      "registry.wal"
#define REG_LOCK	      "registry.lock"
#define REG_FORMAT	      1
#define REG_FILE_MAX	      (1U << 30)
#define WAL_COMPACT_MIN_BYTES (4U << 20)

struct file_backend {
	struct registry_backend base;
	char dir[PATH_MAX];
	int lock_fd, wal_fd, event_fd;
	struct fkv *kvs; /* sorted by key */
	size_t n, cap;
	uint64_t rev;
	size_t wal_bytes, snap_bytes;
	struct stat snap_st; /* the snapshot the entries' snap_ref point into (st_ino 0: none) */
	size_t compact_min_bytes; /* the log is folded into a snapshot past this and the snapshot */
	/* Events of committed transactions not yet read by the watcher. */
	struct kv_event *ev;
	size_t n_ev, cap_ev;
	uint64_t watch_from; /* deliver revisions > watch_from; UINT64_MAX = not watching */
	/* Transactions done (inline: an fdatasync) whose completion txn_reap has not called. */
	struct file_done *done;
	size_t n_done, cap_done;
};

/*
 * One key. A value unchanged since the snapshot was loaded or written is not held: snap_ref
 * locates its text in registry.json (offset << REF_LEN_BITS | length), and range and
 * compaction read it from there. Otherwise text holds "key\0value\0" in one allocation.
 * For 65,535 reservations and 10,000 services that is 3 MB less (a key is ~24 bytes, its
 * value ~40 more, each allocation 16 more).
 */
struct fkv {
	char *text; /* "key\0", or "key\0value\0" when snap_ref is 0 */
	uint64_t mod_rev;
	uint64_t snap_ref;
};

#define REF_LEN_BITS 24
#define REF_LEN_MAX  ((1ULL << REF_LEN_BITS) - 1)
#define REF_OFF_MAX  ((1ULL << (64 - REF_LEN_BITS)) - 1)

static const char *fkv_key(const struct fkv *e)
{
	return e->text;
}

/* The value's text and length: in memory, or in snap (the snapshot's text, read by the
 * caller: snap_read) when the entry refers to it. */
static void fkv_value(const struct fkv *e, const char *snap, const char **v, size_t *len)
{
	if (e->snap_ref) {
		*v = snap + (e->snap_ref >> REF_LEN_BITS);
		*len = (size_t)(e->snap_ref & REF_LEN_MAX);
		return;
	}
	*v = e->text + strlen(e->text) + 1;
	*len = strlen(*v);
}

static bool any_ref(const struct file_backend *fb)
{
	for (size_t i = 0; i < fb->n; i++)
		if (fb->kvs[i].snap_ref)
			return true;
	return false;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The snapshot the entries refer to, whole (*buf NULL when none refers to it). -EIO if
 * registry.json is no longer the file they were read from (edited under caelumd). */
static int snap_read(struct file_backend *fb, char **buf, size_t *len)
{
	char path[PATH_MAX];
	struct stat st;
	int err;

	*buf = NULL;
	*len = 0;
	if (!any_ref(fb))
		return 0;
	snprintf(path, sizeof(path), "%s/%s", fb->dir, REG_FILE);
	err = file_read_all(path, REG_FILE_MAX, buf, len);
	if (!err && (stat(path, &st) || !same_file(&st, &fb->snap_st)))
		err = -EIO;
	if (err) {
		p_err("failed to read registry snapshot '%s': %s", path,
		      err == -EIO ? "changed since caelumd read it (edited by hand?)"
				  : strerror(-err));
		free(*buf);
		*buf = NULL;
	}
	return err;
}

struct file_done {
	kv_txn_done_fn fn;
	void *arg;
	int err;
	uint64_t rev;
	size_t failed;
};

void kvs_free(struct kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}

void kv_events_free(struct kv_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ev[i].key);
		free(ev[i].value);
	}
	free(ev);
}

static int kv_key_cmp(const void *elem, const void *key)
{
	return strcmp(fkv_key(elem), key);
}

/* Index of key, or of where it would be inserted (*found = false). */
static size_t kv_pos(const struct file_backend *fb, const char *key, bool *found)
{
	return sorted_find(fb->kvs, fb->n, sizeof(*fb->kvs), key, kv_key_cmp, found);
}

static struct fkv *kv_find(const struct file_backend *fb, const char *key)
{
	bool found;
	size_t i = kv_pos(fb, key, &found);

	return found ? &fb->kvs[i] : NULL;
}

static char *fkv_text(const char *key, const char *value)
{
	size_t kl = strlen(key) + 1, vl = strlen(value) + 1;
	char *t = malloc(kl + vl);

	if (t) {
		memcpy(t, key, kl);
		memcpy(t + kl, value, vl);
	}
	return t;
}

/* Put (copies key and value) or, with value NULL, delete. 0 or -ENOMEM (nothing changed). */
static int kv_set(struct file_backend *fb, const char *key, const char *value, uint64_t rev)
{
	bool found;
	size_t i = kv_pos(fb, key, &found);
	char *text = NULL;

	if (value && !(text = fkv_text(key, value)))
		return -ENOMEM;
	if (found) {
		free(fb->kvs[i].text);
		if (text) {
			fb->kvs[i] = (struct fkv){ .text = text, .mod_rev = rev };
			return 0;
		}
		memmove(&fb->kvs[i], &fb->kvs[i + 1], (fb->n - i - 1) * sizeof(*fb->kvs));
		fb->n--;
		return 0;
	}
	if (!text)
		return 0;
	if (fb->n == fb->cap) {
		size_t cap = fb->cap ? fb->cap + fb->cap / 2 : 64;
		struct fkv *tmp = realloc(fb->kvs, cap * sizeof(*tmp));

		if (!tmp) {
			free(text);
			return -ENOMEM;
		}
		fb->kvs = tmp;
		fb->cap = cap;
	}
	memmove(&fb->kvs[i + 1], &fb->kvs[i], (fb->n - i) * sizeof(*fb->kvs));
	fb->kvs[i] = (struct fkv){ .text = text, .mod_rev = rev };
	fb->n++;
	return 0;
}

/* Put key whose value is in the snapshot at ref (a load: key not present yet, or replaced). */
static int kv_set_ref(struct file_backend *fb, const char *key, uint64_t ref, uint64_t rev)
{
	int err = kv_set(fb, key, "", rev);
	struct fkv *e;

	if (err)
		return err;
	e = kv_find(fb, key);
	e->snap_ref = ref;
	return 0;
}

/* After a load: the array's slack back (a 1.5x growth leaves up to a third unused). */
static void kv_shrink(struct file_backend *fb)
{
	size_t cap = fb->n + fb->n / 16 + 64;
	struct fkv *tmp;

	if (cap >= fb->cap)
		return;
	tmp = realloc(fb->kvs, cap * sizeof(*tmp));
	if (tmp) {
		fb->kvs = tmp;
		fb->cap = cap;
	}
}

/* v's canonical text (owned by v: valid until v is freed or changed). */
static const char *json_text(struct json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- snapshot ---- */

/*
 * One entry. line (m bytes, no ',' or newline; base: the start of the snapshot's text) when it
 * was read from its own line: if the line ends with the value's canonical text and '}', as
 * snap_write writes it, the value stays in the file (snap_ref) instead of memory.
 */
static int snap_entry(struct file_backend *fb, struct json_object *ent, const char *base,
		      const char *line, size_t m)
{
	struct json_object *k, *v, *r;

	if (!json_object_is_type(ent, json_type_object) ||
	    !json_object_object_get_ex(ent, "key", &k) ||
	    !json_object_is_type(k, json_type_string) ||
	    !json_object_object_get_ex(ent, "value", &v) ||
	    !json_object_object_get_ex(ent, "mod_revision", &r) ||
	    !json_object_is_type(r, json_type_int) || json_object_get_int64(r) < 1)
		return -EINVAL;
	if (line) {
		const char *cv = json_text(v);
		size_t cl = strlen(cv);
		const char *at = line + m - 1 - cl;

		if (m > cl + 1 && line[m - 1] == '}' && !memcmp(at, cv, cl) && cl &&
		    cl <= REF_LEN_MAX && (uint64_t)(at - base) <= REF_OFF_MAX)
			return kv_set_ref(fb, json_object_get_string(k),
					  (uint64_t)(at - base) << REF_LEN_BITS | cl,
					  (uint64_t)json_object_get_int64(r));
	}
	return kv_set(fb, json_object_get_string(k), json_text(v),
		      (uint64_t)json_object_get_int64(r));
}

/* quiet: no message (the caller falls back to a parse that reports). */
static int snap_parse(struct file_backend *fb, const char *path, struct json_object *root,
		      bool quiet)
{
	struct json_object *fmt, *rev, *ents;
	int err;

	if (!json_object_object_get_ex(root, "format", &fmt) ||
	    json_object_get_int(fmt) != REG_FORMAT ||
	    !json_object_object_get_ex(root, "revision", &rev) ||
	    !json_object_is_type(rev, json_type_int) ||
	    !json_object_object_get_ex(root, "entries", &ents) ||
	    !json_object_is_type(ents, json_type_array)) {
		if (!quiet)
			p_err("registry '%s' is not a format %d registry", path, REG_FORMAT);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_object_array_length(ents); i++) {
		err = snap_entry(fb, json_object_array_get_idx(ents, i), NULL, NULL, 0);
		if (err) {
			if (!quiet)
				p_err("registry '%s': entries[%zu] is malformed", path, i);
			return err;
		}
	}
	fb->rev = (uint64_t)json_object_get_int64(rev);
	return 0;
}

static int parse_text(const char *label, const char *text, size_t len, struct json_object **out)
{
	struct verr e = {};
	char *msg;
	int err = jv_parse_string(label, text, len, out, &e);

	if (err) {
		msg = verr_join(&e);
		p_err("registry is corrupt: %s", msg ? msg : label);
		free(msg);
		verr_free(&e);
	}
	return err;
}

/* A JSON line parsed strictly, its errors dropped: the whole-document parse names them. */
static struct json_object *line_parse(const char *text, size_t len)
{
	struct json_object *o = NULL;
	struct verr e = {};

	if (jv_parse_string("snapshot line", text, len, &o, &e))
		o = NULL;
	verr_free(&e);
	return o;
}

static void kv_clear(struct file_backend *fb)
{
	for (size_t i = 0; i < fb->n; i++)
		free(fb->kvs[i].text);
	fb->n = 0;
	fb->rev = 0;
}

/* The header line "{...,"entries":[" as a document: its fields, no entries. */
static int snap_header(struct file_backend *fb, const char *path, const char *line, size_t len)
{
	struct json_object *o;
	char *doc;
	int err;

	if (!len || line[len - 1] != '[' || !(doc = malloc(len + 3)))
		return -EAGAIN;
	memcpy(doc, line, len);
	memcpy(doc + len, "]}", 3);
	o = line_parse(doc, len + 2);
	free(doc);
	if (!o)
		return -EAGAIN;
	err = snap_parse(fb, path, o, true) ? -EAGAIN : 0;
	json_object_put(o);
	return err;
}

/*
 * The snapshot as snap_write lays it out, a line at a time: the header line ending in '[',
 * one entry a line, each but the last followed by ',', then "]}". Parsing a line at a time
 * keeps the peak at one entry's tree instead of the whole snapshot's (~150 MB for 75,000
 * keys) and leaves no freed tree scattered between the keys it kept. 0; -EAGAIN for any
 * other layout or any fault (the caller parses the document whole, which names the fault);
 * -ENOMEM.
 */
static int snap_parse_lines(struct file_backend *fb, const char *path, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl = memchr(p, '\n', len);
	bool more = true, trailing = false; /* an entry may follow; the last ended in ',' */
	int err;

	if (!nl || (err = snap_header(fb, path, p, (size_t)(nl - p))))
		return -EAGAIN;
	for (p = nl + 1; p < end; p = nl + 1) {
		size_t n;
		struct json_object *o;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return -EAGAIN;
		n = (size_t)(nl - p);
		if (n == 2 && !memcmp(p, "]}", 2))
			return nl + 1 == end && !trailing ? 0 : -EAGAIN;
		if (!more)
			return -EAGAIN; /* an entry after one without ',' */
		more = trailing = n && p[n - 1] == ',';
		o = line_parse(p, more ? n - 1 : n);
		if (!o)
			return -EAGAIN;
		err = snap_entry(fb, o, text, p, more ? n - 1 : n);
		json_object_put(o);
		if (err)
			return err == -ENOMEM ? err : -EAGAIN;
	}
	return -EAGAIN;
}

static int snap_load(struct file_backend *fb)
{
	char path[PATH_MAX];
	struct json_object *root;
	char *text;
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
	fb->snap_bytes = len;
	if (stat(path, &fb->snap_st)) {
		err = -errno;
		free(text);
		return err;
	}
	err = snap_parse_lines(fb, path, text, len);
	if (err != -EAGAIN) {
		free(text);
		return err;
	}
	kv_clear(fb);
	err = parse_text(path, text, len, &root);
	free(text);
	if (err)
		return err;
	err = snap_parse(fb, path, root, false);
	json_object_put(root);
	return err;
}

static int buf_reserve(char **buf, size_t *cap, size_t len, size_t need)
{
	char *tmp;
	size_t c = *cap;

	if (len + need <= c)
		return 0;
	while (len + need > c)
		c *= 2;
	tmp = realloc(*buf, c);
	if (!tmp)
		return -ENOMEM;
	*buf = tmp;
	*cap = c;
	return 0;
}

/* The snapshot's text for the entries as they are; ref[i]: where entry i's value is in it. */
static int snap_text(struct file_backend *fb, const char *old, uint64_t *ref, char **out,
		     size_t *out_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int err = buf ? 0 : -ENOMEM;

	if (!err)
		len = (size_t)snprintf(buf, cap, "{\"format\":%d,\"revision\":%llu,\"entries\":[",
				       REG_FORMAT, (unsigned long long)fb->rev);
	for (size_t i = 0; !err && i < fb->n; i++) {
		struct json_object *k = json_object_new_string(fkv_key(&fb->kvs[i]));
		const char *ks = json_object_to_json_string(k), *v;
		size_t vl;

		fkv_value(&fb->kvs[i], old, &v, &vl);
		err = buf_reserve(&buf, &cap, len, strlen(ks) + vl + 64);
		if (!err) {
			len += (size_t)snprintf(
				buf + len, cap - len,
				"%s\n{\"key\":%s,\"mod_revision\":%llu,\"value\":", i ? "," : "",
				ks, (unsigned long long)fb->kvs[i].mod_rev);
			ref[i] = vl && vl <= REF_LEN_MAX && len <= REF_OFF_MAX
					 ? (uint64_t)len << REF_LEN_BITS | vl
					 : 0;
			if (!ref[i] && fb->kvs[i].snap_ref)
				err = -EFBIG; /* its text would be lost with the old file */
			memcpy(buf + len, v, vl);
			len += vl;
			buf[len++] = '}';
		}
		json_object_put(k);
	}
	if (!err && !(err = buf_reserve(&buf, &cap, len, 8)))
		len += (size_t)snprintf(buf + len, cap - len, "\n]}\n");
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* The snapshot written is now the one the values refer to: those held move out of memory. */
static void refs_adopt(struct file_backend *fb, const uint64_t *ref)
{
	for (size_t i = 0; i < fb->n; i++) {
		struct fkv *e = &fb->kvs[i];
		char *t;

		if (!ref[i])
			continue; /* held in memory (snap_text refuses to lose a referenced one) */
		if (!e->snap_ref && (t = realloc(e->text, strlen(e->text) + 1)))
			e->text = t;
		else if (!e->snap_ref)
			continue; /* could not shrink: keep the value held */
		e->snap_ref = ref[i];
	}
}

/* One entry a line, so that the snapshot stays readable and diffable. */
static int snap_write(struct file_backend *fb)
{
	char path[PATH_MAX], *old = NULL, *buf = NULL;
	uint64_t *ref = calloc(fb->n + 1, sizeof(*ref));
	size_t old_len, len = 0;
	struct stat st;
	int err = ref ? snap_read(fb, &old, &old_len) : -ENOMEM;

	if (!err)
		err = snap_text(fb, old, ref, &buf, &len);
	free(old);
	if (err) {
		free(ref);
		return err;
	}
	err = file_write_atomic(fb->dir, REG_FILE, buf, len, 0600);
	free(buf);
	if (err)
		p_err("failed to write registry snapshot '%s/%s': %s", fb->dir, REG_FILE,
		      strerror(-err));
	/* Even a failed write may have renamed the new file in place (a failed fsync of the
	 * directory): the values then refer to it. */
	snprintf(path, sizeof(path), "%s/%s", fb->dir, REG_FILE);
	if (!stat(path, &st) && !same_file(&st, &fb->snap_st) && (size_t)st.st_size == len) {
		fb->snap_st = st;
		fb->snap_bytes = len;
		refs_adopt(fb, ref);
	}
	free(ref);
	return err;
}

/* ---- write-ahead log ---- */

static int wal_apply(struct file_backend *fb, struct json_object *ops, uint64_t rev)
{
	for (size_t i = 0; i < json_object_array_length(ops); i++) {
		struct json_object *op = json_object_array_get_idx(ops, i), *k, *v = NULL;
		bool put = json_object_object_get_ex(op, "put", &k);

		if (!put && !json_object_object_get_ex(op, "del", &k))
			return -EINVAL;
		if (!json_object_is_type(k, json_type_string) ||
		    (put && !json_object_object_get_ex(op, "value", &v)))
			return -EINVAL;
		if (kv_set(fb, json_object_get_string(k), put ? json_text(v) : NULL, rev))
			return -ENOMEM;
	}
	return 0;
}

/* One log line: 1 applied, 0 already in the snapshot, -errno malformed. */
static int wal_line(struct file_backend *fb, const char *line, size_t len)
{
	struct json_object *o, *r, *ops;
	uint64_t rev;
	int err;

	o = json_tokener_parse(line);
	(void)len;
	if (!o || !json_object_object_get_ex(o, "rev", &r) ||
	    !json_object_is_type(r, json_type_int) || !json_object_object_get_ex(o, "ops", &ops) ||
	    !json_object_is_type(ops, json_type_array)) {
		json_object_put(o);
		return -EINVAL;
	}
	rev = (uint64_t)json_object_get_int64(r);
	if (rev <= fb->rev) {
		json_object_put(o);
		return 0;
	}
	if (rev != fb->rev + 1) {
		json_object_put(o);
		return -ERANGE;
	}
	err = wal_apply(fb, ops, rev);
	json_object_put(o);
	if (err)
		return err;
	fb->rev = rev;
	return 1;
}

/* A bad record before the last line: not a torn append but damage, so nothing is cut
 * automatically (acknowledged transactions follow it). What is readable and how to go on. */
static void wal_corrupt(const struct file_backend *fb, const char *path, size_t off, size_t len,
			int err)
{
	if (err == -ENOMEM) {
		p_err("failed to replay registry log '%s': %s", path, strerror(-err));
		return;
	}
	p_err("registry log '%s' is corrupt at byte %zu of %zu: %s", path, off, len,
	      err == -ERANGE ? "revision out of order" : "not a transaction record");
	p_err("hint: the snapshot and the log before that byte make revision %llu. To start "
	      "from it, losing the %zu bytes of transactions after it, keep a copy and cut the "
	      "log: cp %s %s.corrupt && truncate -s %zu %s; or restore %s from a backup",
	      (unsigned long long)fb->rev, len - off, path, path, off, path, fb->dir);
}

/* Replay the log; cut a torn last line (a write that was never acknowledged). */
static int wal_replay(struct file_backend *fb, const char *path)
{
	size_t len, off = 0;
	char *text;
	int err = file_read_all(path, REG_FILE_MAX, &text, &len);

	if (err == -ENOENT)
		return 0;
	if (err) {
		p_err("failed to read registry log '%s': %s", path, strerror(-err));
		return err;
	}
	while (off < len) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - text) : len;

		if (nl)
			*nl = '\0';
		err = nl ? wal_line(fb, text + off, end - off) : -EINVAL;
		if (err < 0 && (!nl || end + 1 == len) && err != -ENOMEM && err != -ERANGE) {
			p_warn("registry log '%s': cutting a torn last transaction at byte %zu "
			       "(never acknowledged)",
			       path, off);
			if (truncate(path, (off_t)off))
				err = -errno;
			else
				err = 0;
			len = off;
			break;
		}
		if (err < 0) {
			wal_corrupt(fb, path, off, len, err);
			free(text);
			return err == -ERANGE ? -EINVAL : err;
		}
		off = end + 1;
	}
	free(text);
	fb->wal_bytes = len;
	return err < 0 ? err : 0;
}

static int wal_open(struct file_backend *fb)
{
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/%s", fb->dir, REG_WAL);
	err = wal_replay(fb, path);
	if (err)
		return err;
	fb->wal_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fb->wal_fd < 0) {
		p_err("failed to open registry log '%s': %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static char *wal_record(const struct kv_op *ops, size_t n, uint64_t rev)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char *text = NULL;
	int err = 0;

	json_object_object_add(o, "rev", json_object_new_int64((int64_t)rev));
	json_object_object_add(o, "ops", arr);
	for (size_t i = 0; i < n && !err; i++) {
		struct json_object *op = json_object_new_object(), *v = NULL;

		json_object_object_add(op, ops[i].type == KV_PUT ? "put" : "del",
				       json_object_new_string(ops[i].key));
		if (ops[i].type == KV_PUT) {
			v = json_tokener_parse(ops[i].value);
			err = v ? 0 : -EINVAL;
			json_object_object_add(op, "value", v);
		}
		json_object_array_add(arr, op);
	}
	if (!err &&
	    asprintf(&text, "%s\n",
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		text = NULL;
	json_object_put(o);
	return text;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The log grew past the snapshot: fold it in. A failure leaves both as they were. */
static void wal_compact(struct file_backend *fb)
{
	if (fb->wal_bytes < fb->compact_min_bytes || fb->wal_bytes < fb->snap_bytes)
		return;
	if (snap_write(fb))
		return;
	if (ftruncate(fb->wal_fd, 0)) {
		p_warn("failed to truncate registry log: %s", strerror(errno));
		return;
	}
	fb->wal_bytes = 0;
}

/* ---- watch queue ---- */

static int queue_event(struct file_backend *fb, const struct kv_op *op, uint64_t rev)
{
	struct kv_event *e;

	if (fb->n_ev == fb->cap_ev) {
		size_t cap = fb->cap_ev ? fb->cap_ev * 2 : 16;
		struct kv_event *tmp = realloc(fb->ev, cap * sizeof(*tmp));

		if (!tmp)
			return -ENOMEM;
		fb->ev = tmp;
		fb->cap_ev = cap;
	}
	e = &fb->ev[fb->n_ev];
	*e = (struct kv_event){ .type = op->type, .mod_rev = rev };
	e->key = strdup(op->key);
	e->value = op->type == KV_PUT ? strdup(op->value) : NULL;
	if (!e->key || (op->type == KV_PUT && !e->value)) {
		free(e->key);
		free(e->value);
		return -ENOMEM;
	}
	fb->n_ev++;
	return 0;
}

/* ---- ops ---- */

static int file_range(struct registry_backend *b, const char *prefix, struct kv **out, size_t *n,
		      uint64_t *rev)
{
	struct file_backend *fb = (struct file_backend *)b;
	size_t plen = strlen(prefix), cnt = 0, snap_len;
	char *snap;
	int err = snap_read(fb, &snap, &snap_len);

	if (err)
		return err;
	*out = calloc(fb->n ? fb->n : 1, sizeof(**out));
	err = *out ? 0 : -ENOMEM;
	for (size_t i = 0; !err && i < fb->n; i++) {
		struct kv *d = &(*out)[cnt];
		const char *v;
		size_t vl;

		if (strncmp(fkv_key(&fb->kvs[i]), prefix, plen))
			continue;
		fkv_value(&fb->kvs[i], snap, &v, &vl);
		d->key = strdup(fkv_key(&fb->kvs[i]));
		d->value = strndup(v, vl);
		d->mod_rev = fb->kvs[i].mod_rev;
		cnt++;
		if (!d->key || !d->value)
			err = -ENOMEM;
	}
	free(snap);
	if (err) {
		kvs_free(*out, cnt);
		*out = NULL;
		return err;
	}
	*n = cnt;
	*rev = fb->rev;
	return 0;
}

static bool compare_holds(struct file_backend *fb, const struct kv_op *op)
{
	struct fkv *cur = kv_find(fb, op->key);

	if (op->expect_rev == KV_REV_ANY)
		return true;
	if (op->expect_rev == KV_REV_ABSENT)
		return !cur;
	return cur && cur->mod_rev == op->expect_rev;
}

static int key_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* As in etcd, a transaction names each key once: -EINVAL otherwise. O(n log n). */
static int ops_unique(const struct kv_op *ops, size_t n)
{
	const char **keys = calloc(n + 1, sizeof(*keys));
	int err = 0;

	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		keys[i] = ops[i].key;
	qsort(keys, n, sizeof(*keys), key_ptr_cmp);
	for (size_t i = 1; i < n && !err; i++)
		if (!strcmp(keys[i - 1], keys[i]))
			err = -EINVAL;
	free(keys);
	return err;
}

static int file_txn(struct registry_backend *b, const struct kv_op *ops, size_t n, uint64_t *rev,
		    size_t *failed)
{
	struct file_backend *fb = (struct file_backend *)b;
	uint64_t next = fb->rev + 1, one = 1;
	size_t queued = fb->n_ev;
	char *rec;
	int err;

	for (size_t i = 0; i < n; i++) {
		if (!compare_holds(fb, &ops[i])) {
			*failed = i;
			return -ECANCELED;
		}
	}
	err = ops_unique(ops, n);
	if (err)
		return err;
	rec = wal_record(ops, n, next);
	if (!rec)
		return -ENOMEM;
	/* The events first: once the record is durable nothing may fail. */
	for (size_t i = 0; i < n && fb->watch_from != UINT64_MAX; i++) {
		err = queue_event(fb, &ops[i], next);
		if (err)
			goto undo;
	}
	err = write_all(fb->wal_fd, rec, strlen(rec));
	if (!err && fdatasync(fb->wal_fd))
		err = -errno;
	if (err) {
		p_err("failed to append to registry log '%s/%s': %s", fb->dir, REG_WAL,
		      strerror(-err));
		/* A partial line must not be followed by the next one. */
		if (ftruncate(fb->wal_fd, (off_t)fb->wal_bytes))
			p_warn("failed to cut a partial registry log record: %s", strerror(errno));
		goto undo;
	}
	fb->wal_bytes += strlen(rec);
	free(rec);
	for (size_t i = 0; i < n; i++) {
		if (kv_set(fb, ops[i].key, ops[i].type == KV_PUT ? ops[i].value : NULL, next)) {
			/* Durable but not in memory: the process cannot go on truthfully. */
			p_err("out of memory after a registry commit; exiting (the log has it)");
			abort();
		}
	}
	fb->rev = next;
	*rev = next;
	if (fb->n_ev > queued && write(fb->event_fd, &one, sizeof(one)) < 0)
		p_debug("registry watch eventfd: %s", strerror(errno));
	wal_compact(fb);
	return 0;
undo:
	kv_events_free(fb->ev + queued, fb->n_ev - queued);
	fb->n_ev = queued;
	free(rec);
	return err;
}

/* The transaction runs at once (one fdatasync); its completion is queued for txn_reap and
 * the watch eventfd made readable, so that the file backend completes like any other. */
static int file_txn_submit(struct registry_backend *b, const struct kv_op *ops, size_t n,
			   kv_txn_done_fn fn, void *arg)
{
	struct file_backend *fb = (struct file_backend *)b;
	struct file_done d = { .fn = fn, .arg = arg };
	uint64_t one = 1;

	if (fb->n_done == fb->cap_done) {
		size_t cap = fb->cap_done ? fb->cap_done * 2 : 8;
		struct file_done *tmp = realloc(fb->done, cap * sizeof(*tmp));

		if (!tmp)
			return -ENOMEM;
		fb->done = tmp;
		fb->cap_done = cap;
	}
	d.err = file_txn(b, ops, n, &d.rev, &d.failed);
	if (d.err == -ECANCELED)
		d.rev = fb->rev;
	fb->done[fb->n_done++] = d;
	if (write(fb->event_fd, &one, sizeof(one)) < 0)
		p_debug("registry watch eventfd: %s", strerror(errno));
	return 0;
}

static void file_txn_reap(struct registry_backend *b)
{
	struct file_backend *fb = (struct file_backend *)b;

	/* One at a time from the front: a completion may submit the next transaction. */
	while (fb->n_done) {
		struct file_done d = fb->done[0];

		memmove(fb->done, fb->done + 1, --fb->n_done * sizeof(*fb->done));
		d.fn(d.arg, d.err, d.rev, d.failed);
	}
}

static int file_watch(struct registry_backend *b, uint64_t from_rev)
{
	struct file_backend *fb = (struct file_backend *)b;

	if (from_rev != fb->rev)
		return -ESTALE; /* no history kept in memory: range again */
	fb->watch_from = from_rev;
	return 0;
}

static int file_watch_fd(struct registry_backend *b)
{
	return ((struct file_backend *)b)->event_fd;
}

static int file_watch_read(struct registry_backend *b, struct kv_event **ev, size_t *n)
{
	struct file_backend *fb = (struct file_backend *)b;
	uint64_t cnt;

	if (read(fb->event_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	*ev = fb->ev;
	*n = fb->n_ev;
	fb->ev = NULL;
	fb->n_ev = fb->cap_ev = 0;
	return 0;
}

static void file_free(struct registry_backend *b)
{
	struct file_backend *fb = (struct file_backend *)b;

	if (!fb)
		return;
	for (size_t i = 0; i < fb->n; i++)
		free(fb->kvs[i].text);
	free(fb->kvs);
	kv_events_free(fb->ev, fb->n_ev);
	free(fb->done);
	if (fb->wal_fd >= 0)
		close(fb->wal_fd);
	if (fb->event_fd >= 0)
		close(fb->event_fd);
	if (fb->lock_fd >= 0)
		close(fb->lock_fd);
	free(fb);
}

static const struct registry_backend_ops file_ops = {
	.name = "file",
	.range = file_range,
	.txn_submit = file_txn_submit,
	.txn_reap = file_txn_reap,
	.watch = file_watch,
	.watch_fd = file_watch_fd,
	.watch_read = file_watch_read,
	.free = file_free,
};

void registry_file_set_compaction(struct registry_backend *b, size_t min_bytes)
{
	((struct file_backend *)b)->compact_min_bytes = min_bytes;
}

/* Snapshot writes interrupted by a kill leave .registry.json.tmp.PID (fsutil): we hold the
 * lock, so nobody else is writing one. */
static void remove_leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "." REG_FILE ".tmp.", strlen("." REG_FILE ".tmp.")))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0))
			p_warn("failed to remove leftover '%s/%s': %s", dir, de->d_name,
			       strerror(errno));
		else
			p_info("removed leftover '%s/%s' of an interrupted write", dir, de->d_name);
	}
	closedir(d);
}

static int lock_dir(struct file_backend *fb)
{
	char lock[PATH_MAX];

	snprintf(lock, sizeof(lock), "%s/%s", fb->dir, REG_LOCK);
	fb->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fb->lock_fd < 0) {
		p_err("failed to open registry lock '%s': %s", lock, strerror(errno));
		return -errno;
	}
	if (flock(fb->lock_fd, LOCK_EX | LOCK_NB)) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		p_err("failed to lock registry '%s': %s (is another caelumd running?)", lock,
		      err == -EBUSY ? "held by another process" : strerror(errno));
		return err;
	}
	return 0;
}

int registry_file_open(const char *dir, struct registry_backend **out)
{
	struct file_backend *fb = calloc(1, sizeof(*fb));
	int err;

	if (!fb)
		return -ENOMEM;
	fb->base.ops = &file_ops;
	fb->lock_fd = fb->wal_fd = -1;
	fb->watch_from = UINT64_MAX;
	fb->compact_min_bytes = WAL_COMPACT_MIN_BYTES;
	snprintf(fb->dir, sizeof(fb->dir), "%s", dir);
	fb->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fb->event_fd < 0) {
		err = -errno;
		goto err;
	}
	err = lock_dir(fb);
	if (err)
		goto err;
	remove_leftovers(dir);
	err = snap_load(fb);
	if (!err)
		err = wal_open(fb);
	if (err)
		goto err;
	kv_shrink(fb);
	*out = &fb->base;
	return 0;
err:
	file_free(&fb->base);
	return err;
}
