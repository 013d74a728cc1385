/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and policy sync for bpf/ports.bpf.c (ABI: include/caelum/ports.h). */
#ifndef CAELUM_PORTS_USER_H
#define CAELUM_PORTS_USER_H

#include <stddef.h>
#include <stdint.h>

#include "bpfpin.h"
#include "caelum/ports.h"
#include "portrange.h"
#include "registry.h"

struct ports;

/* A complete port policy: what goes into one table. */
struct port_policy {
	struct caelum_port_key *keys;
	struct caelum_port_rule *rules;
	size_t n;
	size_t n_reserved; /* entries with CAELUM_PORT_F_RESERVED */
	size_t n_managed;  /* entries with CAELUM_PORT_F_MANAGED */
};

/* Where a service lives in the cgroup tree; 0 and *cgid = CAELUM_CGID_NONE if unknown. */
typedef int (*svc_ident_fn)(void *ctx, const char *service, uint64_t *cgid, uint16_t *level);

/* Pure: claims + managed ranges -> table entries (no duplicates, sorted by port/proto). */
int port_policy_build(struct port_policy *pol, const struct reg_claim *claims, size_t n_claims,
		      const struct port_range *managed, size_t n_managed, svc_ident_fn ident,
		      void *ctx);
void port_policy_free(struct port_policy *pol);
/* Pure: the entry for one (port, proto) owned by owner (NULL: nobody), as port_policy_build
 * would make it; flags 0 means no entry. */
void port_rule_compute(uint16_t port, uint8_t proto, const char *owner,
		       const struct port_range *managed, size_t n_managed, svc_ident_fn ident,
		       void *ctx, struct caelum_port_rule *out);

/* open -> configure (shared map sizes) -> load (shared maps pinned under env->maps,
 * reused when present). */
int ports_load(const struct bpf_env *env, struct ports **out);
/*
 * Make the kernel's policy equal pol (a full sync: startup, reload). The first call reads
 * both pinned tables back from the kernel (a restart, a crash mid-update) and rewrites what
 * differs; later calls diff against the table in slot 0 and change only what differs, all
 * seen by the programs at once (see port_tables_update in port_tables.c). 0 or -errno.
 */
int ports_install(struct ports *p, const struct port_policy *pol);
/*
 * Incremental sync: slots[i] (REG_SLOT numbering) should hold rules[i] (flags 0: no entry).
 * Only entries that differ from the tables are written: O(n) map operations, no flip for a
 * single entry. 0, -ESTALE before the first ports_install, or -errno.
 */
int ports_update(struct ports *p, const uint32_t *slots, const struct caelum_port_rule *rules,
		 size_t n);
/* Forget what the tables are known to hold: the next ports_install reads them back from the
 * kernel and rewrites what differs (another writer changed them). */
void ports_invalidate(struct ports *p);
/* How many table flips and entry writes were made (status, bench). */
void ports_counters(const struct ports *p, uint64_t *flips, uint64_t *updates);
/* bind4 and bind6 links (created, or replaced in place). */
int ports_attach(struct ports *p, const struct bpf_env *env);
void ports_close(struct ports *p);

/* For status: prog fd per attach point, the shared maps, and the table size. */
int ports_prog_fd(const struct ports *p, int idx, const char **name, int *attach_type);
int ports_link_fd(const struct ports *p, int idx);
const char *ports_link_outcome(const struct ports *p, int idx);
int ports_map_fd(const struct ports *p, const char *name);
size_t ports_table_entries(const struct ports *p);
/* Entries with CAELUM_PORT_F_RESERVED and with CAELUM_PORT_F_MANAGED in the tables. */
void ports_table_counts(const struct ports *p, size_t *reserved, size_t *managed);
#define PORTS_NPROGS 2

struct reserved_ports_info;
/* ip_local_reserved_ports as the last sync left it (reserved_ports.c). */
const struct reserved_ports_info *ports_reserved(const struct ports *p);

#endif /* CAELUM_PORTS_USER_H */
