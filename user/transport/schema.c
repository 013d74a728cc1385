// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jsonv.h"
#include "schema.h"

static bool fail(char *why, size_t len, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool fail(char *why, size_t len, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(why, len, "%s: ", path);

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < len)
		vsnprintf(why + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

static struct json_object *kw(struct json_object *schema, const char *key)
{
	struct json_object *v = NULL;

	return json_object_object_get_ex(schema, key, &v) ? v : NULL;
}

static bool type_ok(const char *type, struct json_object *v)
{
	json_type t = json_object_get_type(v);

	if (!strcmp(type, "object"))
		return t == json_type_object;
	if (!strcmp(type, "array"))
		return t == json_type_array;
	if (!strcmp(type, "string"))
		return t == json_type_string;
	if (!strcmp(type, "integer"))
		return t == json_type_int;
	if (!strcmp(type, "number"))
		return t == json_type_int || t == json_type_double;
	if (!strcmp(type, "boolean"))
		return t == json_type_boolean;
	if (!strcmp(type, "null"))
		return t == json_type_null;
	return false;
}

static bool check_object(struct json_object *schema, struct json_object *v, const char *path,
			 char *why, size_t len)
{
	struct json_object *props = kw(schema, "properties"), *req = kw(schema, "required");
	struct json_object *addl = kw(schema, "additionalProperties");
	char sub[JV_PATH_MAX];

	for (size_t i = 0; req && i < json_object_array_length(req); i++) {
		const char *k = json_object_get_string(json_object_array_get_idx(req, i));

		if (!json_object_object_get_ex(v, k, NULL)) {
			jv_path_key(sub, path, k);
			return fail(why, len, sub, "missing required property");
		}
	}
	json_object_object_foreach (v, key, val) {
		struct json_object *ps = props ? kw(props, key) : NULL;

		jv_path_key(sub, path, key);
		if (!ps) {
			if (addl && json_object_is_type(addl, json_type_boolean) &&
			    !json_object_get_boolean(addl))
				return fail(why, len, sub, "unknown property");
			continue;
		}
		if (!schema_check(ps, val, sub, why, len))
			return false;
	}
	return true;
}

static bool check_array(struct json_object *schema, struct json_object *v, const char *path,
			char *why, size_t len)
{
	struct json_object *items = kw(schema, "items"), *x;
	size_t n = json_object_array_length(v);
	char sub[JV_PATH_MAX];

	if ((x = kw(schema, "minItems")) && n < (size_t)json_object_get_int64(x))
		return fail(why, len, path, "%zu items, at least %lld", n,
			    (long long)json_object_get_int64(x));
	if ((x = kw(schema, "maxItems")) && n > (size_t)json_object_get_int64(x))
		return fail(why, len, path, "%zu items, at most %lld", n,
			    (long long)json_object_get_int64(x));
	for (size_t i = 0; items && i < n; i++) {
		jv_path_idx(sub, path, i);
		if (!schema_check(items, json_object_array_get_idx(v, i), sub, why, len))
			return false;
	}
	return true;
}

static bool check_scalar(struct json_object *schema, struct json_object *v, const char *path,
			 char *why, size_t len)
{
	struct json_object *x, *en = kw(schema, "enum");
	char repr[96];

	if (json_object_is_type(v, json_type_string)) {
		size_t n = (size_t)json_object_get_string_len(v);

		if ((x = kw(schema, "minLength")) && n < (size_t)json_object_get_int64(x))
			return fail(why, len, path, "shorter than %lld characters",
				    (long long)json_object_get_int64(x));
		if ((x = kw(schema, "maxLength")) && n > (size_t)json_object_get_int64(x))
			return fail(why, len, path, "longer than %lld characters",
				    (long long)json_object_get_int64(x));
	}
	if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		if ((x = kw(schema, "minimum")) && d < json_object_get_double(x))
			return fail(why, len, path, "%s is below the minimum %s",
				    jv_repr(v, repr, sizeof(repr)), json_object_get_string(x));
		if ((x = kw(schema, "maximum")) && d > json_object_get_double(x))
			return fail(why, len, path, "%s is above the maximum %s",
				    jv_repr(v, repr, sizeof(repr)), json_object_get_string(x));
	}
	if (en) {
		for (size_t i = 0; i < json_object_array_length(en); i++) {
			struct json_object *e = json_object_array_get_idx(en, i);

			if (json_object_equal(e, v))
				return true;
		}
		return fail(why, len, path, "%s is not one of %s", jv_repr(v, repr, sizeof(repr)),
			    json_object_to_json_string_ext(en, JSON_C_TO_STRING_PLAIN));
	}
	return true;
}

bool schema_check(struct json_object *schema, struct json_object *v, const char *path, char *why,
		  size_t why_len)
{
	struct json_object *type = kw(schema, "type");
	const char *p = path && *path ? path : "(arguments)";
	char repr[96];

	if (type && !type_ok(json_object_get_string(type), v))
		return fail(why, why_len, p, "expected %s, got %s %s", json_object_get_string(type),
			    jv_type_name(json_object_get_type(v)), jv_repr(v, repr, sizeof(repr)));
	if (json_object_is_type(v, json_type_object))
		return check_object(schema, v, path, why, why_len);
	if (json_object_is_type(v, json_type_array))
		return check_array(schema, v, p, why, why_len);
	return check_scalar(schema, v, p, why, why_len);
}
