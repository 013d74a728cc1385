/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The subset of JSON Schema that the MCP tools' inputSchema use, checked strictly: type
 * (object, array, string, integer, number, boolean), properties, required,
 * additionalProperties (false), enum (strings), minLength/maxLength, minimum/maximum,
 * items, minItems/maxItems. The first violation is reported as "PATH: message".
 */
#ifndef CAELUM_SCHEMA_H
#define CAELUM_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

/* true when v satisfies schema; otherwise why says where and how it does not. */
bool schema_check(struct json_object *schema, struct json_object *v, const char *path, char *why,
		  size_t why_len);

#endif /* CAELUM_SCHEMA_H */
