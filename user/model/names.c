// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Names and addresses as the model and the configuration accept them (names.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

bool service_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > SERVICE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && !(i > 0 && c == '-'))
			return false;
	}
	return true;
}

bool host_name_valid(const char *s)
{
	size_t label = 0, len = strlen(s);

	if (!len || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (!label || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z')))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

int host_name_check(const char *s, char *why, size_t why_len)
{
	const char *name = s;
	struct in6_addr a6;
	size_t n = strlen(s);
	char buf[64];

	if (!n || n >= 254) {
		snprintf(why, why_len, "empty or longer than 253 characters");
		return -EINVAL;
	}
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(buf)) {
			snprintf(why, why_len, "an IPv6 address is written \"[ADDRESS]\"");
			return -EINVAL;
		}
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1) {
			snprintf(why, why_len, "\"%s\" is not an IPv6 address", buf);
			return -EINVAL;
		}
		return 0;
	}
	if (!strncmp(s, "*.", 2)) {
		name = s + 2;
		if (!strchr(name, '.')) {
			snprintf(why, why_len,
				 "a wildcard covers a domain with a dot: \"*.example.com\"");
			return -EINVAL;
		}
	}
	for (const char *label = name; *label;) {
		size_t ll = strcspn(label, ".");

		if (!ll || ll > 63 || label[0] == '-' || label[ll - 1] == '-' ||
		    strspn(label,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") <
			    ll) {
			snprintf(
				why, why_len,
				"not a host name (letters, digits, '-' in dot-separated labels; no "
				"scheme, port or path)");
			return -EINVAL;
		}
		label += ll;
		if (*label == '.' && !*++label) {
			snprintf(why, why_len, "a host name does not end with '.'");
			return -EINVAL;
		}
	}
	return 0;
}

int peer_url_parse(const char *url, struct peer_url *u, char *why, size_t why_len)
{
	static const struct {
		const char *scheme;
		uint16_t port;
		bool tls, ws;
	} schemes[] = {
		{ "ws", 80, false, true },
		{ "wss", 443, true, true },
		{ "http", 80, false, false },
		{ "https", 443, true, false },
	};
	const char *p = strstr(url, "://"), *host, *end, *slash;
	size_t i, hl;

	memset(u, 0, sizeof(*u));
	for (i = 0; p && i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if ((size_t)(p - url) == strlen(schemes[i].scheme) &&
		    !strncmp(url, schemes[i].scheme, (size_t)(p - url)))
			break;
	if (!p || i == sizeof(schemes) / sizeof(schemes[0])) {
		snprintf(why, why_len, "the scheme must be ws, wss, http or https");
		return -EINVAL;
	}
	snprintf(u->scheme, sizeof(u->scheme), "%s", schemes[i].scheme);
	u->port = schemes[i].port;
	u->tls = schemes[i].tls;
	u->ws = schemes[i].ws;
	host = p + 3;
	slash = strchr(host, '/');
	end = slash ? slash : host + strlen(host);
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		if (!rb) {
			snprintf(why, why_len, "unterminated IPv6 address");
			return -EINVAL;
		}
		hl = (size_t)(rb - host - 1);
		memcpy(u->host, host + 1, hl < sizeof(u->host) ? hl : 0);
		p = rb + 1;
	} else {
		p = memchr(host, ':', (size_t)(end - host));
		hl = (size_t)((p ? p : end) - host);
		if (hl >= sizeof(u->host))
			hl = 0;
		memcpy(u->host, host, hl);
	}
	if (!hl || !u->host[0] ||
	    strspn(u->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789.-:") != strlen(u->host)) {
		snprintf(why, why_len, "missing or invalid host");
		return -EINVAL;
	}
	if (p && p < end && *p == ':') {
		char *e;
		long port = strtol(p + 1, &e, 10);

		if (e != end || port < 1 || port > 65535) {
			snprintf(why, why_len, "invalid port");
			return -EINVAL;
		}
		u->port = (uint16_t)port;
	} else if (p && p < end) {
		snprintf(why, why_len, "invalid host");
		return -EINVAL;
	}
	snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
	if (strlen(slash ? slash : "/") >= sizeof(u->path) || strpbrk(u->path, " \t\r\n#")) {
		snprintf(why, why_len, "invalid path");
		return -EINVAL;
	}
	return 0;
}
