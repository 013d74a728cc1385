/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Database connection ABI (bpf/connect.bpf.c <-> user/connect.c).
 *
 *   cm_db_addrs (HASH)    every resolved address:port of every registered database
 *                         -> its id and policy for processes outside any service
 *   cm_db_decl  (HASH)    (service cgroup, database id) -> max_connections; presence means
 *                         the service declared the database
 *   cm_db_conns (HASH, kernel-owned)  (service, database) -> open connections
 *   cm_db_sk    (SK_STORAGE)          socket -> the (service, database) it is counted in
 *
 * connect4/6 (TCP, TCP Fast Open through its connect path, connected UDP) and sendmsg4/6
 * (unconnected UDP) to a registered address:
 *   from a service that declared it      allowed; connect counts it, one past max -> EPERM
 *   from a service that did not          EPERM (db_connect_denied, reason undeclared)
 *   from a process outside any service   per the database's "unmanaged": allow, or EPERM
 * sock_release takes a counted socket off its count. Addresses not registered: untouched.
 *
 * Example: analytics-db = 10.0.0.5:5432, declared by "etl" with max_connections 2.
 *   etl connects twice -> ok, ok; a third time -> EPERM (db_conn_limit); closes one -> ok
 *   "web" connects -> EPERM; psql run by an operator -> allowed if unmanaged is "allow"
 */
#ifndef CAELUM_CONNECT_H
#define CAELUM_CONNECT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

#define CAELUM_MAX_DB_ADDRS 4096
#define CAELUM_MAX_DB_DECLS 16384

#define CAELUM_DB_F_UNMANAGED_ALLOW 0x0001

struct caelum_db_addr_key {
	__u8 addr[16]; /* IPv6, or IPv4-mapped (::ffff:a.b.c.d) */
	__u16 port; /* host byte order */
	__u16 pad;
};

struct caelum_db_addr {
	__u32 db_id;
	__u32 flags; /* CAELUM_DB_F_* */
};

struct caelum_db_decl_key {
	__u64 svc_cgid;
	__u32 db_id;
	__u32 pad;
};

struct caelum_db_decl {
	__u64 max_conns; /* 0 = no cap */
};

struct caelum_db_conns {
	__s64 count;
};

struct caelum_db_sk {
	__u64 svc_cgid;
	__u32 db_id;
	__u32 counted; /* 1 while the socket holds a place in cm_db_conns */
};

#endif /* CAELUM_CONNECT_H */
