/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Strict JSON input: syntax errors with line and column, type-checked fields, unknown keys
 * rejected, and every error collected as "FILE: PATH: message" so that a user sees all of
 * them at once.
 */
#ifndef CAELUM_JSONV_H
#define CAELUM_JSONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define VERR_MAX 64 /* keep at most this many messages; the rest are counted */

struct verr {
	char *msgs[VERR_MAX];
	size_t n;	/* messages kept */
	size_t dropped; /* messages beyond VERR_MAX */
};

void verr_add(struct verr *e, const char *file, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A message that already names its source. */
void verr_add_raw(struct verr *e, const char *msg);
void verr_free(struct verr *e);
/* All messages joined by '\n' (malloc'd); NULL when there are none. */
char *verr_join(const struct verr *e);
/* Messages as a JSON array of strings (new reference). */
struct json_object *verr_to_json(const struct verr *e);

/* Parse a whole document; syntax errors and a key repeated in one object (RFC 8259 section
 * 4 leaves its meaning open) name line and column. 0, -EINVAL or -errno. */
int jv_parse_string(const char *label, const char *text, size_t len, struct json_object **out,
		    struct verr *e);
#define JV_FILE_MAX (4U << 20) /* config and spec files are small; refuse anything huge */
/* jv_parse_string of a regular file of at most JV_FILE_MAX bytes; anything else (a FIFO, a
 * device, a directory) is refused without blocking. */
int jv_parse_file(const char *path, struct json_object **out, struct verr *e);
/* text[0..len) is a JSON document json-c accepted: true when an object in it has a key
 * twice, with "label: PATH: line L, column C: duplicate key ..." added to e (the first such
 * key only). For callers that parse with json-c themselves. */
bool jv_duplicate_keys(const char *label, const char *text, size_t len, struct verr *e);

/* Child path helpers: "a" + "b" -> "a.b"; "a" + 3 -> "a[3]". Buffer is PATH_MAX-safe. */
#define JV_PATH_MAX 256
void jv_path_key(char *dst, const char *parent, const char *key);
void jv_path_idx(char *dst, const char *parent, size_t idx);

const char *jv_type_name(json_type t);
/* Short rendering of a value for error messages ("\"abc\"", "70000", "{...}"). */
const char *jv_repr(struct json_object *v, char *buf, size_t len);

/* Reject keys of obj not in allowed (NULL-terminated); false when any was found. */
bool jv_check_keys(struct json_object *obj, const char *file, const char *path,
		   const char *const *allowed, struct verr *e);
/* Type checks that report "expected T, got U (value)". */
bool jv_expect(struct json_object *v, json_type t, const char *file, const char *path,
	       struct verr *e);
/* Integer in [lo, hi] (rejects doubles and strings). */
bool jv_get_int(struct json_object *v, int64_t lo, int64_t hi, const char *file, const char *path,
		int64_t *out, struct verr *e);

/* A string of fewer than len bytes copied into dst ("value too long (N bytes, at most M)"). */
void jv_get_string(struct json_object *v, const char *file, const char *key, char *dst, size_t len,
		   struct verr *e);
/* A path (dst: PATH_MAX bytes): absolute, or relative to the directory of file (the JSON file
 * being read, resolved with realpath(3); the working directory when file is a label); not
 * empty, no ".." component, trailing slashes dropped. */
void jv_get_path(struct json_object *v, const char *file, const char *key, char *dst,
		 struct verr *e);

#endif /* CAELUM_JSONV_H */
