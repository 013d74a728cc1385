// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Database connections: cgroup connect4/6 and sendmsg4/6 decide, sock_release keeps the
 * per-(service, database) connection counts. See include/caelum/connect.h.
 */
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "netns.bpf.h"
#include "caelum/connect.h"

#define SOCK_ALLOW 1
#define SOCK_DENY  0

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* kfunc (6.2+): a read-only view of a kernel object; the verifier turns the call into a move. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_DB_ADDRS);
	__type(key, struct caelum_db_addr_key);
	__type(value, struct caelum_db_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_db_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_HOST_ADDRS);
	__type(key, struct caelum_host_key);
	__type(value, struct caelum_host_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_db_host SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_DB_DECLS);
	__type(key, struct caelum_db_decl_key);
	__type(value, struct caelum_db_decl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_db_decl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_DB_DECLS);
	__type(key, struct caelum_db_decl_key);
	__type(value, struct caelum_db_conns);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_db_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CAELUM_MAX_DB_SLOTS);
	__type(key, __u32);
	__type(value, struct caelum_db_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_db_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct caelum_db_sk);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_db_sk SEC(".maps");

static __always_inline __s64 conns_add(__u64 svc, __u32 db_id, __s64 delta)
{
	struct caelum_db_decl_key k = { .svc_cgid = svc, .db_id = db_id };
	struct caelum_db_conns *c = bpf_map_lookup_elem(&cm_db_conns, &k), init = {};

	if (!c) {
		bpf_map_update_elem(&cm_db_conns, &k, &init, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&cm_db_conns, &k);
		if (!c)
			return 0;
	}
	return __sync_fetch_and_add(&c->count, delta) + delta;
}

static __always_inline void key_from_ip4(struct caelum_db_addr_key *k, __u32 ip4)
{
	k->addr[10] = 0xff;
	k->addr[11] = 0xff;
	__builtin_memcpy(&k->addr[12], &ip4, sizeof(ip4));
}

static __always_inline void key_from_ctx(struct bpf_sock_addr *ctx, __u8 family,
					 struct caelum_db_addr_key *k)
{
	if (family == AF_INET) {
		key_from_ip4(k, ctx->user_ip4);
	} else {
		__u32 ip6[4];

		ip6[0] = ctx->user_ip6[0];
		ip6[1] = ctx->user_ip6[1];
		ip6[2] = ctx->user_ip6[2];
		ip6[3] = ctx->user_ip6[3];
		__builtin_memcpy(k->addr, ip6, sizeof(ip6));
	}
	k->port = bpf_ntohs((__u16)ctx->user_port);
}

/*
 * The destination as cm_db_addrs knows it: every address that always reaches this host, or
 * is one of its interface addresses, is the one class LOCAL (include/caelum/connect.h).
 */
static __always_inline void key_normalise(struct caelum_db_addr_key *k)
{
	if (!caelum_addr_always_local(k->addr) && !bpf_map_lookup_elem(&cm_db_host, k->addr))
		return;
	__builtin_memset(k->addr, 0, sizeof(k->addr));
	k->scope = CAELUM_DB_SCOPE_LOCAL;
}

static __always_inline void conn_report(const struct caelum_db_addr_key *k, __u8 family,
					__u32 db_id, __u32 type, __u8 reason, __u8 op, __u32 action,
					__s64 count, __u64 max)
{
	struct caelum_event ev = {};
	struct caelum_agg_key key = {};

	event_fill_task(&ev);
	ev.type = type;
	ev.action = action;
	ev.reason = reason;
	ev.conn.db_id = db_id;
	ev.conn.port = k->port;
	ev.conn.family = family;
	ev.conn.op = op;
	__builtin_memcpy(ev.conn.addr, k->addr, sizeof(k->addr));
	ev.conn.count = count > 0 ? (__u32)count : 0;
	ev.conn.max = (__u32)max;
	key.cgroup_id = ev.cgroup_id;
	key.subject = (__u64)db_id << 32 | reason;
	key.type = type;
	event_report(&key, &ev);
}

/* A connect/send the rules refuse: EPERM in enforce mode, reported either way. */
static __always_inline int refuse(const struct caelum_db_addr_key *k, __u8 family, __u32 db_id,
				  __u32 type, __u8 reason, __u8 op, __u32 mode, __s64 count,
				  __u64 max)
{
	bool audit = mode == CAELUM_MODE_AUDIT;

	stat_inc(audit ? CAELUM_STAT_AUDITED : CAELUM_STAT_DENIED);
	conn_report(k, family, db_id, type, reason, op,
		    audit ? CAELUM_ACT_AUDITED : CAELUM_ACT_DENIED, count, max);
	return audit ? SOCK_ALLOW : SOCK_DENY;
}

/* The slot of a socket cookie (never NULL: the index is in range). */
static __always_inline struct caelum_db_slot *slot_of(__u64 cookie)
{
	__u32 i = (__u32)cookie & (CAELUM_MAX_DB_SLOTS - 1);

	return bpf_map_lookup_elem(&cm_db_slots, &i);
}

/* Take the socket holding slot (by its cookie) off its count, and free the slot. */
static __always_inline void slot_release(struct caelum_db_slot *slot, __u64 cookie)
{
	__u64 svc = slot->svc_cgid;
	__u32 db_id = slot->db_id;

	if (__sync_val_compare_and_swap(&slot->cookie, cookie, CAELUM_DB_SLOT_FREE) == cookie)
		conns_add(svc, db_id, -1);
}

/* Take the socket counted in its sk_storage off its count. */
static __always_inline void sks_release(struct caelum_db_sk *sks)
{
	if (__sync_lock_test_and_set(&sks->counted, 0))
		conns_add(sks->svc_cgid, sks->db_id, -1);
}

/*
 * A socket connecting again (TCP after a failed connect, UDP): true when it is counted in
 * (svc, db_id) already; counted elsewhere (a UDP socket re-connected), it leaves that count.
 */
static __always_inline bool sock_counted(struct bpf_sock_addr *ctx, struct caelum_db_slot *slot,
					 __u64 cookie, __u64 svc, __u32 db_id)
{
	struct caelum_db_sk *sks;

	if (slot->cookie == cookie) {
		if (slot->svc_cgid == svc && slot->db_id == db_id)
			return true;
		slot_release(slot, cookie);
		return false;
	}
	sks = bpf_sk_storage_get(&cm_db_sk, ctx->sk, 0, 0);
	if (!sks || !sks->counted)
		return false;
	if (sks->svc_cgid == svc && sks->db_id == db_id)
		return true;
	sks_release(sks);
	return false;
}

/*
 * Remember where the socket is counted, for sock_release: its slot when free, else (another
 * live counted socket holds the slot) its sk_storage. False when neither could be had.
 */
static __always_inline bool sock_remember(struct bpf_sock_addr *ctx, struct caelum_db_slot *slot,
					  __u64 cookie, __u64 svc, __u32 db_id)
{
	struct caelum_db_sk *sks;

	if (__sync_val_compare_and_swap(&slot->cookie, CAELUM_DB_SLOT_FREE, cookie) ==
	    CAELUM_DB_SLOT_FREE) {
		slot->svc_cgid = svc;
		slot->db_id = db_id;
		return true;
	}
	sks = bpf_sk_storage_get(&cm_db_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sks)
		return false;
	sks->svc_cgid = svc;
	sks->db_id = db_id;
	sks->counted = 1;
	return true;
}

/* Place this socket in the (svc, db) count, or refuse it past max. */
static __always_inline int conn_count(struct bpf_sock_addr *ctx, const struct caelum_db_addr_key *k,
				      __u8 family, __u64 svc, __u32 db_id,
				      const struct caelum_db_decl *decl, __u32 mode)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct caelum_db_slot *slot = slot_of(cookie);
	__s64 n;

	if (!slot)
		goto uncounted;
	if (sock_counted(ctx, slot, cookie, svc, db_id))
		return SOCK_ALLOW; /* the same socket connecting again */
	n = conns_add(svc, db_id, 1);
	if (decl->max_conns && n > (__s64)decl->max_conns && mode != CAELUM_MODE_AUDIT) {
		conns_add(svc, db_id, -1);
		return refuse(k, family, db_id, CAELUM_EV_DB_LIMIT, CAELUM_REASON_CONN_LIMIT,
			      CAELUM_CONN_OP_CONNECT, mode, n - 1, decl->max_conns);
	}
	if (decl->max_conns && n > (__s64)decl->max_conns)
		refuse(k, family, db_id, CAELUM_EV_DB_LIMIT, CAELUM_REASON_CONN_LIMIT,
		       CAELUM_CONN_OP_CONNECT, mode, n, decl->max_conns);
	if (sock_remember(ctx, slot, cookie, svc, db_id))
		return SOCK_ALLOW;
	conns_add(svc, db_id, -1);
uncounted:
	stat_inc(CAELUM_STAT_DB_UNCOUNTED);
	return SOCK_ALLOW; /* cannot count: never fail a connect for our own lack */
}

static __always_inline int db_check(struct bpf_sock_addr *ctx, __u8 family, __u8 op)
{
	struct caelum_db_addr_key k = {}, dst;
	struct caelum_db_decl_key dk = {};
	const struct caelum_db_addr *rule;
	const struct caelum_db_decl *decl;
	__u32 mode;
	__u64 svc;

	key_from_ctx(ctx, family, &k);
	dst = k; /* events name the address actually used */
	key_normalise(&k);
	rule = bpf_map_lookup_elem(&cm_db_addrs, &k);
	if (!rule)
		return SOCK_ALLOW;
	/* A container's 127.0.0.1 is not the host's loopback (include/caelum/netns.h). */
	if (!netns_enforced(ctx))
		return SOCK_ALLOW;
	mode = component_mode(CAELUM_COMP_DATABASES);
	if (mode == CAELUM_MODE_OFF)
		return SOCK_ALLOW;
	svc = svc_of_current();
	if (svc == CAELUM_CGID_NONE) {
		if (rule->flags & CAELUM_DB_F_UNMANAGED_ALLOW)
			return SOCK_ALLOW;
		return refuse(&dst, family, rule->db_id, CAELUM_EV_DB_DENIED,
			      CAELUM_REASON_UNMANAGED, op, mode, 0, 0);
	}
	dk.svc_cgid = svc;
	dk.db_id = rule->db_id;
	decl = bpf_map_lookup_elem(&cm_db_decl, &dk);
	if (!decl)
		return refuse(&dst, family, rule->db_id, CAELUM_EV_DB_DENIED,
			      CAELUM_REASON_UNDECLARED, op, mode, 0, 0);
	if (op != CAELUM_CONN_OP_CONNECT)
		return SOCK_ALLOW; /* a datagram is not a connection: nothing to count */
	return conn_count(ctx, &dst, family, svc, rule->db_id, decl, mode);
}

SEC("cgroup/connect4")
int cm_db_conn4(struct bpf_sock_addr *ctx)
{
	return db_check(ctx, AF_INET, CAELUM_CONN_OP_CONNECT);
}

SEC("cgroup/connect6")
int cm_db_conn6(struct bpf_sock_addr *ctx)
{
	return db_check(ctx, AF_INET6, CAELUM_CONN_OP_CONNECT);
}

SEC("cgroup/sendmsg4")
int cm_db_send4(struct bpf_sock_addr *ctx)
{
	return db_check(ctx, AF_INET, CAELUM_CONN_OP_SENDMSG);
}

SEC("cgroup/sendmsg6")
int cm_db_send6(struct bpf_sock_addr *ctx)
{
	return db_check(ctx, AF_INET6, CAELUM_CONN_OP_SENDMSG);
}

/*
 * The cookie of a socket being released, 0 when it never had one (then it was never counted
 * in a slot: counting gives it one). bpf_get_socket_cookie() would give every socket one, an
 * atomic and ~60 ns per release of a socket that never reached a database; this is a load.
 */
static __always_inline __u64 cookie_of_released(struct bpf_sock *ctx)
{
	struct sock *sk = bpf_rdonly_cast(ctx, bpf_core_type_id_kernel(struct sock));

	return (__u64)sk->__sk_common.skc_cookie.counter;
}

SEC("cgroup/sock_release")
int cm_db_release(struct bpf_sock *sk)
{
	__u64 cookie = cookie_of_released(sk);
	struct caelum_db_slot *slot = cookie ? slot_of(cookie) : NULL;
	struct caelum_db_sk *sks;

	if (slot && slot->cookie == cookie) {
		slot_release(slot, cookie);
		return SOCK_ALLOW;
	}
	sks = bpf_sk_storage_get(&cm_db_sk, sk, 0, 0);
	if (sks)
		sks_release(sks);
	return SOCK_ALLOW;
}
