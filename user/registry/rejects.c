// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Registry entries this caelumd cannot read (rejects.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "rejects.h"

static void reject_free(struct reject *j)
{
	free(j->key);
	free(j->reason);
}

static ssize_t reject_find(const struct rejects *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].key, key))
			return (ssize_t)i;
	return -1;
}

int rejects_put(struct rejects *r, const char *key, uint64_t mod_rev, const char *reason)
{
	struct reject j = { .key = strdup(key), .mod_rev = mod_rev, .reason = strdup(reason) };

	if (!j.key || !j.reason) {
		reject_free(&j);
		return -ENOMEM;
	}
	rejects_drop(r, key);
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct reject *tmp = realloc(r->v, cap * sizeof(*tmp));

		if (!tmp) {
			reject_free(&j);
			return -ENOMEM;
		}
		r->v = tmp;
		r->cap = cap;
	}
	r->v[r->n++] = j;
	r->total++;
	return 0;
}

bool rejects_drop(struct rejects *r, const char *key)
{
	ssize_t i = reject_find(r, key);

	if (i < 0)
		return false;
	reject_free(&r->v[i]);
	memmove(&r->v[i], &r->v[i + 1], (r->n - (size_t)i - 1) * sizeof(*r->v));
	r->n--;
	return true;
}

uint64_t rejects_rev(const struct rejects *r, const char *key)
{
	ssize_t i = reject_find(r, key);

	return i < 0 ? 0 : r->v[i].mod_rev;
}

void rejects_clear(struct rejects *r)
{
	for (size_t i = 0; i < r->n; i++)
		reject_free(&r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

struct json_object *rejects_json(const struct rejects *r, size_t max)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < r->n && i < max; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "key", json_object_new_string(r->v[i].key));
		json_object_object_add(o, "mod_revision", json_object_new_uint64(r->v[i].mod_rev));
		json_object_object_add(o, "reason", json_object_new_string(r->v[i].reason));
		json_object_array_add(a, o);
	}
	return a;
}

void rejects_replace(struct rejects *r, struct rejects *fresh)
{
	for (size_t i = 0; i < fresh->n; i++) {
		ssize_t j = reject_find(r, fresh->v[i].key);

		if (j < 0 || r->v[j].mod_rev != fresh->v[i].mod_rev)
			r->total++;
	}
	for (size_t i = 0; i < r->n; i++)
		reject_free(&r->v[i]);
	free(r->v);
	r->v = fresh->v;
	r->n = fresh->n;
	r->cap = fresh->cap;
	*fresh = (struct rejects){};
}
