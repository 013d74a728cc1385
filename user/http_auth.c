// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_auth.h"
#include "token.h"

bool http_path_is_api(const char *path)
{
	return !strncmp(path, "/api/", 5) || !strcmp(path, "/api") || !strcmp(path, "/metrics");
}

/* "localhost", "127.0.0.1" or "[::1]", with an optional ":port". */
static bool host_is_loopback(const char *host, size_t len)
{
	static const char *const names[] = { "localhost", "127.0.0.1", "[::1]" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);

		if (len >= n && !strncasecmp(host, names[i], n) &&
		    (len == n || (host[n] == ':' && len > n + 1 &&
				  strspn(host + n + 1, "0123456789") == len - n - 1)))
			return true;
	}
	return false;
}

static bool origin_allowed(const struct http_access *a)
{
	const char *o = a->origin, *authority;
	const char *scheme = a->tls ? "https://" : "http://";

	for (size_t i = 0; i < a->n_origins; i++)
		if (!strcasecmp(o, a->origins[i]))
			return true;
	if (strncasecmp(o, scheme, strlen(scheme)))
		return false;
	authority = o + strlen(scheme);
	if (strchr(authority, '/'))
		return false;
	/* Same origin: the page this server served. */
	if (a->host && !strcasecmp(authority, a->host))
		return true;
	/* On a loopback listener, any loopback spelling of it. */
	return a->listener_loopback && host_is_loopback(authority, strlen(authority));
}

void http_access_check(const struct http_access *a, struct http_verdict *v)
{
	const char *tok;
	size_t len;

	memset(v, 0, sizeof(*v));
	if (a->listener_loopback && (!a->host || !host_is_loopback(a->host, strlen(a->host)))) {
		v->status = 403;
		snprintf(v->reason, sizeof(v->reason),
			 "Host \"%.64s\" is not a loopback name on a loopback listener",
			 a->host ? a->host : "");
		return;
	}
	if (a->origin && !origin_allowed(a)) {
		v->status = 403;
		snprintf(v->reason, sizeof(v->reason), "Origin \"%.96s\" is not allowed",
			 a->origin);
		return;
	}
	if (a->authorization) {
		if (!token_from_bearer(a->authorization, &tok, &len) ||
		    !token_equal(tok, len, a->token)) {
			v->status = 401;
			snprintf(v->reason, sizeof(v->reason), "invalid bearer token");
			return;
		}
		v->authenticated = true;
		return;
	}
	if (a->mcp) {
		if (!a->mcp_auth_none) {
			v->status = 401;
			snprintf(v->reason, sizeof(v->reason),
				 "MCP needs \"Authorization: Bearer <token>\"");
		}
		return;
	}
	if (strcmp(a->method, "GET") && strcmp(a->method, "HEAD")) {
		v->status = 401;
		snprintf(v->reason, sizeof(v->reason),
			 "%s needs \"Authorization: Bearer <token>\" (caelumctl token show)",
			 a->method);
		return;
	}
	if (http_path_is_api(a->path) && !a->peer_loopback) {
		v->status = 401;
		snprintf(v->reason, sizeof(v->reason),
			 "reading the API from a remote address needs the token");
	}
}
