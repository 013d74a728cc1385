/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The two port policy tables (cm_port_a, cm_port_b) and cm_port_owners, mmap'd and kept
 * equal to what the model wants (user/enforce/port_tables.c; ABI and invariants in
 * include/caelum/ports.h). Slots are CAELUM_PORT_SLOT() numbers; a rule with flags 0 is
 * "no entry". Calls return 0 or -errno.
 */
#ifndef CAELUM_PORT_TABLES_H
#define CAELUM_PORT_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caelum/ports.h"

struct port_tables;

struct port_tables_stats {
	size_t entries, reserved, managed; /* rules in the tables, by flag */
	uint64_t flips;			   /* cm_port_outer[0] updates (each an RCU grace period) */
	uint64_t writes;		   /* entries written (each to both tables) */
	int active; /* 0 (cm_port_a), 1 (cm_port_b), -1 before the first install */
};

/* Map the tables (fds of the loaded object's maps; not closed here). */
int port_tables_open(struct port_tables **out, int outer_fd, const int table_fd[2], int owners_fd);
void port_tables_close(struct port_tables *t);
/* Both tables = want (PORT_SLOTS rules), whatever they held: read back, rewrite the standby,
 * flip if the live one differs, rewrite the other. */
int port_tables_install(struct port_tables *t, const struct caelum_port_rule *want);
/* slots[i] takes rules[i] (each slot once, each differing from the tables): one word store
 * per table for one entry, standby + flip + other for several. -ESTALE before an install. */
int port_tables_update(struct port_tables *t, const uint32_t *slots,
		       const struct caelum_port_rule *rules, size_t n);
bool port_tables_valid(const struct port_tables *t);
/* The next update is refused and the next install reads the tables back. */
void port_tables_invalidate(struct port_tables *t);
/* What both tables hold at slot (< PORT_SLOTS), the owner index resolved to its cgroup id;
 * flags 0 before the first install. Read from the mmap'd table in slot 0. */
void port_tables_rule(const struct port_tables *t, uint32_t slot, struct caelum_port_rule *out);
void port_tables_stats(const struct port_tables *t, struct port_tables_stats *st);

#endif /* CAELUM_PORT_TABLES_H */
