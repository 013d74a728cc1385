/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Who may do what over HTTP. A pure function of the request's headers and the listener,
 * so that it is tested apart from the server:
 *  - the Host header must name this server, on every listener (DNS rebinding: a page of
 *    evil.example whose name an attacker re-points at us sends "Host: evil.example"): a
 *    loopback name (localhost, 127.0.0.0/8, [::1]), the address the connection came in on,
 *    the machine's host name, or one of the listener's configured "hosts" ("*.example.com"
 *    matches one or more labels before example.com); the port is not compared;
 *  - an Origin header must be this server's own origin or one of the configured ones;
 *  - a wrong token is always refused; the MCP listener needs the token unless its "auth"
 *    is "none"; the dashboard's API and /metrics are readable without it from a loopback
 *    peer; every mutation (any method but GET/HEAD) needs it; the page's assets are public.
 */
#ifndef CAELUM_HTTP_AUTH_H
#define CAELUM_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_access {
	bool mcp; /* the MCP listener (else the dashboard's) */
	bool listener_loopback;
	bool tls;
	bool mcp_auth_none;
	const char *method;
	const char *path;
	const char *host;	  /* the Host header; NULL when absent */
	const char *local_addr;	  /* numeric address the connection was accepted on ("10.0.0.5") */
	const char *hostname;	  /* the machine's name (gethostname), or NULL */
	const char (*hosts)[256]; /* configured names */
	size_t n_hosts;
	const char *origin;
	const char *authorization;
	bool peer_loopback;
	const char *token;
	const char (*origins)[128];
	size_t n_origins;
};

struct http_verdict {
	int status; /* 0: allowed; else 401 or 403 */
	bool authenticated;
	char reason[160];
};

void http_access_check(const struct http_access *a, struct http_verdict *v);
/* Does the Host header value name this server (see above)? */
bool http_host_allowed(const struct http_access *a, const char *host);
/* Is path served by the main loop's API (needs read access), not a public asset? */
bool http_path_is_api(const char *path);

#endif /* CAELUM_HTTP_AUTH_H */
