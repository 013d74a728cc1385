// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "comp_bpf.h"
#include "config.h"
#include "log.h"
#include "ports_user.h"
#include "registry.h"
#include "reserved_ports.h"
#include "services.h"
#include "port_tables.h"
#include "ports.skel.h"

#define PORT_SLOTS (65536 * 2)

struct ports {
	struct comp_bpf bpf; /* first: the shared ops take the state (comp_bpf.h) */
	struct ports_bpf *skel;
	struct port_tables *tables;
	struct reserved_ports_info resv; /* ip_local_reserved_ports after the last sync */
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
	struct ports *p;
	int err = COMP_BPF_NEW(env, ports, out);

	if (err)
		return err;
	p = *out;
	comp_bpf_add(&p->bpf, p->skel->progs.cm_bind4, BPF_CGROUP_INET4_BIND, false);
	comp_bpf_add(&p->bpf, p->skel->progs.cm_bind6, BPF_CGROUP_INET6_BIND, false);
	err = port_tables_open(&p->tables, bpf_map__fd(p->skel->maps.cm_port_outer),
			       (int[]){ bpf_map__fd(p->skel->maps.cm_port_a),
					bpf_map__fd(p->skel->maps.cm_port_b) },
			       bpf_map__fd(p->skel->maps.cm_port_owners));
	if (err) {
		ports_close(p);
		*out = NULL;
	}
	return err;
}

/* ---- the two tables (user/enforce/port_tables.c) ---- */

static bool rule_eq(const struct caelum_port_rule *a, const struct caelum_port_rule *b)
{
	if (!a->flags && !b->flags)
		return true;
	return a->flags == b->flags && a->owner_cgid == b->owner_cgid &&
	       a->owner_level == b->owner_level;
}

int ports_install(struct ports *p, const struct port_policy *pol)
{
	struct caelum_port_rule *want, *rules = NULL, cur;
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
	if (!port_tables_valid(p->tables)) {
		err = port_tables_install(p->tables, want);
		goto out;
	}
	slots = calloc(PORT_SLOTS, sizeof(*slots));
	rules = calloc(PORT_SLOTS, sizeof(*rules));
	err = slots && rules ? 0 : -ENOMEM;
	for (uint32_t i = 0; !err && i < PORT_SLOTS; i++) {
		port_tables_rule(p->tables, i, &cur);
		if (rule_eq(&cur, &want[i]))
			continue;
		slots[n] = i;
		rules[n++] = want[i];
	}
	if (!err)
		err = port_tables_update(p->tables, slots, rules, n);
out:
	if (err)
		p_err("failed to update the port tables: %s", strerror(-err));
	free(slots);
	free(rules);
	free(want);
	return err;
}

int ports_update(struct ports *p, const uint32_t *slots, const struct caelum_port_rule *rules,
		 size_t n)
{
	struct caelum_port_rule cur;
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

		port_tables_rule(p->tables, slots[i], &cur);
		if (rule_eq(&cur, &rules[i]))
			continue;
		for (size_t j = 0; j < k && !seen; j++)
			seen = cs[j] == slots[i];
		if (seen)
			continue;
		cs[k] = slots[i];
		cr[k++] = rules[i];
	}
	err = port_tables_update(p->tables, cs, cr, k);
	if (err)
		p_err("failed to update the port tables: %s", strerror(-err));
	free(cs);
	free(cr);
	return err;
}

void ports_counters(const struct ports *p, uint64_t *flips, uint64_t *updates)
{
	struct port_tables_stats st;

	port_tables_stats(p->tables, &st);
	*flips = st.flips;
	*updates = st.writes;
}

void ports_invalidate(struct ports *p)
{
	port_tables_invalidate(p->tables);
}

int ports_attach(struct ports *p, const struct bpf_env *env)
{
	return comp_bpf_attach(&p->bpf, env, 0);
}

void ports_close(struct ports *p)
{
	if (!p)
		return;
	comp_bpf_close(&p->bpf);
	port_tables_close(p->tables);
	ports_bpf__destroy(p->skel);
	free(p);
}

int ports_prog_fd(const struct ports *p, int idx, const char **name, int *attach_type)
{
	const struct comp_link *l = &p->bpf.links[idx];

	*name = bpf_program__name(l->prog);
	*attach_type = l->attach_type;
	return bpf_program__fd(l->prog);
}

int ports_link_fd(const struct ports *p, int idx)
{
	return comp_bpf_link_fd(&p->bpf, (size_t)idx);
}

const char *ports_link_outcome(const struct ports *p, int idx)
{
	return link_outcome_name(p->bpf.links[idx].outcome);
}

int ports_map_fd(const struct ports *p, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(p->skel->obj, name);

	return m ? bpf_map__fd(m) : -ENOENT;
}

size_t ports_table_entries(const struct ports *p)
{
	struct port_tables_stats st;

	port_tables_stats(p->tables, &st);
	return st.entries;
}

void ports_table_counts(const struct ports *p, size_t *reserved, size_t *managed)
{
	struct port_tables_stats st;

	port_tables_stats(p->tables, &st);
	*reserved = st.reserved;
	*managed = st.managed;
}

const struct reserved_ports_info *ports_reserved(const struct ports *p)
{
	return &p->resv;
}

/* ---- the component (component.h) ---- */

static int comp_load(const struct comp_env *env, void **self)
{
	return ports_load(env->bpf, (struct ports **)self);
}

static int comp_attach(void *self, const struct comp_env *env)
{
	return ports_attach(self, env->bpf);
}

/* Every claim of the model, plus the daemon's canary unless a real service holds its slot. */
static int claims_get(const struct comp_env *env, const struct reg_state *st,
		      struct reg_claim **out, size_t *n)
{
	const struct reg_claim *c = env->canary;
	struct reg_claim *tmp;
	int err = registry_claims(st, out, n);

	if (err || !c)
		return err;
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i].port == c->port && (*out)[i].proto == c->proto)
			return 0;
	tmp = realloc(*out, (*n + 1) * sizeof(**out));
	if (!tmp) {
		free(*out);
		return -ENOMEM;
	}
	tmp[(*n)++] = *c;
	*out = tmp;
	return 0;
}

/* Everything: the whole table from the claims, and ip_local_reserved_ports with it. */
static int sync_full(struct ports *p, const struct comp_env *env, const struct reg_state *st)
{
	const struct config *cfg = env->cfg;
	struct port_policy pol;
	struct reg_claim *cl;
	size_t n;
	int err = claims_get(env, st, &cl, &n);

	if (err)
		return err;
	err = port_policy_build(&pol, cl, n, cfg->managed, cfg->n_managed, svcs_ident, env->svcs);
	if (!err) /* keep autobinds off reservations in the ephemeral range (not fatal) */
		reserved_ports_apply(cfg->state_dir, cl, n, &p->resv);
	free(cl);
	if (!err)
		err = ports_install(p, &pol);
	port_policy_free(&pol);
	return err;
}

/* Does any changed slot lie in ip_local_port_range (as last read)? */
static bool slots_in_ephemeral_range(const struct ports *p, const struct reg_delta *dl)
{
	for (size_t i = 0; i < dl->n_slots; i++) {
		uint16_t port = REG_SLOT_PORT(dl->slots[i]);

		if (port >= p->resv.range_lo && port <= p->resv.range_hi)
			return true;
	}
	return false;
}

/* Only reservations changed: the slots they name, nothing else. O(slots); the reserved
 * ports sysctl again (O(claims)) only for slots in the ephemeral range. */
static int sync_slots(struct ports *p, const struct comp_env *env, const struct reg_state *st,
		      const struct reg_delta *dl)
{
	const struct config *cfg = env->cfg;
	const struct reg_claim *c = env->canary;
	struct caelum_port_rule *rules = calloc(dl->n_slots + 1, sizeof(*rules));
	struct reg_claim *cl;
	size_t n;
	int err;

	if (!rules)
		return -ENOMEM;
	for (size_t i = 0; i < dl->n_slots; i++) {
		uint32_t s = dl->slots[i];
		const char *owner = registry_slot_owner(st, s);

		if (!owner && c && s == REG_SLOT(c->port, c->proto))
			owner = c->service;
		port_rule_compute(REG_SLOT_PORT(s), REG_SLOT_PROTO(s), owner, cfg->managed,
				  cfg->n_managed, svcs_ident, env->svcs, &rules[i]);
	}
	err = ports_update(p, dl->slots, rules, dl->n_slots);
	free(rules);
	if (!err && slots_in_ephemeral_range(p, dl) && !claims_get(env, st, &cl, &n)) {
		reserved_ports_apply(cfg->state_dir, cl, n, &p->resv);
		free(cl);
	}
	return err;
}

static int comp_sync(void *self, const struct comp_env *env, const struct reg_state *st,
		     const struct reg_delta *delta)
{
	if (!delta || delta->services)
		return sync_full(self, env, st); /* an owner's cgroup may have changed */
	return delta->n_slots ? sync_slots(self, env, st, delta) : 0;
}

static void comp_close(void *self)
{
	ports_close(self);
}

const struct component_ops ports_component = {
	.name = "ports",
	.id = CAELUM_COMP_PORTS,
	.required = true,
	.load = comp_load,
	.attach = comp_attach,
	.sync = comp_sync,
	.progs = comp_bpf_progs,
	.object = comp_bpf_object,
	.close = comp_close,
};
