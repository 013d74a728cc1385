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

#define JV_FILE_MAX (4U << 20) /* config and spec files are small; refuse anything huge */

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
	} else {
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
	fd = open(path, O_RDONLY | O_CLOEXEC);
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
		verr_add(e, file, key, "value too long (%zu bytes, at most %zu)", strlen(s),
			 len - 1);
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
