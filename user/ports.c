// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "ports.h"
#include "ports.skel.h"

#define PORT_SLOTS (65536 * 2)
#define TABLE_NAME "cm_port_rules"

struct ports {
	struct ports_bpf *skel;
	int link_fd[PORTS_NPROGS];
	enum link_outcome outcome[PORTS_NPROGS];
	size_t n_entries;
};

static size_t slot(uint16_t port, uint8_t proto)
{
	return (size_t)port * 2 + (proto == IPPROTO_UDP);
}

static void mark_managed(struct caelum_port_rule *dense, const struct port_range *r)
{
	for (uint32_t p = r->lo; p <= r->hi; p++) {
		if (r->proto == PROTO_BOTH || r->proto == IPPROTO_TCP)
			dense[slot((uint16_t)p, IPPROTO_TCP)].flags |= CAELUM_PORT_F_MANAGED;
		if (r->proto == PROTO_BOTH || r->proto == IPPROTO_UDP)
			dense[slot((uint16_t)p, IPPROTO_UDP)].flags |= CAELUM_PORT_F_MANAGED;
	}
}

static int policy_alloc(struct port_policy *pol, const struct caelum_port_rule *dense)
{
	size_t n = 0;

	for (size_t i = 0; i < PORT_SLOTS; i++)
		n += dense[i].flags != 0;
	pol->keys = calloc(n + 1, sizeof(*pol->keys));
	pol->rules = calloc(n + 1, sizeof(*pol->rules));
	if (!pol->keys || !pol->rules) {
		port_policy_free(pol);
		return -ENOMEM;
	}
	for (size_t i = 0; i < PORT_SLOTS; i++) {
		if (!dense[i].flags)
			continue;
		pol->keys[pol->n] = (struct caelum_port_key){
			.port = (__u16)(i / 2),
			.proto = (i & 1) ? IPPROTO_UDP : IPPROTO_TCP,
		};
		pol->rules[pol->n] = dense[i];
		pol->n_reserved += !!(dense[i].flags & CAELUM_PORT_F_RESERVED);
		pol->n_managed += !!(dense[i].flags & CAELUM_PORT_F_MANAGED);
		pol->n++;
	}
	return 0;
}

int port_policy_build(struct port_policy *pol, const struct reg_claim *claims, size_t n_claims,
		      const struct port_range *managed, size_t n_managed, svc_ident_fn ident,
		      void *ctx)
{
	struct caelum_port_rule *dense = calloc(PORT_SLOTS, sizeof(*dense));
	int err = 0;

	memset(pol, 0, sizeof(*pol));
	if (!dense)
		return -ENOMEM;
	for (size_t i = 0; i < n_managed; i++)
		mark_managed(dense, &managed[i]);
	for (size_t i = 0; i < n_claims && !err; i++) {
		struct caelum_port_rule *r = &dense[slot(claims[i].port, claims[i].proto)];
		uint64_t cgid = CAELUM_CGID_NONE;
		uint16_t level = 0;

		err = ident(ctx, claims[i].service, &cgid, &level);
		r->flags |= CAELUM_PORT_F_RESERVED;
		r->owner_cgid = cgid;
		r->owner_level = level;
	}
	if (!err)
		err = policy_alloc(pol, dense);
	free(dense);
	return err;
}

void port_policy_free(struct port_policy *pol)
{
	free(pol->keys);
	free(pol->rules);
	memset(pol, 0, sizeof(*pol));
}

int ports_load(const struct bpf_env *env, struct ports **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = env->maps);
	struct ports *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	for (int i = 0; i < PORTS_NPROGS; i++)
		p->link_fd[i] = -1;
	p->skel = ports_bpf__open_opts(&opts);
	if (!p->skel) {
		err = -errno;
		p_err("failed to open BPF object 'ports': %s", strerror(errno));
		goto err;
	}
	err = bpf_env_size_shared(env, p->skel->obj);
	if (err)
		goto err;
	err = ports_bpf__load(p->skel);
	if (err) {
		p_err("failed to load BPF object 'ports': %s (pinned maps under %s from another version? try 'caelumctl teardown')",
		      strerror(-err), env->maps);
		goto err;
	}
	*out = p;
	return 0;
err:
	ports_close(p);
	return err;
}

static int table_create(const struct port_policy *pol)
{
	LIBBPF_OPTS(bpf_map_create_opts, copts, .map_flags = BPF_F_NO_PREALLOC);
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 count = (__u32)pol->n;
	int fd, err;

	fd = bpf_map_create(BPF_MAP_TYPE_HASH, TABLE_NAME, sizeof(struct caelum_port_key),
			    sizeof(struct caelum_port_rule), CAELUM_MAX_PORT_RULES, &copts);
	if (fd < 0) {
		p_err("failed to create map '%s': %s", TABLE_NAME, strerror(-fd));
		return fd;
	}
	if (!pol->n)
		return fd;
	err = bpf_map_update_batch(fd, pol->keys, pol->rules, &count, &bopts);
	if (err || count != pol->n) {
		p_err("failed to fill map '%s' (%u of %zu entries): %s", TABLE_NAME, count, pol->n,
		      strerror(err ? -err : EIO));
		close(fd);
		return err ? err : -EIO;
	}
	return fd;
}

int ports_install(struct ports *p, const struct port_policy *pol)
{
	__u32 zero = 0;
	int fd, err;

	if (pol->n > CAELUM_MAX_PORT_RULES)
		return -E2BIG;
	fd = table_create(pol);
	if (fd < 0)
		return fd;
	/* One slot update: the programs see the old table or the new one, never a mix. */
	err = bpf_map_update_elem(bpf_map__fd(p->skel->maps.cm_port_outer), &zero, &fd, BPF_ANY);
	if (err) {
		err = -errno;
		p_err("failed to swap in the new port table: %s", strerror(errno));
	} else {
		p->n_entries = pol->n;
	}
	close(fd); /* the outer map holds the reference now */
	return err;
}

int ports_attach(struct ports *p, const struct bpf_env *env)
{
	for (int i = 0; i < PORTS_NPROGS; i++) {
		const char *name;
		int type, fd, pfd = ports_prog_fd(p, i, &name, &type);

		fd = link_install(env, name, pfd, type, &p->outcome[i]);
		if (fd < 0)
			return fd;
		if (p->link_fd[i] >= 0)
			close(p->link_fd[i]);
		p->link_fd[i] = fd;
		p_debug("link %s: %s", name, link_outcome_name(p->outcome[i]));
	}
	return 0;
}

void ports_close(struct ports *p)
{
	if (!p)
		return;
	for (int i = 0; i < PORTS_NPROGS; i++)
		if (p->link_fd[i] >= 0)
			close(p->link_fd[i]); /* the pin keeps the link attached */
	ports_bpf__destroy(p->skel);
	free(p);
}

int ports_prog_fd(const struct ports *p, int idx, const char **name, int *attach_type)
{
	struct bpf_program *prog = idx == 0 ? p->skel->progs.cm_bind4 : p->skel->progs.cm_bind6;

	*name = bpf_program__name(prog);
	*attach_type = idx == 0 ? BPF_CGROUP_INET4_BIND : BPF_CGROUP_INET6_BIND;
	return bpf_program__fd(prog);
}

int ports_link_fd(const struct ports *p, int idx)
{
	return p->link_fd[idx];
}

const char *ports_link_outcome(const struct ports *p, int idx)
{
	return link_outcome_name(p->outcome[idx]);
}

int ports_map_fd(const struct ports *p, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(p->skel->obj, name);

	return m ? bpf_map__fd(m) : -ENOENT;
}

size_t ports_table_entries(const struct ports *p)
{
	return p->n_entries;
}

struct bpf_object *ports_obj(const struct ports *p)
{
	return p->skel->obj;
}
