// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer: who may do what over HTTP (http_access_check: Host, Origin, Bearer token,
 * method and path) and connection admission (connlimit.c) driven by a sequence of
 * accept/bind/authenticate/release operations whose invariants are checked.
 * Input: one flags byte, then NUL-separated fields: method, path, Host, Origin,
 * Authorization, local address, host name, two configured hosts, one configured origin;
 * the bytes after the tenth NUL are connection operations.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connlimit.h"
#include "http_auth.h"

#define TOK	 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define N_FIELDS 10

static const char *field(const char **p, const char *end)
{
	const char *s = *p, *nul;

	if (s >= end)
		return NULL;
	nul = memchr(s, '\0', (size_t)(end - s));
	*p = nul ? nul + 1 : end;
	return s;
}

static void access_rules(uint8_t flags, const char *f[N_FIELDS])
{
	static char hosts[2][256], origins[1][128];
	struct http_access a = {};
	struct http_verdict v;

	for (int i = 0; i < 2; i++)
		snprintf(hosts[i], sizeof(hosts[i]), "%s", f[7 + i] ? f[7 + i] : "");
	snprintf(origins[0], sizeof(origins[0]), "%s", f[9] ? f[9] : "");
	a.mcp = flags & 1;
	a.listener_loopback = flags & 2;
	a.tls = flags & 4;
	a.mcp_auth_none = flags & 8;
	a.peer_loopback = flags & 16;
	a.method = f[0] ? f[0] : "GET";
	a.path = f[1] ? f[1] : "/";
	a.host = f[2];
	a.origin = f[3];
	a.authorization = f[4];
	a.local_addr = f[5];
	a.hostname = f[6];
	a.hosts = (const char(*)[256])hosts;
	a.n_hosts = f[7] ? (f[8] ? 2 : 1) : 0;
	a.origins = (const char(*)[128])origins;
	a.n_origins = f[9] ? 1 : 0;
	a.token = TOK;
	http_access_check(&a, &v);
	if (v.status != 0 && v.status != 401 && v.status != 403)
		abort();
	if (v.status && (!v.reason[0] || v.authenticated))
		abort();
	/* A refused Host is refused whatever else the request carries. */
	if (!http_host_allowed(&a, a.host) && v.status != 403)
		abort();
	http_path_is_api(a.path);
}

static void admission(const uint8_t *ops, size_t n)
{
	static char keys[64];
	struct connlimit cl;
	struct sockaddr_in sa = { .sin_family = AF_INET };

	if (connlimit_init(&cl, 16, 8, 3))
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t op = ops[i] >> 6, arg = ops[i] & 63;

		if (op == 0) {
			sa.sin_addr.s_addr = htonl(0x7f000000u | (arg & 7));
			const void *evict;

			if (!connlimit_admit(&cl, (struct sockaddr *)&sa, sizeof(sa), &evict) &&
			    (arg & 8))
				connlimit_bind(&cl, &keys[arg]);
		} else if (op == 1) {
			connlimit_bind(&cl, &keys[arg]);
		} else if (op == 2 && arg & 32) {
			connlimit_busy(&cl, &keys[arg], arg & 16);
		} else if (op == 2) {
			connlimit_authenticated(&cl, &keys[arg]);
		} else {
			connlimit_release(&cl, &keys[arg]);
		}
		if (cl.used > cl.slots || cl.unauth > cl.used || cl.unauth > cl.unauth_max)
			abort();
	}
	connlimit_free(&cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *f[N_FIELDS] = {};
	const char *p, *end;
	char *s;

	if (size < 1 || size > 1 << 14)
		return 0;
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	p = s + 1;
	end = s + size;
	for (int i = 0; i < N_FIELDS; i++)
		f[i] = field(&p, end);
	access_rules(data[0], f);
	if (p < end)
		admission((const uint8_t *)p, (size_t)(end - p));
	free(s);
	return 0;
}
