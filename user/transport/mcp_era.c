// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "mcp_era.h"
#include "version.h"

#define LIST_TTL_MS 60000 /* tools, resources and prompts do not change while caelumd runs */

static const char *const log_levels[] = { "debug", "info",     "notice", "warning",
					  "error", "critical", "alert",	 "emergency" };

/* Here rather than in mcp.c so that the edge stands alone (unit tests, the fuzzer). */
struct json_object *mcp_error(struct json_object *id, int code, const char *message)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(o, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "error", e);
	return o;
}

bool mcp_era_is_modern(const char *v)
{
	/* Revision identifiers are ISO dates: string order is date order. */
	return v && strlen(v) == 10 && strcmp(v, MCP_MODERN_VERSION) >= 0;
}

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *str_member(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int fail(struct json_object **err, int *status, struct json_object *id, int code,
		const char *msg, struct json_object *data)
{
	struct json_object *e;

	*err = mcp_error(id, code, msg);
	if (data && json_object_object_get_ex(*err, "error", &e))
		json_object_object_add(e, "data", data);
	else
		json_object_put(data);
	*status = 400;
	return -1;
}

static int mismatch(struct json_object **err, int *status, struct json_object *id, const char *why)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "Bad Request: header mismatch: %s", why);
	return fail(err, status, id, MCP_ERR_HEADER_MISMATCH, msg, NULL);
}

/* The first problem of a request's envelope ("" when it is valid), as "key: problem". */
static void envelope_problem(struct json_object *meta, bool request, char *buf, size_t sz)
{
	struct json_object *caps = member(meta, MCP_KEY_CAPS), *ci = member(meta, MCP_KEY_CLIENT);
	struct json_object *lvl = member(meta, MCP_KEY_LOG_LEVEL);

	buf[0] = 0;
	if (!str_member(meta, MCP_KEY_VERSION))
		snprintf(buf, sz, "%s: expected a protocol version string", MCP_KEY_VERSION);
	else if (!request)
		return;
	else if (!caps)
		snprintf(buf, sz, "%s: missing", MCP_KEY_CAPS);
	else if (!json_object_is_type(caps, json_type_object))
		snprintf(buf, sz, "%s: expected an object", MCP_KEY_CAPS);
	else if (ci && (!json_object_is_type(ci, json_type_object) || !str_member(ci, "name") ||
			!str_member(ci, "version")))
		snprintf(buf, sz, "%s: expected an object with string name and version",
			 MCP_KEY_CLIENT);
	else if (lvl) {
		const char *l = json_object_is_type(lvl, json_type_string)
					? json_object_get_string(lvl)
					: "";

		for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
			if (!strcmp(l, log_levels[i]))
				return;
		snprintf(buf, sz, "%s: expected a logging level", MCP_KEY_LOG_LEVEL);
	}
}

/* The value a request's Mcp-Name header mirrors (SEP-2243), or NULL. */
static const char *name_source(const char *method, struct json_object *params)
{
	if (!strcmp(method, "tools/call") || !strcmp(method, "prompts/get"))
		return str_member(params, "name");
	if (!strcmp(method, "resources/read"))
		return str_member(params, "uri");
	return NULL;
}

/* Mcp-Name as sent: plain, or "=?base64?...?=" for values that are not plain ASCII. */
static bool name_matches(const char *hdr, const char *value)
{
	static const char pre[] = "=?base64?", suf[] = "?=";
	size_t n = strlen(hdr);
	unsigned char out[512];
	int len;

	if (n < sizeof(pre) + 1 || strncmp(hdr, pre, sizeof(pre) - 1) || strcmp(hdr + n - 2, suf))
		return !strcmp(hdr, value);
	n -= sizeof(pre) - 1 + 2;
	if (n > 4 * (sizeof(out) / 3) || n % 4)
		return false;
	len = EVP_DecodeBlock(out, (const unsigned char *)hdr + sizeof(pre) - 1, (int)n);
	if (len < 0)
		return false;
	/* EVP_DecodeBlock counts padding bytes as data. */
	while (n && hdr[sizeof(pre) - 1 + n - 1] == '=' && len > 0) {
		len--;
		n--;
	}
	return (size_t)len == strlen(value) && !memcmp(out, value, (size_t)len);
}

static int http_headers(const struct mcp_edge *e, const char *method, struct json_object *params,
			struct json_object *id, struct json_object **err, int *status)
{
	const char *want = name_source(method, params);
	char why[384];

	if (!e->version || !e->version[0])
		return mismatch(err, status, id,
				"the required MCP-Protocol-Version header is absent");
	if (!e->method || !e->method[0])
		return mismatch(err, status, id, "the required Mcp-Method header is absent");
	if (!want)
		return 0;
	if (!e->name || !e->name[0]) {
		snprintf(why, sizeof(why), "the required Mcp-Name header (%.200s) is absent", want);
		return mismatch(err, status, id, why);
	}
	if (!name_matches(e->name, want)) {
		snprintf(why, sizeof(why), "Mcp-Name names \"%.120s\" but the body \"%.120s\"",
			 e->name, want);
		return mismatch(err, status, id, why);
	}
	return 0;
}

static int unsupported(struct json_object **err, int *status, struct json_object *id,
		       const char *requested)
{
	struct json_object *data = json_object_new_object(), *sup = json_object_new_array();
	char msg[96];

	json_object_array_add(sup, json_object_new_string(MCP_MODERN_VERSION));
	json_object_object_add(data, "supported", sup);
	json_object_object_add(data, "requested", json_object_new_string(requested));
	snprintf(msg, sizeof(msg), "Unsupported protocol version: %.40s", requested);
	return fail(err, status, id, MCP_ERR_UNSUPPORTED_VERSION, msg, data);
}

static int modern(struct json_object *msg, const struct mcp_edge *e, const char *method,
		  struct json_object *meta, struct json_object **err, int *status)
{
	struct json_object *id = member(msg, "id"), *params = member(msg, "params");
	bool request = json_object_object_get_ex(msg, "id", NULL);
	const char *claim;
	char why[256];

	envelope_problem(meta, request, why, sizeof(why));
	if (why[0]) {
		char m[384];
		struct json_object *data = json_object_new_object(),
				   *env = json_object_new_object();

		snprintf(m, sizeof(m), "Invalid _meta envelope for protocol revision %s: %s",
			 MCP_MODERN_VERSION, why);
		*strchr(why, ':') = 0;
		json_object_object_add(env, "key", json_object_new_string(why));
		json_object_object_add(data, "envelope", env);
		return fail(err, status, id, -32602, m, data);
	}
	claim = str_member(meta, MCP_KEY_VERSION);
	if (e && e->version && e->version[0] && strcmp(e->version, claim)) {
		snprintf(why, sizeof(why),
			 "the body envelope names protocol version %.32s but MCP-Protocol-Version "
			 "names %.32s",
			 claim, e->version);
		return mismatch(err, status, id, why);
	}
	if (e && e->method && e->method[0] && strcmp(e->method, method)) {
		snprintf(why, sizeof(why), "the body names method %.64s but Mcp-Method names %.64s",
			 method, e->method);
		return mismatch(err, status, id, why);
	}
	if (!request)
		return 0;
	if (strcmp(claim, MCP_MODERN_VERSION))
		return unsupported(err, status, id, claim);
	return e ? http_headers(e, method, params, id, err, status) : 0;
}

/* A header's value without the optional whitespace around it (RFC 9110 5.5). */
static const char *ows_strip(const char *v, char *buf, size_t sz)
{
	size_t n;

	if (!v)
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	snprintf(buf, sz, "%.*s", (int)n, v);
	return buf;
}

static int classify(struct json_object *msg, const struct mcp_edge *e, enum mcp_era *era,
		    struct json_object **err, int *status);

int mcp_era_classify(struct json_object *msg, const struct mcp_edge *e, enum mcp_era *era,
		     struct json_object **err, int *status)
{
	char v[64], m[128], n[512];
	struct mcp_edge clean;

	if (!e)
		return classify(msg, NULL, era, err, status);
	clean.version = ows_strip(e->version, v, sizeof(v));
	clean.method = ows_strip(e->method, m, sizeof(m));
	clean.name = ows_strip(e->name, n, sizeof(n));
	return classify(msg, &clean, era, err, status);
}

static int classify(struct json_object *msg, const struct mcp_edge *e, enum mcp_era *era,
		    struct json_object **err, int *status)
{
	struct json_object *params = member(msg, "params"), *meta = member(params, "_meta");
	const char *method = str_member(msg, "method"), *hv = e ? e->version : NULL;
	bool request = json_object_object_get_ex(msg, "id", NULL);
	bool claim = meta && json_object_is_type(meta, json_type_object) &&
		     json_object_object_get_ex(meta, MCP_KEY_VERSION, NULL);

	*era = MCP_ERA_LEGACY;
	if (!method)
		return 0; /* a response: no era of its own */
	if (request && !strcmp(method, "initialize") &&
	    !(claim && mcp_era_is_modern(str_member(meta, MCP_KEY_VERSION)))) {
		if (mcp_era_is_modern(hv))
			return mismatch(err, status, member(msg, "id"),
					"an initialize request (legacy handshake) was sent with a "
					"modern MCP-Protocol-Version header");
		return 0;
	}
	if (claim) {
		*era = MCP_ERA_MODERN;
		return modern(msg, e, method, meta, err, status);
	}
	if (mcp_era_is_modern(hv)) {
		char m[320];

		*era = MCP_ERA_MODERN;
		if (!request)
			return 0;
		snprintf(m, sizeof(m),
			 "Invalid params: MCP-Protocol-Version names protocol revision %.32s, but "
			 "the request is missing the required per-request envelope key(s): %s",
			 hv, meta ? MCP_KEY_VERSION : "_meta");
		return fail(err, status, member(msg, "id"), -32602, m, NULL);
	}
	return 0;
}

struct json_object *mcp_era_server_info(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string("caelumd"));
	json_object_object_add(o, "version", json_object_new_string(CAELUM_VERSION));
	return o;
}

void mcp_era_result(struct json_object *res, const char *method)
{
	static const char *const cached[] = { "tools/list",	"resources/list",
					      "prompts/list",	"resources/templates/list",
					      "resources/read", "server/discover" };
	struct json_object *meta;

	json_object_object_add(res, "resultType", json_object_new_string("complete"));
	for (size_t i = 0; i < sizeof(cached) / sizeof(cached[0]); i++)
		if (!strcmp(method, cached[i])) {
			/* Reads are live state: not cacheable. */
			int ttl = strcmp(method, "resources/read") ? LIST_TTL_MS : 0;

			json_object_object_add(res, "ttlMs", json_object_new_int(ttl));
			json_object_object_add(res, "cacheScope",
					       json_object_new_string("private"));
		}
	if (!json_object_object_get_ex(res, "_meta", &meta) ||
	    !json_object_is_type(meta, json_type_object)) {
		meta = json_object_new_object();
		json_object_object_add(res, "_meta", meta);
	}
	json_object_object_add(meta, MCP_KEY_SERVER, mcp_era_server_info());
}

int mcp_era_error_code(int code)
{
	return code == -32002 ? -32602 : code;
}
