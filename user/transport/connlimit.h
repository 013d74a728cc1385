/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What clients of the HTTP listeners may hold, decided when a connection is accepted
 * (before a byte of it is read), so that no local user can use up caelumd's descriptors:
 *  - at most `slots` connections at all (the descriptors the listeners may use: the soft
 *    RLIMIT_NOFILE less a reserve kept for the control socket, the journal, BPF objects
 *    and probes);
 *  - of those, at most `unauth_max` not yet authenticated (no request with the API token
 *    seen on them), and at most `per_addr_max` of those from one peer address.
 * A connection that presents the token stops counting against the last two. Refusals are
 * counted by reason for /metrics. Not thread-safe: the lws thread alone uses it.
 *
 * At a limit, an idle unauthenticated connection gives way to the newcomer rather than the
 * newcomer being refused: the one idle the longest (of the same address, at the per-address
 * limit), as nginx reuses its oldest idle keep-alive connections when it runs out
 * (ngx_drain_connections). Idle: nothing with caelumd (no request being answered, no
 * stream), i.e. not yet a whole request (headers or body still to come), or between two
 * requests. Otherwise any local user could hold the unauthenticated share with connections
 * that never send a byte, and lock out token holders, who are only known by their first
 * request. Only when every such connection is busy is the newcomer refused.
 */
#ifndef CAELUM_CONNLIMIT_H
#define CAELUM_CONNLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONNLIMIT_RESERVE_FDS  256 /* descriptors the listeners never take */
#define CONNLIMIT_UNAUTH_MAX   512
#define CONNLIMIT_PER_ADDR_MAX 128

enum connlimit_reason { CL_FULL, CL_UNAUTH, CL_PER_ADDR, CL_REASONS };

struct cl_entry {
	const void *key;  /* the connection (struct lws *); NULL while pending */
	uint8_t addr[16]; /* IPv4 as v4-mapped IPv6 */
	bool used, authed;
	bool busy;	   /* a request being answered, or a stream: never evicted */
	uint64_t idle_seq; /* when it became idle (admission order): the lowest goes first */
};

struct connlimit {
	struct cl_entry *e;
	size_t slots, unauth_max, per_addr_max;
	size_t used, unauth;
	long pending; /* entry admitted, not yet bound to a key; -1 = none */
	uint64_t seq;
	uint64_t refused[CL_REASONS];
	uint64_t evicted[CL_REASONS]; /* idle connections closed for a newcomer, by limit */
};

/* 0 or -ENOMEM. slots >= 1. */
int connlimit_init(struct connlimit *cl, size_t slots, size_t unauth_max, size_t per_addr_max);
void connlimit_free(struct connlimit *cl);
/* A connection from sa was accepted: 0 (admitted, pending until connlimit_bind) or
 * -(1 + enum connlimit_reason) when it must be closed (counted). An earlier admission
 * that was never bound is dropped first. Admitted at a limit: *evict is the key of the
 * idle connection that made room (no longer counted: the caller closes it), else NULL. */
int connlimit_admit(struct connlimit *cl, const struct sockaddr *sa, socklen_t len,
		    const void **evict);
/* The pending admission belongs to key (the first connection created after it). */
void connlimit_bind(struct connlimit *cl, const void *key);
/* The connection has a request with caelumd or a stream (busy), or is idle again. */
void connlimit_busy(struct connlimit *cl, const void *key, bool busy);
/* The connection presented the token. */
void connlimit_authenticated(struct connlimit *cl, const void *key);
/* Is key admitted (and not evicted since)? */
bool connlimit_known(struct connlimit *cl, const void *key);
/* The connection is gone (unknown keys are ignored). */
void connlimit_release(struct connlimit *cl, const void *key);
const char *connlimit_reason_name(int reason);

/* Raise RLIMIT_NOFILE's soft limit to the hard one; returns the soft limit in force. */
unsigned long fd_limit_raise(void);
/* The soft RLIMIT_NOFILE. */
unsigned long fd_limit_get(void);

#endif /* CAELUM_CONNLIMIT_H */
