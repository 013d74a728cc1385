// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "connlimit.h"
#include "log.h"

int connlimit_init(struct connlimit *cl, size_t slots, size_t unauth_max, size_t per_addr_max)
{
	memset(cl, 0, sizeof(*cl));
	cl->e = calloc(slots ? slots : 1, sizeof(*cl->e));
	if (!cl->e)
		return -ENOMEM;
	cl->slots = slots ? slots : 1;
	cl->unauth_max = unauth_max;
	cl->per_addr_max = per_addr_max;
	cl->pending = -1;
	return 0;
}

void connlimit_free(struct connlimit *cl)
{
	free(cl->e);
	cl->e = NULL;
}

static void addr_key(const struct sockaddr *sa, socklen_t len, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static void entry_drop(struct connlimit *cl, size_t i)
{
	if (!cl->e[i].authed)
		cl->unauth--;
	cl->used--;
	memset(&cl->e[i], 0, sizeof(cl->e[i]));
}

static int refuse(struct connlimit *cl, enum connlimit_reason r)
{
	cl->refused[r]++;
	return -(1 + (int)r);
}

/* The unauthenticated idle connection that has been idle the longest (of address a when a
 * is not NULL), or -1. */
static long oldest_idle(const struct connlimit *cl, const uint8_t *a)
{
	long best = -1;

	for (size_t i = 0; i < cl->slots; i++) {
		const struct cl_entry *x = &cl->e[i];

		if (!x->used || x->authed || x->busy || !x->key || (a && memcmp(x->addr, a, 16)))
			continue;
		if (best < 0 || x->idle_seq < cl->e[best].idle_seq)
			best = (long)i;
	}
	return best;
}

/* At limit r: make room by dropping the oldest idle connection (returned in *evict), or
 * refuse. */
static int make_room(struct connlimit *cl, enum connlimit_reason r, const uint8_t *a,
		     const void **evict)
{
	long v = oldest_idle(cl, a);

	if (v < 0)
		return refuse(cl, r);
	*evict = cl->e[v].key;
	cl->evicted[r]++;
	entry_drop(cl, (size_t)v);
	return 0;
}

int connlimit_admit(struct connlimit *cl, const struct sockaddr *sa, socklen_t len,
		    const void **evict)
{
	size_t same = 0, free_i = cl->slots;
	uint8_t a[16];
	int rc = 0;

	*evict = NULL;
	if (cl->pending >= 0)
		entry_drop(cl, (size_t)cl->pending);
	cl->pending = -1;
	addr_key(sa, len, a);
	for (size_t i = 0; i < cl->slots; i++)
		same += cl->e[i].used && !cl->e[i].authed && !memcmp(cl->e[i].addr, a, 16);
	if (same >= cl->per_addr_max)
		rc = make_room(cl, CL_PER_ADDR, a, evict);
	else if (cl->used >= cl->slots)
		rc = make_room(cl, CL_FULL, NULL, evict);
	else if (cl->unauth >= cl->unauth_max)
		rc = make_room(cl, CL_UNAUTH, NULL, evict);
	if (rc)
		return rc;
	for (free_i = 0; free_i < cl->slots && cl->e[free_i].used; free_i++)
		;
	cl->e[free_i] = (struct cl_entry){ .used = true, .idle_seq = ++cl->seq };
	memcpy(cl->e[free_i].addr, a, 16);
	cl->used++;
	cl->unauth++;
	cl->pending = (long)free_i;
	return 0;
}

void connlimit_bind(struct connlimit *cl, const void *key)
{
	if (cl->pending < 0 || !key)
		return;
	cl->e[cl->pending].key = key;
	cl->pending = -1;
}

static struct cl_entry *find(struct connlimit *cl, const void *key)
{
	for (size_t i = 0; key && i < cl->slots; i++)
		if (cl->e[i].used && cl->e[i].key == key)
			return &cl->e[i];
	return NULL;
}

bool connlimit_known(struct connlimit *cl, const void *key)
{
	return find(cl, key) != NULL;
}

void connlimit_busy(struct connlimit *cl, const void *key, bool busy)
{
	struct cl_entry *e = find(cl, key);

	if (!e || e->busy == busy)
		return;
	e->busy = busy;
	if (!busy)
		e->idle_seq = ++cl->seq;
}

void connlimit_authenticated(struct connlimit *cl, const void *key)
{
	struct cl_entry *e = find(cl, key);

	if (e && !e->authed) {
		e->authed = true;
		cl->unauth--;
	}
}

void connlimit_release(struct connlimit *cl, const void *key)
{
	struct cl_entry *e = find(cl, key);

	if (e)
		entry_drop(cl, (size_t)(e - cl->e));
}

const char *connlimit_reason_name(int reason)
{
	static const char *const names[] = { "connections", "unauthenticated", "per_address" };

	return reason >= 0 && reason < CL_REASONS ? names[reason] : "?";
}

unsigned long fd_limit_get(void)
{
	struct rlimit rl;

	return getrlimit(RLIMIT_NOFILE, &rl) ? 1024 : (unsigned long)rl.rlim_cur;
}

unsigned long fd_limit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			p_warn("failed to raise the descriptor limit from %llu to %llu: %s",
			       (unsigned long long)was, (unsigned long long)rl.rlim_max,
			       strerror(errno));
			rl.rlim_cur = was;
		}
	}
	return (unsigned long)rl.rlim_cur;
}
