/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and map sync for bpf/connect.bpf.c (ABI: include/caelum/connect.h). */
#ifndef CAELUM_USER_CONNECT_H
#define CAELUM_USER_CONNECT_H

#include <stdint.h>

#include "bpfpin.h"
#include "caelum/connect.h"
#include "dbspec.h"

struct connect;

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
/* Open connections counted for (service, database). */
int64_t connect_count(const struct connect *c, uint64_t svc_cgid, uint32_t db_id);
int connect_addrs_fd(const struct connect *c);
int connect_prog_fd(const struct connect *c, int idx, const char **name, int *attach_type);
int connect_link_fd(const struct connect *c, int idx);
const char *connect_link_outcome(const struct connect *c, int idx);
void connect_close(struct connect *c);
/* struct db_addr -> map key (IPv4 as IPv4-mapped IPv6). */
void connect_key(const struct db_addr *a, struct caelum_db_addr_key *k);

struct bpf_object;
/* The loaded object (its pinned maps are checked by the integrity check). */
struct bpf_object *connect_obj(const struct connect *c);

#endif /* CAELUM_USER_CONNECT_H */
