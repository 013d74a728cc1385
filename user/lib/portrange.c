// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portrange.h"

/* Decimal digits only, no sign or spaces: "70000" parses, range is checked by the caller. */
static int parse_uint(const char *s, size_t len, unsigned long *out)
{
	unsigned long v = 0;

	if (!len || len > 9)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int port_parse(const char *s, uint16_t *port)
{
	unsigned long v;

	if (parse_uint(s, strlen(s), &v) || v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int proto_parse(const char *s)
{
	if (!strcmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcmp(s, "udp"))
		return IPPROTO_UDP;
	return -1;
}

const char *proto_name(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case PROTO_BOTH:
		return "tcp+udp";
	}
	return "unknown";
}

static int parse_one(const char *s, size_t len, uint16_t *port, char *why, size_t whylen)
{
	unsigned long v;

	if (!len) {
		snprintf(why, whylen, "missing port number");
		return -EINVAL;
	}
	if (parse_uint(s, len, &v)) {
		snprintf(why, whylen, "invalid port '%.*s'", (int)len, s);
		return -EINVAL;
	}
	if (v < 1 || v > 65535) {
		snprintf(why, whylen, "port %lu out of range 1-65535", v);
		return -EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

int port_range_parse(const char *s, uint8_t dflt_proto, bool allow_range, struct port_range *out,
		     char *why, size_t whylen)
{
	const char *slash = strchr(s, '/');
	size_t num_len = slash ? (size_t)(slash - s) : strlen(s);
	const char *dash = memchr(s, '-', num_len);
	int proto = dflt_proto;

	if (slash) {
		proto = proto_parse(slash + 1);
		if (proto < 0) {
			snprintf(why, whylen, "unknown protocol '%s' (expected tcp or udp)",
				 slash + 1);
			return -EINVAL;
		}
	}
	if (!num_len || (dash && (dash == s || (size_t)(dash - s) + 1 == num_len))) {
		snprintf(why, whylen, "'%s': missing port number", s);
		return -EINVAL;
	}
	if (dash && !allow_range) {
		snprintf(why, whylen, "'%s': a single port is expected here, not a range", s);
		return -EINVAL;
	}
	if (parse_one(s, dash ? (size_t)(dash - s) : num_len, &out->lo, why, whylen))
		return -EINVAL;
	out->hi = out->lo;
	if (dash && parse_one(dash + 1, num_len - (size_t)(dash - s) - 1, &out->hi, why, whylen))
		return -EINVAL;
	if (out->lo > out->hi) {
		snprintf(why, whylen, "range %u-%u: start is greater than end", out->lo, out->hi);
		return -EINVAL;
	}
	out->proto = (uint8_t)proto;
	return 0;
}

void port_range_fmt(const struct port_range *r, char *buf, size_t len)
{
	char num[16];

	if (r->lo == r->hi)
		snprintf(num, sizeof(num), "%u", r->lo);
	else
		snprintf(num, sizeof(num), "%u-%u", r->lo, r->hi);
	if (r->proto == PROTO_BOTH)
		snprintf(buf, len, "%s", num);
	else
		snprintf(buf, len, "%s/%s", num, proto_name(r->proto));
}

bool port_range_overlap(const struct port_range *a, const struct port_range *b)
{
	bool proto = a->proto == b->proto || a->proto == PROTO_BOTH || b->proto == PROTO_BOTH;

	return proto && a->lo <= b->hi && b->lo <= a->hi;
}
