/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Implicit binds. connect(), listen() and sendmsg() on an unbound socket, and bind() to port
 * 0, take a local port from net.ipv4.ip_local_port_range without a bind() the programs could
 * see. A reservation inside that range could thus be taken by any outgoing connection and
 * the owner's bind would then fail. The kernel skips the ports listed in
 * net.ipv4.ip_local_reserved_ports for every such autobind (TCP and UDP alike:
 * inet_is_local_reserved_port() in inet_hash_connect/inet_csk_find_open_port/udp_lib_get_port),
 * so after every policy apply caelumd makes that list hold:
 *
 *     what the admin put there  +  every reserved port inside ip_local_port_range
 *
 * What caelumd added is recorded in <state_dir>/reserved_ports.json; whatever else is in the
 * sysctl is the admin's and is never removed. A released reservation leaves the list at the
 * next apply; `caelumctl teardown` puts back the admin's list.
 *
 * Example: range 32768-60999, admin list "40010", reservations 8100/tcp, 40005/tcp,
 * 45000/udp -> the sysctl becomes "40005,40010,45000"; 8100 is outside the range (no
 * autobind picks it). A reservation of 45000/udp also keeps TCP autobinds off 45000: the
 * list has no protocol.
 *
 * What this cannot protect: a socket that already had the port before the apply keeps it
 * (shown by `caelumctl port who`); an explicit bind() to the port by the owner's competitor
 * is the bind programs' business, not this list's; and when the sysctl cannot be written
 * (a read-only /proc/sys in a container) the ports are reported as unprotected in status and
 * a warning is logged. The sysctl belongs to caelumd's network namespace, like the rules.
 */
#ifndef CAELUM_RESERVED_PORTS_H
#define CAELUM_RESERVED_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define PORTSET_BYTES (65536 / 8)

/* A set of port numbers 0..65535. */
struct portset {
	uint8_t bits[PORTSET_BYTES];
};

static inline bool portset_has(const struct portset *s, uint16_t p)
{
	return s->bits[p >> 3] & (1U << (p & 7));
}

static inline void portset_add(struct portset *s, uint16_t p)
{
	s->bits[p >> 3] |= (uint8_t)(1U << (p & 7));
}

/* Parse the sysctl's format, "1,2,10-20" (whitespace and a newline allowed). 0 or -EINVAL. */
int portset_parse(const char *text, struct portset *s);
/* Format as the kernel prints it: ascending, ranges as "a-b", comma separated, "" if empty.
 * Returns the length, or -ENOSPC if len is too small. */
int portset_format(const struct portset *s, char *buf, size_t len);

/*
 * Pure: cur is the sysctl now, ours_prev what caelumd added last time, want the reserved
 * ports inside the range. admin = cur - ours_prev; out_write = admin + want; out_ours =
 * want - admin (the admin's entries stay the admin's).
 */
void reserved_ports_merge(const struct portset *cur, const struct portset *ours_prev,
			  const struct portset *want, struct portset *out_write,
			  struct portset *out_ours);

/* What the last apply did, for status. */
struct reserved_ports_info {
	bool applied;			/* the sysctl holds what it should */
	uint16_t range_lo, range_hi;	/* ip_local_port_range */
	char error[160];		/* why not, when !applied */
	struct portset protected_ports; /* reservations in the range that the list holds */
	struct portset unprotected;	/* reservations in the range not in the list */
};

/*
 * After a policy apply: keep every claim's port inside ip_local_port_range in
 * ip_local_reserved_ports (see above), record what was added in state_dir. 0 or -errno;
 * info says what happened either way.
 */
int reserved_ports_apply(const char *state_dir, const struct reg_claim *claims, size_t n,
			 struct reserved_ports_info *info);
/* Teardown: remove what caelumd added, keep the admin's. 0, or -errno (-EXDEV when called
 * from another network namespace than caelumd's). */
int reserved_ports_restore(const char *state_dir);

struct json_object;
/* {"ephemeral_range": "lo-hi", "protected": "40005,45000", "unprotected": "", "error": null} */
struct json_object *reserved_ports_json(const struct reserved_ports_info *info);

#endif /* CAELUM_RESERVED_PORTS_H */
