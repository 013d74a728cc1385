// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer: caelum.json (config_from_json) and the strings inside it that have parsers of
 * their own (listen_parse, peer_url_parse, host_name_check, port ranges). Input: JSON text.
 * A config must parse or be refused with messages, never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "config.h"
#include "log.h"
#include "portrange.h"

static void strings(const char *s)
{
	struct listen_cfg l = {};
	struct peer_url u;
	struct port_range r;
	char why[256];

	listen_parse(s, &l, why, sizeof(why));
	peer_url_parse(s, &u, why, sizeof(why));
	host_name_check(s, why, sizeof(why));
	port_range_parse(s, PROTO_BOTH, true, &r, why, sizeof(why));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	struct json_tokener *tok;
	struct json_object *root;
	struct verr e = {};
	char *s;

	if (size > 1 << 16)
		return 0;
	log_init("fuzz", false, true);
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	strings(s);
	tok = json_tokener_new_ex(64);
	root = json_tokener_parse_ex(tok, s, (int)size);
	if (root && json_tokener_get_error(tok) == json_tokener_success) {
		memset(&cfg, 0, sizeof(cfg));
		config_from_json(root, "fuzz.json", &cfg, &e);
		verr_free(&e);
	}
	json_object_put(root);
	json_tokener_free(tok);
	free(s);
	return 0;
}
