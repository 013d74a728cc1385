/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and map sync for bpf/connect.bpf.c (ABI: include/caelum/connect.h). */
#ifndef CAELUM_CONNECT_USER_H
#define CAELUM_CONNECT_USER_H

#include <stdint.h>

#include "bpfpin.h"
#include "caelum/connect.h"
#include "dbspec.h"

struct connect;
struct reg_state;

/*
 * What the databases component writes into its maps comes from the databases' runtime
 * (databases.c: names resolved, the host's addresses, keys two databases share), which
 * registers this once it exists. The component's sync op calls it when services or
 * databases changed (0 or -errno); without one, sync has nothing to write.
 */
typedef int (*connect_source_fn)(void *ctx, const struct reg_state *st);
void connect_set_source(struct connect *c, connect_source_fn fn, void *ctx);

#define CONNECT_NPROGS 5 /* connect4, connect6, sendmsg4, sendmsg6, sock_release */

/* One registered database as the kernel sees it. */
struct conn_db {
	uint32_t id;
	bool unmanaged_allow;
	const struct db_addr *addrs;
	size_t n_addrs;
};

/* One declaration: service cgroup -> database. */
struct conn_decl {
	uint64_t svc_cgid;
	uint32_t db_id;
	uint64_t max_conns;
};

int connect_load(const struct bpf_env *env, struct connect **out);
int connect_attach(struct connect *c, const struct bpf_env *env);
/* Make cm_db_addrs and cm_db_decl exactly these. */
int connect_sync(struct connect *c, const struct conn_db *dbs, size_t n_dbs,
		 const struct conn_decl *decls, size_t n_decls);
/* One address of the host's interfaces (network order, IPv4 as ::ffff:a.b.c.d). */
struct host_addr {
	uint8_t addr[16];
	uint32_t ifindex;
};
/* Make cm_db_host exactly these; 0 or -errno (the first failure; the others are written).
 * Call connect_sync() after it: the database keys depend on it. */
int connect_host_sync(struct connect *c, const struct host_addr *addrs, size_t n);
/* Open connections counted for (service, database). */
int64_t connect_count(const struct connect *c, uint64_t svc_cgid, uint32_t db_id);
int connect_addrs_fd(const struct connect *c);
/* Program idx (0..CONNECT_NPROGS-1: conn4, conn6, send4, send6, release): its fd, name
 * and attach type (bench). */
int connect_prog_fd(const struct connect *c, int idx, const char **name, int *attach_type);
void connect_close(struct connect *c);
/* struct db_addr -> the exact map key (IPv4 as IPv4-mapped IPv6, scope EXACT). */
void connect_key_exact(const struct db_addr *a, struct caelum_db_addr_key *k);
/* The LOCAL key of a port (include/caelum/connect.h). */
void connect_local_key(uint16_t port, struct caelum_db_addr_key *k);
/* struct db_addr -> the key the programs look up: LOCAL for loopback, unspecified and the
 * host addresses in cm_db_host (c may be NULL: then only the first two). */
void connect_key(const struct connect *c, const struct db_addr *a, struct caelum_db_addr_key *k);

#endif /* CAELUM_CONNECT_USER_H */
