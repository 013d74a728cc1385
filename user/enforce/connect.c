// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"
#include "caelum/common.h"
#include "comp_bpf.h"
#include "connect_user.h"
#include "connect.skel.h"
#include "log.h"
#include "registry.h"

struct connect {
	struct comp_bpf bpf; /* first: the shared ops take the state (comp_bpf.h) */
	struct connect_bpf *skel;
	struct host_addr *host; /* what cm_db_host holds, for connect_key() without syscalls */
	size_t n_host;
	connect_source_fn source; /* fills the maps on sync (databases.c), or NULL */
	void *source_ctx;
};

int connect_load(const struct bpf_env *env, struct connect **out)
{
	struct connect *c;
	int err = COMP_BPF_NEW(env, connect, out);

	if (err)
		return err;
	c = *out;
	comp_bpf_add(&c->bpf, c->skel->progs.cm_db_conn4, BPF_CGROUP_INET4_CONNECT, false);
	comp_bpf_add(&c->bpf, c->skel->progs.cm_db_conn6, BPF_CGROUP_INET6_CONNECT, false);
	comp_bpf_add(&c->bpf, c->skel->progs.cm_db_send4, BPF_CGROUP_UDP4_SENDMSG, false);
	comp_bpf_add(&c->bpf, c->skel->progs.cm_db_send6, BPF_CGROUP_UDP6_SENDMSG, false);
	comp_bpf_add(&c->bpf, c->skel->progs.cm_db_release, BPF_CGROUP_INET_SOCK_RELEASE, false);
	return 0;
}

/*
 * sock_release (the last program) first: on an upgrade, the new one releases a socket from
 * every place an old or a new connect program counts it in (cm_db_slots, cm_db_sk). In the
 * other order, a socket counted in a slot by the new connect4 and closed before the new
 * sock_release is in would be released by the old one, which looks at sk_storage only, and
 * its count would never come down.
 */
int connect_attach(struct connect *c, const struct bpf_env *env)
{
	return comp_bpf_attach(&c->bpf, env, CONNECT_NPROGS - 1);
}

void connect_key_exact(const struct db_addr *a, struct caelum_db_addr_key *k)
{
	memset(k, 0, sizeof(*k));
	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;

		memcpy(k->addr, &s6->sin6_addr, 16);
		k->port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa;

		k->addr[10] = k->addr[11] = 0xff;
		memcpy(&k->addr[12], &s4->sin_addr, 4);
		k->port = ntohs(s4->sin_port);
	}
}

void connect_local_key(uint16_t port, struct caelum_db_addr_key *k)
{
	memset(k, 0, sizeof(*k));
	k->port = port;
	k->scope = CAELUM_DB_SCOPE_LOCAL;
}

static bool host_wanted(const struct host_addr *h, size_t n, const __u8 *addr)
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(h[i].addr, addr, 16))
			return true;
	return false;
}

/* The same normalisation as key_normalise() in bpf/connect.bpf.c, against cm_db_host. */
void connect_key(const struct connect *c, const struct db_addr *a, struct caelum_db_addr_key *k)
{
	connect_key_exact(a, k);
	if (caelum_addr_always_local(k->addr) || (c && host_wanted(c->host, c->n_host, k->addr)))
		connect_local_key(k->port, k);
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct caelum_db_addr_key));
}

static bool decl_wanted(const struct conn_decl *d, size_t n, const struct caelum_db_decl_key *k)
{
	for (size_t i = 0; i < n; i++)
		if (d[i].svc_cgid == k->svc_cgid && d[i].db_id == k->db_id)
			return true;
	return false;
}

/* Remove keys of fd for which wanted() says no (restart the walk after each delete). */
#define PRUNE(fd, keytype, wanted_expr)                                                            \
	do {                                                                                       \
		keytype key, next, *prev = NULL;                                                   \
		while (!bpf_map_get_next_key(fd, prev, &next)) {                                   \
			key = next;                                                                \
			prev = &key;                                                               \
			if (!(wanted_expr)) {                                                      \
				bpf_map_delete_elem(fd, &key);                                     \
				prev = NULL;                                                       \
			}                                                                          \
		}                                                                                  \
	} while (0)

int connect_sync(struct connect *c, const struct conn_db *dbs, size_t n_dbs,
		 const struct conn_decl *decls, size_t n_decls)
{
	int afd = bpf_map__fd(c->skel->maps.cm_db_addrs),
	    dfd = bpf_map__fd(c->skel->maps.cm_db_decl);
	struct caelum_db_addr_key *keys;
	size_t n_keys = 0;
	int err = 0;

	for (size_t i = 0; i < n_dbs; i++)
		n_keys += dbs[i].n_addrs;
	keys = calloc(n_keys + 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	n_keys = 0;
	for (size_t i = 0; i < n_dbs && !err; i++) {
		struct caelum_db_addr v = { .db_id = dbs[i].id,
					    .flags = dbs[i].unmanaged_allow
							     ? CAELUM_DB_F_UNMANAGED_ALLOW
							     : 0 };

		for (size_t j = 0; j < dbs[i].n_addrs && !err; j++) {
			connect_key(c, &dbs[i].addrs[j], &keys[n_keys]);
			if (bpf_map_update_elem(afd, &keys[n_keys++], &v, BPF_ANY))
				err = -errno;
		}
	}
	for (size_t i = 0; i < n_decls && !err; i++) {
		struct caelum_db_decl_key k = { .svc_cgid = decls[i].svc_cgid,
						.db_id = decls[i].db_id };
		struct caelum_db_decl v = { .max_conns = decls[i].max_conns };

		if (bpf_map_update_elem(dfd, &k, &v, BPF_ANY))
			err = -errno;
	}
	if (!err) {
		/* New entries are in before stale ones go: a moved database is never uncovered. */
		qsort(keys, n_keys, sizeof(*keys), key_cmp);
		PRUNE(afd, struct caelum_db_addr_key,
		      bsearch(&key, keys, n_keys, sizeof(*keys), key_cmp));
		PRUNE(dfd, struct caelum_db_decl_key, decl_wanted(decls, n_decls, &key));
	}
	free(keys);
	return err;
}

int connect_host_sync(struct connect *c, const struct host_addr *addrs, size_t n)
{
	int fd = bpf_map__fd(c->skel->maps.cm_db_host);
	struct host_addr *kept = calloc(n + 1, sizeof(*kept));
	size_t n_kept = 0;
	int err = 0;

	if (!kept)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct caelum_host_addr v = { .ifindex = addrs[i].ifindex };

		/* -E2BIG past CAELUM_MAX_HOST_ADDRS: keep the others, report the first failure */
		if (!bpf_map_update_elem(fd, addrs[i].addr, &v, BPF_ANY))
			kept[n_kept++] = addrs[i];
		else if (!err)
			err = -errno;
	}
	PRUNE(fd, struct caelum_host_key, host_wanted(kept, n_kept, key.addr));
	/* connect_key() classes exactly what the programs will find in cm_db_host */
	free(c->host);
	c->host = kept;
	c->n_host = n_kept;
	return err;
}

int64_t connect_count(const struct connect *c, uint64_t svc_cgid, uint32_t db_id)
{
	struct caelum_db_decl_key k = { .svc_cgid = svc_cgid, .db_id = db_id };
	struct caelum_db_conns v;

	if (bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.cm_db_conns), &k, &v))
		return 0;
	return v.count > 0 ? v.count : 0;
}

int connect_addrs_fd(const struct connect *c)
{
	return bpf_map__fd(c->skel->maps.cm_db_addrs);
}

int connect_prog_fd(const struct connect *c, int idx, const char **name, int *attach_type)
{
	const struct comp_link *l = &c->bpf.links[idx];

	*name = bpf_program__name(l->prog);
	*attach_type = l->attach_type;
	return bpf_program__fd(l->prog);
}

void connect_close(struct connect *c)
{
	if (!c)
		return;
	comp_bpf_close(&c->bpf);
	connect_bpf__destroy(c->skel);
	free(c->host);
	free(c);
}

void connect_set_source(struct connect *c, connect_source_fn fn, void *ctx)
{
	c->source = fn;
	c->source_ctx = ctx;
}

/* ---- the component (component.h) ----
 * Its maps are written from the databases' runtime (databases.c: name resolution, host
 * addresses, reachability probes), which registered itself as the source: on sync, and by
 * itself when a name resolves to other addresses or the host's addresses change. */

static int comp_load(const struct comp_env *env, void **self)
{
	return connect_load(env->bpf, (struct connect **)self);
}

static int comp_attach(void *self, const struct comp_env *env)
{
	return connect_attach(self, env->bpf);
}

static int comp_sync(void *self, const struct comp_env *env, const struct reg_state *st,
		     const struct reg_delta *delta)
{
	struct connect *c = self;

	(void)env;
	if (delta && !delta->services && !delta->dbs)
		return 0; /* rules come from the databases and the services that declare them */
	return c->source ? c->source(c->source_ctx, st) : 0;
}

/* Allowed without a place to remember them (include/caelum/connect.h): never released. */
static void comp_status(void *self, struct json_object *o)
{
	struct connect *c = self;

	json_object_object_add(
		o, "connections_uncounted",
		json_object_new_uint64(bpfinfo_percpu_sum(bpf_map__fd(c->skel->maps.cm_stats),
							  CAELUM_STAT_DB_UNCOUNTED)));
}

static void comp_close(void *self)
{
	connect_close(self);
}

const struct component_ops databases_component = {
	.name = "databases",
	.id = CAELUM_COMP_DATABASES,
	.load = comp_load,
	.attach = comp_attach,
	.sync = comp_sync,
	.progs = comp_bpf_progs,
	.object = comp_bpf_object,
	.status = comp_status,
	.close = comp_close,
};
