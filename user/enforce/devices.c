// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caelum/devices.h"
#include "devices_user.h"
#include "devices.skel.h"
#include "comp_bpf.h"
#include "config.h"
#include "log.h"
#include "services.h"

struct devices {
	struct comp_bpf bpf; /* first: the shared ops take the state (comp_bpf.h) */
	struct devices_bpf *skel;
};

int devices_load(const struct bpf_env *env, struct devices **out)
{
	int err = COMP_BPF_NEW(env, devices, out);

	if (!err)
		comp_bpf_add(&(*out)->bpf, (*out)->skel->progs.cm_dev, BPF_CGROUP_DEVICE, false);
	return err;
}

int devices_attach(struct devices *d, const struct bpf_env *env)
{
	return comp_bpf_attach(&d->bpf, env, 0);
}

/* The rule for one GPU: its owner if assigned (and resolvable), else listed only. */
static void gpu_rule(const struct capacity *cap, size_t g, const struct reg_state *st,
		     svc_ident_fn ident, void *ctx, struct caelum_dev_rule *r)
{
	const char *owner = registry_gpu_owner(st, cap->gpus[g].id);
	uint64_t cgid = CAELUM_CGID_NONE;
	uint16_t level = 0;

	memset(r, 0, sizeof(*r));
	r->gpu_index = (__u32)g;
	if (owner)
		ident(ctx, owner, &cgid, &level);
	if (cgid == CAELUM_CGID_NONE)
		return;
	r->owner_cgid = cgid;
	r->owner_level = level;
	r->flags = CAELUM_DEV_F_ASSIGNED;
}

static bool key_listed(const struct capacity *cap, const struct caelum_dev_key *k)
{
	if (k->major == VERIFY_DEV_MAJOR && k->minor == VERIFY_DEV_MINOR)
		return true; /* the self-verification canary (verify.c) */
	for (size_t g = 0; g < cap->n_gpus; g++)
		for (size_t i = 0; i < cap->gpus[g].n_dev; i++)
			if (cap->gpus[g].dev[i].major == k->major &&
			    cap->gpus[g].dev[i].minor == k->minor && k->type == CAELUM_DEV_CHAR)
				return true;
	return false;
}

/* Entries for devices no longer configured. */
static void prune(int fd, const struct capacity *cap)
{
	struct caelum_dev_key key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!key_listed(cap, &key)) {
			bpf_map_delete_elem(fd, &key);
			prev = NULL;
		}
	}
}

int devices_sync(struct devices *d, const struct capacity *cap, const struct reg_state *st,
		 svc_ident_fn ident, void *ctx)
{
	int fd = bpf_map__fd(d->skel->maps.cm_devices);

	for (size_t g = 0; g < cap->n_gpus; g++) {
		struct caelum_dev_rule rule;

		gpu_rule(cap, g, st, ident, ctx, &rule);
		for (size_t i = 0; i < cap->gpus[g].n_dev; i++) {
			struct caelum_dev_key k = { .major = cap->gpus[g].dev[i].major,
						    .minor = cap->gpus[g].dev[i].minor,
						    .type = CAELUM_DEV_CHAR };

			if (bpf_map_update_elem(fd, &k, &rule, BPF_ANY)) {
				p_err("failed to update cm_devices for %s: %s",
				      cap->gpus[g].dev[i].path, strerror(errno));
				return -errno;
			}
		}
	}
	prune(fd, cap);
	return 0;
}

int devices_map_fd(const struct devices *d)
{
	return bpf_map__fd(d->skel->maps.cm_devices);
}

void devices_close(struct devices *d)
{
	if (!d)
		return;
	comp_bpf_close(&d->bpf);
	devices_bpf__destroy(d->skel);
	free(d);
}

/* ---- the component (component.h) ---- */

static int comp_load(const struct comp_env *env, void **self)
{
	return devices_load(env->bpf, (struct devices **)self);
}

static int comp_attach(void *self, const struct comp_env *env)
{
	return devices_attach(self, env->bpf);
}

static int comp_sync(void *self, const struct comp_env *env, const struct reg_state *st,
		     const struct reg_delta *delta)
{
	if (delta && !delta->services && !delta->gpus)
		return 0; /* GPU rules follow the assignments and the services' cgroups */
	return devices_sync(self, &env->cfg->cap, st, svcs_ident, env->svcs);
}

static void comp_close(void *self)
{
	devices_close(self);
}

const struct component_ops devices_component = {
	.name = "devices",
	.id = CAELUM_COMP_DEVICES,
	.load = comp_load,
	.attach = comp_attach,
	.sync = comp_sync,
	.progs = comp_bpf_progs,
	.object = comp_bpf_object,
	.close = comp_close,
};
