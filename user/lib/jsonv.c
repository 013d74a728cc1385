// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonv.h"

void verr_add(struct verr *e, const char *file, const char *path, const char *fmt, ...)
{
	char msg[1024];
	char *line;
	va_list ap;
	int n;

	if (e->n >= VERR_MAX) {
		e->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path && *path)
		n = asprintf(&line, "%s: %s: %s", file, path, msg);
	else
		n = asprintf(&line, "%s: %s", file, msg);
	if (n < 0) {
		e->dropped++;
		return;
	}
	e->msgs[e->n++] = line;
}

void verr_add_raw(struct verr *e, const char *msg)
{
	char *line;

	if (e->n >= VERR_MAX || !(line = strdup(msg))) {
		e->dropped++;
		return;
	}
	e->msgs[e->n++] = line;
}

void verr_free(struct verr *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	e->n = 0;
	e->dropped = 0;
}

char *verr_join(const struct verr *e)
{
	size_t len = 64, off = 0;
	char *out;

	if (!e->n)
		return NULL;
	for (size_t i = 0; i < e->n; i++)
		len += strlen(e->msgs[i]) + 1;
	out = malloc(len);
	if (!out)
		return NULL;
	for (size_t i = 0; i < e->n; i++)
		off += sprintf(out + off, "%s%s", i ? "\n" : "", e->msgs[i]);
	if (e->dropped)
		sprintf(out + off, "\n(%zu more errors)", e->dropped);
	return out;
}

struct json_object *verr_to_json(const struct verr *e)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < e->n; i++)
		json_object_array_add(arr, json_object_new_string(e->msgs[i]));
	if (e->dropped) {
		char buf[64];

		snprintf(buf, sizeof(buf), "(%zu more errors)", e->dropped);
		json_object_array_add(arr, json_object_new_string(buf));
	}
	return arr;
}

static void offset_to_line_col(const char *text, size_t off, unsigned int *line, unsigned int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && text[i]; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* ---- duplicate keys ----
 * json-c keeps the last of two equal keys in an object without a word (RFC 8259 section 4:
 * names SHOULD be unique; what a parser does with duplicates is unpredictable). A document
 * here is input a person wrote or a client sent: a second "mode" after "mode": "enforce"
 * silently winning is refused instead. The walk runs over text json-c has already accepted,
 * so it only needs to find where values and keys start and end. */

struct jv_key {
	const char *p; /* the key's text between its quotes, escapes undecoded */
	size_t len;
	size_t at; /* offset of its opening quote */
};

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* t[i] is '"': the offset just past the closing quote. */
static size_t skip_string(const char *t, size_t len, size_t i)
{
	for (i++; i < len && t[i] != '"'; i++)
		if (t[i] == '\\')
			i++;
	return i + 1;
}

/* The key as a C string: the raw bytes, or json-c's decoding when it has escapes (so that
 * "a" and "\u0061" are one key). malloc'd; NULL on ENOMEM. */
static char *key_text(const struct jv_key *k, const char *t)
{
	struct json_object *o;
	char *s;

	if (!memchr(k->p, '\\', k->len))
		return strndup(k->p, k->len);
	s = strndup(t + k->at, k->len + 2);
	o = s ? json_tokener_parse(s) : NULL;
	free(s);
	s = o && json_object_is_type(o, json_type_string) ? strdup(json_object_get_string(o))
							  : NULL;
	json_object_put(o);
	return s;
}

/* Where the walk is, rendered only for an error: a key of an object or an index. */
struct dup_path {
	const struct dup_path *up;
	const struct jv_key *key; /* NULL: idx */
	size_t idx;
};

static void path_render(const struct dup_path *p, const char *t, char *dst)
{
	char up[JV_PATH_MAX] = "", *name;

	if (!p) {
		*dst = '\0';
		return;
	}
	path_render(p->up, t, up);
	if (!p->key) {
		jv_path_idx(dst, up, p->idx);
		return;
	}
	name = key_text(p->key, t);
	jv_path_key(dst, up, name ? name : "?");
	free(name);
}

struct dup_walk {
	const char *t;
	size_t len;
	const char *label;
	struct verr *e;
	bool found;
};

static int slice_cmp(const void *a, const void *b)
{
	const struct jv_key *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void dup_report(struct dup_walk *w, const struct dup_path *at, const struct jv_key *k)
{
	struct dup_path here = { at, k, 0 };
	char path[JV_PATH_MAX], *name = key_text(k, w->t);
	unsigned int line, col;

	offset_to_line_col(w->t, k->at, &line, &col);
	path_render(&here, w->t, path);
	verr_add(w->e, w->label, path,
		 "line %u, column %u: duplicate key \"%s\" (a key may appear once in an object)",
		 line, col, name ? name : "?");
	free(name);
	w->found = true;
}

/* The first key of keys[0..n) (in document order) equal to an earlier one, or NULL. */
static const struct jv_key *first_repeat(const struct jv_key *keys, size_t n, const char *t)
{
	const struct jv_key *hit = NULL;
	bool escaped = false;
	struct jv_key *s;
	char **names;

	for (size_t k = 0; k < n; k++)
		escaped |= memchr(keys[k].p, '\\', keys[k].len) != NULL;
	if (!escaped) {
		/* Sorted copies: equal neighbours are a repeat; the later one in the text is
		 * the one to name. Among several, the earliest of those. */
		if (!(s = malloc(n * sizeof(*s))))
			return NULL;
		memcpy(s, keys, n * sizeof(*s));
		qsort(s, n, sizeof(*s), slice_cmp);
		for (size_t k = 1; k < n; k++) {
			const struct jv_key *later = s[k].at > s[k - 1].at ? &s[k] : &s[k - 1];

			if (!slice_cmp(&s[k - 1], &s[k]) && (!hit || later->at < hit->at))
				hit = later;
		}
		for (size_t k = 0; hit && k < n; k++)
			if (keys[k].at == hit->at)
				hit = &keys[k];
		free(s);
		return hit;
	}
	/* Escapes: compare what they decode to (quadratic, and rare). */
	if (!(names = calloc(n, sizeof(*names))))
		return NULL;
	for (size_t k = 0; k < n; k++)
		names[k] = key_text(&keys[k], t);
	for (size_t k = 1; k < n && !hit; k++)
		for (size_t j = 0; j < k && !hit; j++)
			if (names[k] && names[j] && !strcmp(names[k], names[j]))
				hit = &keys[k];
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	return hit;
}

static size_t walk_value(struct dup_walk *w, size_t i, const struct dup_path *at);

static size_t walk_object(struct dup_walk *w, size_t i, const struct dup_path *at)
{
	struct jv_key *keys = NULL, *nk;
	const struct jv_key *rep;
	size_t n = 0, cap = 0;

	i = skip_ws(w->t, w->len, i + 1);
	while (i < w->len && w->t[i] == '"') {
		size_t end = skip_string(w->t, w->len, i);
		struct dup_path child = { at, NULL, 0 };

		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			if (!(nk = realloc(keys, cap * sizeof(*keys)))) {
				free(keys);
				return w->len;
			}
			keys = nk;
		}
		keys[n] = (struct jv_key){ w->t + i + 1, end - i - 2, i };
		i = skip_ws(w->t, w->len, end);
		i = skip_ws(w->t, w->len, i + 1); /* ':' */
		/* keys may move when it grows: the child's path names a copy. */
		struct jv_key key = keys[n++];

		child.key = &key;
		i = skip_ws(w->t, w->len, walk_value(w, i, &child));
		if (i < w->len && w->t[i] == ',')
			i = skip_ws(w->t, w->len, i + 1);
	}
	if (n > 1 && !w->found && (rep = first_repeat(keys, n, w->t)))
		dup_report(w, at, rep);
	free(keys);
	return i + 1; /* past '}' */
}

static size_t walk_value(struct dup_walk *w, size_t i, const struct dup_path *at)
{
	size_t idx = 0;

	i = skip_ws(w->t, w->len, i);
	if (i >= w->len)
		return i;
	switch (w->t[i]) {
	case '{':
		return walk_object(w, i, at);
	case '[':
		i = skip_ws(w->t, w->len, i + 1);
		while (i < w->len && w->t[i] != ']') {
			struct dup_path child = { at, NULL, idx++ };

			i = skip_ws(w->t, w->len, walk_value(w, i, &child));
			if (i < w->len && w->t[i] == ',')
				i++;
		}
		return i + 1;
	case '"':
		return skip_string(w->t, w->len, i);
	default:
		while (i < w->len && !strchr(",]} \t\r\n", w->t[i]))
			i++;
		return i;
	}
}

bool jv_duplicate_keys(const char *label, const char *text, size_t len, struct verr *e)
{
	struct dup_walk w = { text, len, label, e, false };

	walk_value(&w, 0, NULL);
	return w.found;
}

int jv_parse_string(const char *label, const char *text, size_t len, struct json_object **out,
		    struct verr *e)
{
	struct json_tokener *tok = json_tokener_new();
	enum json_tokener_error jerr;
	struct json_object *obj;
	unsigned int line, col;
	size_t end;

	*out = NULL;
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!obj && jerr == json_tokener_continue) {
		offset_to_line_col(text, len, &line, &col);
		verr_add(e, label, NULL, "line %u, column %u: unexpected end of input", line, col);
	} else if (!obj || jerr != json_tokener_success) {
		offset_to_line_col(text, end, &line, &col);
		verr_add(e, label, NULL, "line %u, column %u: %s", line, col,
			 json_tokener_error_desc(jerr));
	} else if (!only_space(text + end, len - end)) {
		offset_to_line_col(text, end, &line, &col);
		verr_add(e, label, NULL, "line %u, column %u: unexpected data after the JSON value",
			 line, col);
	} else if (!jv_duplicate_keys(label, text, end, e)) {
		*out = obj;
		obj = NULL;
	}
	json_object_put(obj);
	json_tokener_free(tok);
	return *out ? 0 : -EINVAL;
}

int jv_parse_file(const char *path, struct json_object **out, struct verr *e)
{
	struct stat st;
	char *buf = NULL;
	ssize_t got = 0;
	int fd, err;

	*out = NULL;
	/* O_NONBLOCK: a FIFO (or a device) named like a JSON file must be refused, not waited
	 * on forever for a writer; it is refused below as not a regular file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st)) {
		err = -errno;
		verr_add(e, path, NULL, "cannot read: %s", strerror(-err));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > JV_FILE_MAX) {
		err = -EINVAL;
		verr_add(e, path, NULL, "not a regular file of at most %u bytes", JV_FILE_MAX);
		goto out;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	while (got < st.st_size) {
		ssize_t n = read(fd, buf + got, st.st_size - got);

		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			verr_add(e, path, NULL, "cannot read: %s", strerror(-err));
			goto out;
		}
		got += n;
	}
	buf[got] = '\0';
	err = jv_parse_string(path, buf, got, out, e);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

void jv_path_key(char *dst, const char *parent, const char *key)
{
	if (parent && *parent)
		snprintf(dst, JV_PATH_MAX, "%s.%s", parent, key);
	else
		snprintf(dst, JV_PATH_MAX, "%s", key);
}

void jv_path_idx(char *dst, const char *parent, size_t idx)
{
	snprintf(dst, JV_PATH_MAX, "%s[%zu]", parent ? parent : "", idx);
}

const char *jv_type_name(json_type t)
{
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_double:
		return "number";
	case json_type_int:
		return "integer";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	}
	return "unknown";
}

const char *jv_repr(struct json_object *v, char *buf, size_t len)
{
	json_type t = json_object_get_type(v);

	if (t == json_type_object)
		snprintf(buf, len, "{...}");
	else if (t == json_type_array)
		snprintf(buf, len, "[...]");
	else
		snprintf(buf, len, "%s",
			 json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE));
	if (strlen(buf) == len - 1 && len > 4)
		strcpy(buf + len - 4, "...");
	return buf;
}

bool jv_check_keys(struct json_object *obj, const char *file, const char *path,
		   const char *const *allowed, struct verr *e)
{
	bool ok = true;

	json_object_object_foreach (obj, key, val) {
		size_t i;
		char p[JV_PATH_MAX];

		(void)val;
		for (i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				break;
		if (allowed[i])
			continue;
		jv_path_key(p, path, key);
		verr_add(e, file, p, "unknown key");
		ok = false;
	}
	return ok;
}

bool jv_expect(struct json_object *v, json_type t, const char *file, const char *path,
	       struct verr *e)
{
	char buf[64];
	json_type got = json_object_get_type(v);

	if (got == t)
		return true;
	if (got == json_type_null)
		verr_add(e, file, path, "expected %s, got null", jv_type_name(t));
	else
		verr_add(e, file, path, "expected %s, got %s %s", jv_type_name(t),
			 jv_type_name(got), jv_repr(v, buf, sizeof(buf)));
	return false;
}

bool jv_get_int(struct json_object *v, int64_t lo, int64_t hi, const char *file, const char *path,
		int64_t *out, struct verr *e)
{
	int64_t x;

	if (!jv_expect(v, json_type_int, file, path, e))
		return false;
	errno = 0;
	x = json_object_get_int64(v);
	if (errno == EINVAL || x < lo || x > hi) {
		verr_add(e, file, path, "%s out of range %lld-%lld", json_object_to_json_string(v),
			 (long long)lo, (long long)hi);
		return false;
	}
	*out = x;
	return true;
}

void jv_get_string(struct json_object *v, const char *file, const char *key, char *dst, size_t len,
		   struct verr *e)
{
	const char *s;

	if (!jv_expect(v, json_type_string, file, key, e))
		return;
	s = json_object_get_string(v);
	if (strlen(s) >= len) {
		verr_add(e, file, key, "\"%.32s...\" is too long (%zu bytes, at most %zu)", s,
			 strlen(s), len - 1);
		return;
	}
	strcpy(dst, s);
}

static bool path_has_dotdot(const char *p)
{
	for (const char *c = p; (c = strstr(c, "..")); c += 2)
		if ((c == p || c[-1] == '/') && (c[2] == '/' || c[2] == '\0'))
			return true;
	return false;
}

/* Directory of the JSON file being read: relative paths in it are resolved against it. */
static void file_dir(const char *file, char *buf, size_t len)
{
	char real[PATH_MAX];

	if (!realpath(file, real)) {
		/* Not a file (a label, in tests): resolve against the working directory. */
		if (!getcwd(buf, len))
			snprintf(buf, len, "/");
		return;
	}
	*strrchr(real, '/') = '\0'; /* realpath is absolute: there is a '/' */
	snprintf(buf, len, "%s", real[0] ? real : "/");
}

void jv_get_path(struct json_object *v, const char *file, const char *key, char *dst,
		 struct verr *e)
{
	char buf[PATH_MAX] = "", dir[PATH_MAX];
	size_t n = e->n;

	jv_get_string(v, file, key, buf, sizeof(buf), e);
	if (e->n != n)
		return;
	if (!buf[0]) {
		verr_add(e, file, key, "empty path");
		return;
	}
	if (path_has_dotdot(buf)) {
		verr_add(e, file, key, "\"%s\" is not a path without '..'", buf);
		return;
	}
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = '\0';
	if (buf[0] == '/') {
		strcpy(dst, buf);
		return;
	}
	file_dir(file, dir, sizeof(dir));
	if (strlen(dir) + strlen(buf) + 2 > PATH_MAX) {
		verr_add(e, file, key, "\"%s\": path too long", buf);
		return;
	}
	snprintf(dst, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "", buf);
}
