// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer: service specs (spec_from_json with databases, credentials, health, resources)
 * and database specs (dbspec_from_json), each parsed, rendered back, copied and freed;
 * plus the address syntax "host:port". Input: JSON text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "dbspec.h"
#include "log.h"
#include "spec.h"

static void service(struct json_object *root)
{
	struct service_spec s = {}, c = {};
	struct verr e = {};

	if (!spec_from_json(root, "fuzz.json", &s, &e)) {
		struct json_object *o = spec_to_json(&s);

		json_object_put(o);
		if (!spec_copy(&c, &s))
			spec_free(&c);
	}
	spec_free(&s);
	verr_free(&e);
}

static void database(struct json_object *root)
{
	struct db_spec d = {}, c = {};
	struct verr e = {};

	if (!dbspec_from_json(root, "fuzz.json", &d, &e)) {
		json_object_put(dbspec_to_json(&d));
		if (!dbspec_copy(&c, &d))
			dbspec_free(&c);
	}
	dbspec_free(&d);
	verr_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *root;
	char host[256], why[256], *s;
	uint16_t port;

	if (size > 1 << 16)
		return 0;
	log_init("fuzz", false, true);
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	db_address_parse(s, host, sizeof(host), &port, why, sizeof(why));
	service_name_valid(s);
	tok = json_tokener_new_ex(64);
	root = json_tokener_parse_ex(tok, s, (int)size);
	if (root && json_tokener_get_error(tok) == json_tokener_success) {
		service(root);
		database(root);
	}
	json_object_put(root);
	json_tokener_free(tok);
	free(s);
	return 0;
}
