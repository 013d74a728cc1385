// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_auth.h"
#include "token.h"

bool http_path_is_api(const char *path)
{
	return !strncmp(path, "/api/", 5) || !strcmp(path, "/api") || !strcmp(path, "/metrics");
}

/* Split "name[:port]" / "[v6][:port]" into the name (brackets kept) and check the port is
 * digits. false when malformed. */
static bool host_split(const char *host, size_t len, size_t *name_len)
{
	const char *colon;

	if (!len)
		return false;
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', len);

		if (!rb)
			return false;
		colon = rb + 1 < host + len ? rb + 1 : NULL;
		if (colon && *colon != ':')
			return false;
	} else {
		colon = memchr(host, ':', len);
	}
	*name_len = colon ? (size_t)(colon - host) : len;
	if (colon) {
		size_t plen = len - *name_len - 1;

		if (!plen || plen > 5 || strspn(colon + 1, "0123456789") < plen)
			return false;
	}
	return *name_len > 0;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return want && strlen(want) == len && !strncasecmp(name, want, len);
}

/* "localhost", "*.localhost" (RFC 6761), 127.0.0.0/8 dotted quads, "[::1]". */
static bool name_is_loopback(const char *name, size_t len)
{
	char buf[64];
	struct in_addr a4;

	if (name_is(name, len, "localhost") || name_is(name, len, "[::1]"))
		return true;
	if (len > 10 && !strncasecmp(name + len - 10, ".localhost", 10))
		return true;
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, name, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* The connection's own address: "10.0.0.5" as is, "fe80::1" as "[fe80::1]". */
static bool name_is_addr(const char *name, size_t len, const char *addr)
{
	size_t n;

	if (!addr || !*addr)
		return false;
	if (!strchr(addr, ':'))
		return name_is(name, len, addr);
	n = strlen(addr);
	return len == n + 2 && name[0] == '[' && name[len - 1] == ']' &&
	       !strncasecmp(name + 1, addr, n);
}

/* "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com". */
static bool name_matches(const char *name, size_t len, const char *pat)
{
	size_t n = strlen(pat);

	if (pat[0] == '*' && pat[1] == '.')
		return len > n - 1 && name[0] != '.' &&
		       !strncasecmp(name + len - (n - 1), pat + 1, n - 1);
	return name_is(name, len, pat);
}

static bool host_is_loopback(const char *host, size_t len)
{
	size_t nl;

	return host_split(host, len, &nl) && name_is_loopback(host, nl);
}

bool http_host_allowed(const struct http_access *a, const char *host)
{
	size_t len, nl;

	if (!host)
		return false;
	len = strlen(host);
	if (!host_split(host, len, &nl))
		return false;
	if (name_is_loopback(host, nl) || name_is_addr(host, nl, a->local_addr) ||
	    name_is(host, nl, a->hostname))
		return true;
	for (size_t i = 0; i < a->n_hosts; i++)
		if (name_matches(host, nl, a->hosts[i]))
			return true;
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
	if (!http_host_allowed(a, a->host)) {
		v->status = 403;
		snprintf(v->reason, sizeof(v->reason),
			 "Host \"%.64s\" does not name this server (add it to \"hosts\" in the "
			 "listener's configuration)",
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
