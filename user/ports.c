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

static const char *const table_name[2] = { "cm_port_a", "cm_port_b" };

struct ports {
	struct ports_bpf *skel;
	int link_fd[PORTS_NPROGS];
	enum link_outcome outcome[PORTS_NPROGS];
	int table_fd[2]; /* cm_port_a, cm_port_b (pinned), kept equal */
	int active; /* the one in cm_port_outer[0] */
	/* What both tables hold, dense by slot (flags 0 = no entry); valid once resynced. */
	struct caelum_port_rule *mirror;
	bool mirror_valid;
	size_t n_entries, n_reserved, n_managed; /* in the mirror */
	uint64_t flips, updates;
};

/* Count (sign 1) or uncount (sign -1) one mirror entry. */
static void mirror_tally(struct ports *p, const struct caelum_port_rule *r, int sign)
{
	p->n_entries += (size_t)(sign * !!r->flags);
	p->n_reserved += (size_t)(sign * !!(r->flags & CAELUM_PORT_F_RESERVED));
	p->n_managed += (size_t)(sign * !!(r->flags & CAELUM_PORT_F_MANAGED));
}

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

void port_rule_compute(uint16_t port, uint8_t proto, const char *owner,
		       const struct port_range *managed, size_t n_managed, svc_ident_fn ident,
		       void *ctx, struct caelum_port_rule *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n_managed; i++)
		if (port >= managed[i].lo && port <= managed[i].hi &&
		    (managed[i].proto == PROTO_BOTH || managed[i].proto == proto))
			out->flags |= CAELUM_PORT_F_MANAGED;
	if (!owner)
		return;
	out->flags |= CAELUM_PORT_F_RESERVED;
	uint64_t cgid = CAELUM_CGID_NONE;
	uint16_t level = 0;

	ident(ctx, owner, &cgid, &level);
	out->owner_cgid = cgid;
	out->owner_level = level;
}

void port_policy_free(struct port_policy *pol)
{
	free(pol->keys);
	free(pol->rules);
	memset(pol, 0, sizeof(*pol));
}

int ports_load(const struct bpf_env *env, struct ports **out)
{
	struct ports *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	for (int i = 0; i < PORTS_NPROGS; i++)
		p->link_fd[i] = -1;
	err = BPF_SKEL_OPEN_LOAD(env, ports, &p->skel);
	if (err)
		goto err;
	p->table_fd[0] = bpf_map__fd(p->skel->maps.cm_port_a);
	p->table_fd[1] = bpf_map__fd(p->skel->maps.cm_port_b);
	p->mirror = calloc(PORT_SLOTS, sizeof(*p->mirror));
	if (!p->mirror) {
		err = -ENOMEM;
		goto err;
	}
	*out = p;
	return 0;
err:
	ports_close(p);
	return err;
}

/* ---- the two tables ---- */

static bool rule_eq(const struct caelum_port_rule *a, const struct caelum_port_rule *b)
{
	return a->flags == b->flags && a->owner_cgid == b->owner_cgid &&
	       a->owner_level == b->owner_level;
}

static struct caelum_port_key slot_key(uint32_t i)
{
	return (struct caelum_port_key){ .port = (__u16)(i / 2),
					 .proto = (i & 1) ? IPPROTO_UDP : IPPROTO_TCP };
}

/* One table's whole content, dense (flags 0 = no entry), read with batched lookups. */
static int table_read(int fd, struct caelum_port_rule *dense)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct caelum_port_key keys[1024];
	struct caelum_port_rule vals[1024];
	__u32 batch, count;
	void *in = NULL;
	int err;

	memset(dense, 0, PORT_SLOTS * sizeof(*dense));
	do {
		count = 1024;
		err = bpf_map_lookup_batch(fd, in, &batch, keys, vals, &count, &opts);
		if (err && errno != ENOENT)
			return -errno;
		for (__u32 i = 0; i < count; i++)
			if (keys[i].port && keys[i].proto == IPPROTO_UDP)
				dense[slot(keys[i].port, IPPROTO_UDP)] = vals[i];
			else if (keys[i].port && keys[i].proto == IPPROTO_TCP)
				dense[slot(keys[i].port, IPPROTO_TCP)] = vals[i];
		in = &batch;
	} while (!err);
	return 0;
}

/* Apply changes to one table: deletions for entries whose flags are 0. Batched. */
static int table_apply(int fd, const uint32_t *slots, const struct caelum_port_rule *rules,
		       size_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct caelum_port_key *keys = calloc(n + 1, sizeof(*keys)), *dkeys = calloc(n + 1, sizeof(*keys));
	struct caelum_port_rule *vals = calloc(n + 1, sizeof(*vals));
	size_t nu = 0, nd = 0;
	__u32 count;
	int err = 0;

	if (!keys || !dkeys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (rules[i].flags) {
			keys[nu] = slot_key(slots[i]);
			vals[nu++] = rules[i];
		} else {
			dkeys[nd++] = slot_key(slots[i]);
		}
	}
	count = (__u32)nu;
	if (nu == 1 && bpf_map_update_elem(fd, keys, vals, BPF_ANY))
		err = -errno;
	else if (nu > 1 && bpf_map_update_batch(fd, keys, vals, &count, &opts))
		err = -errno;
	count = (__u32)nd;
	if (!err && nd == 1 && bpf_map_delete_elem(fd, dkeys) && errno != ENOENT)
		err = -errno;
	else if (!err && nd > 1 && bpf_map_delete_batch(fd, dkeys, &count, &opts))
		err = -errno;
out:
	free(keys);
	free(dkeys);
	free(vals);
	return err;
}

/* Point cm_port_outer[0] at table idx. The syscall returns only after every program that
 * could still see the old table has finished (kernel/bpf/syscall.c maybe_wait_bpf_programs:
 * synchronize_rcu for map-in-map updates), so the old table is free to change afterwards. */
static int table_flip(struct ports *p, int idx)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.cm_port_outer), &zero, &p->table_fd[idx],
				BPF_ANY)) {
		p_err("failed to swap in port table '%s': %s", table_name[idx], strerror(errno));
		return -errno;
	}
	p->active = idx;
	p->flips++;
	return 0;
}

/*
 * The changes (slots[i] -> rules[i], flags 0 = delete) reach both tables, and the programs
 * see all of them or none:
 *   one entry:  standby, then active: a single-key update is atomic (hash elements are
 *               replaced under RCU), so the active update is the moment it takes effect.
 *   several:    standby; flip slot 0 to it; then the old active, which no program sees
 *               any more. Programs see the old table or the new one, never a mix.
 * A failure leaves the tables unequal; the mirror is marked unknown and the next full sync
 * (ports_install) reads both back from the kernel.
 */
static int tables_update(struct ports *p, const uint32_t *slots, const struct caelum_port_rule *rules,
			 size_t n)
{
	int standby = !p->active, err;

	if (!n)
		return 0;
	err = table_apply(p->table_fd[standby], slots, rules, n);
	if (!err && n > 1)
		err = table_flip(p, standby);
	if (!err)
		err = table_apply(p->table_fd[n > 1 ? !p->active : p->active], slots, rules, n);
	if (err) {
		p->mirror_valid = false;
		p_err("failed to update the port tables: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		struct caelum_port_rule *c = &p->mirror[slots[i]];

		mirror_tally(p, c, -1);
		*c = rules[i];
		mirror_tally(p, c, 1);
	}
	p->updates += n;
	return 0;
}

/* Changes that make table fd (content in cur) equal to want. */
static int table_diff(const struct caelum_port_rule *cur, const struct caelum_port_rule *want,
		      uint32_t **slots, struct caelum_port_rule **rules, size_t *n)
{
	size_t k = 0;

	*slots = calloc(PORT_SLOTS, sizeof(**slots));
	*rules = calloc(PORT_SLOTS, sizeof(**rules));
	if (!*slots || !*rules)
		return -ENOMEM;
	for (uint32_t i = 0; i < PORT_SLOTS; i++) {
		if (rule_eq(&cur[i], &want[i]) || (!cur[i].flags && !want[i].flags))
			continue;
		(*slots)[k] = i;
		(*rules)[k++] = want[i];
	}
	*n = k;
	return 0;
}

/* Read what table idx holds; with apply, make it equal to want. *differs: it was not. */
static int table_resync(struct ports *p, int idx, const struct caelum_port_rule *want, bool apply,
			bool *differs)
{
	struct caelum_port_rule *cur = malloc(PORT_SLOTS * sizeof(*cur)), *rules = NULL;
	uint32_t *slots = NULL;
	size_t n = 0;
	int err = cur ? table_read(p->table_fd[idx], cur) : -ENOMEM;

	if (!err)
		err = table_diff(cur, want, &slots, &rules, &n);
	if (!err && apply)
		err = table_apply(p->table_fd[idx], slots, rules, n);
	*differs = n > 0;
	free(cur);
	free(slots);
	free(rules);
	return err;
}

/* Which table slot 0 holds now: 0, 1, or -1 (none of ours: first start, older version). */
static int table_active(struct ports *p)
{
	__u32 zero = 0, id;

	if (bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.cm_port_outer), &zero, &id))
		return -1;
	for (int i = 0; i < 2; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(p->table_fd[i], &info, &len) && info.id == id)
			return i;
	}
	return -1;
}

/*
 * Both tables equal want, whatever they held (startup, after a failed update): the standby
 * is rewritten; if the active one differs, slot 0 flips to the standby and the old active
 * is rewritten after; a table in slot 0 is never edited in place here.
 */
static int tables_resync(struct ports *p, const struct caelum_port_rule *want)
{
	int active = table_active(p), standby = active == 0 ? 1 : 0, err;
	bool differs = true;

	err = table_resync(p, standby, want, true, &differs);
	if (!err && active >= 0)
		err = table_resync(p, active, want, false, &differs);
	if (err)
		return err;
	p->active = active;
	if (active < 0 || differs) {
		err = table_flip(p, standby);
		if (!err)
			err = table_resync(p, !standby, want, true, &differs);
	}
	return err;
}

static void mirror_count(struct ports *p)
{
	p->n_entries = p->n_reserved = p->n_managed = 0;
	for (size_t i = 0; i < PORT_SLOTS; i++)
		mirror_tally(p, &p->mirror[i], 1);
}

int ports_install(struct ports *p, const struct port_policy *pol)
{
	struct caelum_port_rule *want;
	struct caelum_port_rule *rules = NULL;
	uint32_t *slots = NULL;
	size_t n = 0;
	int err;

	if (pol->n > CAELUM_MAX_PORT_RULES)
		return -E2BIG;
	want = calloc(PORT_SLOTS, sizeof(*want));
	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < pol->n; i++)
		want[slot(pol->keys[i].port, pol->keys[i].proto)] = pol->rules[i];
	if (!p->mirror_valid) {
		err = tables_resync(p, want);
		if (!err) {
			memcpy(p->mirror, want, PORT_SLOTS * sizeof(*want));
			p->mirror_valid = true;
			mirror_count(p);
		}
	} else {
		err = table_diff(p->mirror, want, &slots, &rules, &n);
		if (!err)
			err = tables_update(p, slots, rules, n);
	}
	free(slots);
	free(rules);
	free(want);
	return err;
}

int ports_update(struct ports *p, const uint32_t *slots, const struct caelum_port_rule *rules,
		 size_t n)
{
	uint32_t *cs = calloc(n + 1, sizeof(*cs));
	struct caelum_port_rule *cr = calloc(n + 1, sizeof(*cr));
	size_t k = 0;
	int err;

	if (!cs || !cr) {
		free(cs);
		free(cr);
		return -ENOMEM;
	}
	/* Only what differs from the tables, each slot once (the last word wins). */
	for (size_t i = n; i-- > 0;) {
		bool seen = false;

		if (rule_eq(&p->mirror[slots[i]], &rules[i]) ||
		    (!p->mirror[slots[i]].flags && !rules[i].flags))
			continue;
		for (size_t j = 0; j < k && !seen; j++)
			seen = cs[j] == slots[i];
		if (seen)
			continue;
		cs[k] = slots[i];
		cr[k++] = rules[i];
	}
	err = p->mirror_valid ? tables_update(p, cs, cr, k) : -ESTALE;
	free(cs);
	free(cr);
	return err;
}

void ports_counters(const struct ports *p, uint64_t *flips, uint64_t *updates)
{
	*flips = p->flips;
	*updates = p->updates;
}

const struct caelum_port_rule *ports_mirror(const struct ports *p)
{
	return p->mirror;
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
	free(p->mirror);
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

void ports_table_counts(const struct ports *p, size_t *reserved, size_t *managed)
{
	*reserved = p->n_reserved;
	*managed = p->n_managed;
}

struct bpf_object *ports_obj(const struct ports *p)
{
	return p->skel->obj;
}
