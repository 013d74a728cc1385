/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Database connection ABI (bpf/connect.bpf.c <-> user/enforce/connect.c).
 *
 *   cm_db_addrs (HASH)    (destination, port) of every registered database -> its id and the
 *                         policy for processes outside any service; the destination is either
 *                         one exact address or the class LOCAL (see "One destination" below)
 *   cm_db_host  (HASH)    the host's own interface addresses (user/lib/hostaddr.c keeps it equal
 *                         to getifaddrs(), following RTM_NEWADDR/RTM_DELADDR)
 *   cm_db_decl  (HASH)    (service cgroup, database id) -> max_connections; presence means
 *                         the service declared the database
 *   cm_db_conns (HASH, kernel-owned)  (service, database) -> open connections
 *   cm_db_slots (ARRAY, kernel-owned) socket cookie % CAELUM_MAX_DB_SLOTS -> the counted
 *                                     socket holding the slot and its (service, database)
 *   cm_db_sk    (SK_STORAGE)          socket -> the (service, database) it is counted in,
 *                                     for a counted socket whose slot another one holds
 *
 * connect4/6 (TCP, connected UDP, and TCP Fast Open: sendto(MSG_FASTOPEN) runs
 * tcp_sendmsg_fastopen() -> __inet_stream_connect() -> sk_prot->pre_connect, which is
 * tcp_v4_pre_connect()/tcp_v6_pre_connect() = the connect4/6 hook; net/ipv4/tcp.c,
 * net/ipv4/af_inet.c) and sendmsg4/6 (unconnected UDP) to a registered destination:
 *   from a service that declared it      allowed; connect counts it, one past max -> EPERM
 *   from a service that did not          EPERM (db_connect_denied, reason undeclared)
 *   from a process outside any service   per the database's "unmanaged": allow, or EPERM
 * sock_release takes a counted socket off its count. Destinations not registered: untouched.
 *
 * Where a counted socket is remembered until its release: in its slot, the entry of
 * cm_db_slots at its cookie (SO_COOKIE, unique per boot, from 1) modulo the table size,
 * taken with a compare-and-swap from CAELUM_DB_SLOT_FREE. The slot costs no allocation;
 * sk_storage costs two on connect and their freeing when the socket is destroyed, about
 * half a microsecond on a 10 us connect+close (bench/connect_bench.c). So sk_storage is
 * the fallback, for a socket whose slot a live counted socket 65,536 cookies apart holds.
 * sock_release looks at the slot, then at the sk_storage: a socket is counted in one of
 * them or in none, and released once. Example: a pool's socket, cookie 70,000, holds slot
 * 4,464; the socket of cookie 135,536 connects to a database meanwhile: it is counted in
 * its sk_storage; both release their places on close. (Sockets counted by a caelumd from
 * before cm_db_slots are in sk_storage, and so released by its successor's programs.)
 *
 * One destination, one decision. Linux delivers a connect() to any of these to a server on
 * this host listening on the port (on a wildcard address for the last kind):
 *   127.0.0.0/8          every address of it (route "local 127.0.0.0/8 dev lo")
 *   ::1
 *   ::ffff:127.x.y.z     the IPv4-mapped forms, from an AF_INET6 socket
 *   0.0.0.0, ::          the unspecified address: the kernel connects to the local host
 *   ::ffff:0.0.0.0
 *   any address in cm_db_host (the host's own interface addresses)
 * The programs normalise the destination before the one lookup: an address of these kinds
 * becomes the key { addr = 0, port, scope = CAELUM_DB_SCOPE_LOCAL }; any other address is
 * looked up as itself (scope CAELUM_DB_SCOPE_EXACT, IPv4 as ::ffff:a.b.c.d). User space
 * normalises a database's resolved addresses the same way before writing them, so a database
 * whose address is local holds one entry (LOCAL, port), whatever alias it was registered by
 * and whatever alias a process connects through. Counting is keyed by database id, never by
 * address, so a connection through any alias counts against the same cap and is released
 * on close. Two databases normalising to one key are one destination: the first by name
 * owns the entry, the other is reported as shadowed (databases.c), never merged.
 *
 * Example: pg = "localhost:5432" (RFC 6761: 127.0.0.1 and ::1, whatever /etc/hosts says),
 * declared by "etl" with max_connections 2; eth0 has 10.1.2.3; "web" declares nothing.
 *   cm_db_addrs: { 0, 5432, LOCAL } -> pg     (one entry)
 *   web -> 127.0.0.1:5432, 127.9.9.9:5432, [::1]:5432, [::ffff:127.0.0.1]:5432, 0.0.0.0:5432,
 *          [::]:5432, 10.1.2.3:5432, UDP sendto 127.0.0.2:5432, TFO to ::1  -> EPERM, each
 *   etl -> 127.0.0.1:5432 ok, [::1]:5432 ok, 10.1.2.3:5432 -> EPERM (db_conn_limit: 2 of 2)
 *   etl closes the first -> 0.0.0.0:5432 ok (1 + 1 of 2)
 *   web -> 127.0.0.1:6379: not registered, untouched
 *   10.1.2.4 added to eth0 (RTM_NEWADDR) -> 10.1.2.4:5432 is pg too; removed -> untouched
 * Example: analytics-db = "db.internal:5432" resolving to 10.0.0.5 (not a host address).
 *   cm_db_addrs: { ::ffff:10.0.0.5, 5432, EXACT } -> analytics-db
 *   the name moves to 10.0.0.6 -> { ::ffff:10.0.0.6, 5432 } is written, then the old key is
 *   deleted: there is no moment when neither is enforced (databases.c re-resolves names).
 * Not covered: a process in another network namespace reaches its own loopback, not this
 * host's, yet its 127.0.0.1 is classed LOCAL too (the hook sees no owner of the netns).
 */
#ifndef CAELUM_CONNECT_H
#define CAELUM_CONNECT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

#define CAELUM_MAX_DB_ADDRS   4096
#define CAELUM_MAX_DB_DECLS   16384
#define CAELUM_MAX_HOST_ADDRS 1024  /* host interface addresses followed in cm_db_host */
#define CAELUM_MAX_DB_SLOTS   65536 /* cm_db_slots entries: a power of two (cookie % it) */

#define CAELUM_DB_SCOPE_EXACT 0 /* addr is the destination address itself */
#define CAELUM_DB_SCOPE_LOCAL 1 /* addr is zero: any address that reaches this host */

#define CAELUM_DB_F_UNMANAGED_ALLOW 0x0001

struct caelum_db_addr_key {
	__u8 addr[16]; /* IPv6, or IPv4-mapped (::ffff:a.b.c.d); zero when scope is LOCAL */
	__u16 port;    /* host byte order */
	__u8 scope;    /* CAELUM_DB_SCOPE_* */
	__u8 pad;
};

/* cm_db_host: the address as in caelum_db_addr_key.addr (network order). */
struct caelum_host_key {
	__u8 addr[16];
};

struct caelum_host_addr {
	__u32 ifindex; /* for bpftool readers; the programs use presence only */
	__u32 pad;
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

#define CAELUM_DB_SLOT_FREE 0 /* cm_db_slots: no socket (cookies count from 1) */

struct caelum_db_slot {
	__u64 cookie;	/* the socket holding the slot, or CAELUM_DB_SLOT_FREE */
	__u64 svc_cgid; /* and the (service, database) it is counted in */
	__u32 db_id;
	__u32 pad;
};

/*
 * Whether an address (16 bytes, network order, IPv4 as ::ffff:a.b.c.d) always reaches this
 * host: loopback or unspecified, IPv4, IPv6 or IPv4-mapped. Host interface addresses are
 * the other LOCAL kind; they live in cm_db_host. Shared by the programs and user space.
 */
static __inline int caelum_addr_always_local(const __u8 *a)
{
	int i, mapped;

	for (i = 0; i < 10; i++)
		if (a[i])
			return 0;
	mapped = a[10] == 0xff && a[11] == 0xff;
	if (!mapped && (a[10] || a[11]))
		return 0;
	if (mapped) /* 127.0.0.0/8 or 0.0.0.0 */
		return a[12] == 127 || (!a[12] && !a[13] && !a[14] && !a[15]);
	/* :: or ::1 */
	return !a[12] && !a[13] && !a[14] && a[15] <= 1;
}

#endif /* CAELUM_CONNECT_H */
