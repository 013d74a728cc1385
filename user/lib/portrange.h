/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* "8100", "8100/udp", "8100-8199/tcp": one port or a range, with a protocol. */
#ifndef CAELUM_PORTRANGE_H
#define CAELUM_PORTRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_BOTH 0 /* managed ranges without "/proto": tcp and udp */

struct port_range {
	uint16_t lo;
	uint16_t hi;
	uint8_t proto; /* IPPROTO_TCP, IPPROTO_UDP or PROTO_BOTH */
};

/*
 * Parse s. A missing protocol becomes dflt_proto (IPPROTO_TCP for service ports, PROTO_BOTH
 * for managed ranges). On error returns -EINVAL and writes the reason to why.
 */
int port_range_parse(const char *s, uint8_t dflt_proto, bool allow_range, struct port_range *out,
		     char *why, size_t whylen);
/* Strict "1".."65535" parse of a whole string. */
int port_parse(const char *s, uint16_t *port);
/* "tcp" -> IPPROTO_TCP, "udp" -> IPPROTO_UDP, else -1. */
int proto_parse(const char *s);
const char *proto_name(uint8_t proto);
/* "8100/tcp" or "8100-8199/udp" or "8100-8199" (both). */
void port_range_fmt(const struct port_range *r, char *buf, size_t len);
bool port_range_overlap(const struct port_range *a, const struct port_range *b);

#endif /* CAELUM_PORTRANGE_H */
