/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Names and addresses as the model and the configuration accept them: service names (specs,
 * reservations, the registry's keys), host names (the listeners' "hosts" entries) and peer
 * URLs (mcp.peers, registry.endpoints). Pure functions, shared by the model's parsers.
 */
#ifndef CAELUM_NAMES_H
#define CAELUM_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERVICE_NAME_MAX 63

/* A service name: [a-z0-9][a-z0-9-]{0,62}. */
bool service_name_valid(const char *s);

/* An RFC 1123 host name (at most 253 bytes): labels of [A-Za-z0-9-] (1..63), not starting
 * or ending with '-', separated by dots. The config's "host" and per-host reservations. */
bool host_name_valid(const char *s);

/* A "hosts" entry: a DNS name ("dash.example.com"), "*." and a name with a dot in it, an
 * IPv4 address, or a bracketed IPv6 address; no port, no scheme. 0 or -EINVAL and why. */
int host_name_check(const char *s, char *why, size_t why_len);

/* A peer URL: scheme (ws, wss, http, https), host, port (default by scheme), path. */
struct peer_url {
	char scheme[8];
	char host[256];
	uint16_t port;
	char path[256];
	bool tls, ws;
};
int peer_url_parse(const char *url, struct peer_url *u, char *why, size_t why_len);

#endif /* CAELUM_NAMES_H */
