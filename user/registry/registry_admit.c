// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Admission and GPU assignment for a prospective registry state. Services whose resources
 * did not change are admitted first (they already hold what they have); a change that does
 * not fit is refused with its numbers. GPUs named explicitly are taken first; then services
 * asking for a count keep the GPUs they had and get the lowest free ids for the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

int reg_gpu_cmp(const void *a, const void *b)
{
	return strcmp(((const struct reg_gpu *)a)->gpu, ((const struct reg_gpu *)b)->gpu);
}

static const struct reg_service *find_svc(const struct reg_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_svcs; i++)
		if (!strcmp(st->svcs[i].spec.name, name))
			return &st->svcs[i];
	return NULL;
}

static bool resources_changed(const struct reg_state *old, const struct reg_service *s)
{
	const struct reg_service *o = find_svc(old, s->spec.name);

	return !o || !resources_equal(&o->spec.res, &s->spec.res);
}

static int admit(const struct capacity *cap, const struct reg_placement *pl,
		 const struct reg_state *old, const struct reg_state *new, struct verr *e)
{
	struct admit_svc *a = calloc(new->n_svcs + 1, sizeof(*a));
	size_t k = 0;
	int err;

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < new->n_svcs; i++) {
		const char *name = new->svcs[i].spec.name;

		/* another host's service counts against that host's capacity */
		if (pl && pl->runs_here && !pl->runs_here(pl->ctx, name))
			continue;
		a[k++] = (struct admit_svc){ name, &new->svcs[i].spec.res,
					     resources_changed(old, &new->svcs[i]) };
	}
	err = admission_check(cap, a, k, e);
	free(a);
	return err;
}

static int cap_gpu_index(const struct capacity *cap, const char *id)
{
	for (size_t i = 0; i < cap->n_gpus; i++)
		if (!strcmp(cap->gpus[i].id, id))
			return (int)i;
	return -1;
}

static const char *label(const struct reg_service *s)
{
	return s->spec.source ? s->spec.source : s->spec.name;
}

static void unknown_gpu(const struct capacity *cap, const struct reg_service *s, size_t j,
			struct verr *e)
{
	char known[512] = "", p[JV_PATH_MAX];
	size_t off = 0;

	for (size_t i = 0; i < cap->n_gpus; i++)
		off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
					cap->gpus[i].id);
	snprintf(p, sizeof(p), "resources.gpus[%zu]", j);
	verr_add(e, label(s), p, "unknown GPU \"%s\" (capacity.gpus: %s)", s->spec.res.gpu_ids[j],
		 cap->n_gpus ? known : "none");
}

/* Explicit ids: each must exist and be asked for by one service only. Unchanged services
 * first, so that a conflict is reported on the service being changed. */
static void take_explicit(const struct capacity *cap, const struct reg_state *old,
			  const struct reg_state *new, const char **owner, struct verr *e)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < new->n_svcs; i++) {
			const struct reg_service *s = &new->svcs[i];

			if (resources_changed(old, s) != (pass == 1))
				continue;
			for (size_t j = 0; j < s->spec.res.n_gpu_ids; j++) {
				int g = cap_gpu_index(cap, s->spec.res.gpu_ids[j]);
				char p[JV_PATH_MAX];

				snprintf(p, sizeof(p), "resources.gpus[%zu]", j);
				if (g < 0)
					unknown_gpu(cap, s, j, e);
				else if (owner[g])
					verr_add(e, label(s), p,
						 "GPU \"%s\" is also asked for by service '%s'",
						 cap->gpus[g].id, owner[g]);
				else
					owner[g] = s->spec.name;
			}
		}
	}
}

static int64_t gpus_counted(const struct reg_service *s)
{
	return s->spec.res.n_gpu_ids ? 0 : s->spec.res.gpu_count;
}

/* Counts: every service first keeps what it had (if still free), then the rest get the
 * lowest free ids; in one loop a service sorted earlier would take a later one's GPU. */
static int take_counted(const struct capacity *cap, const struct reg_state *old,
			const struct reg_state *new, const char **owner)
{
	int64_t *want = calloc(new->n_svcs + 1, sizeof(*want));

	if (!want)
		return -ENOMEM;
	for (size_t i = 0; i < new->n_svcs; i++) {
		const struct reg_service *s = &new->svcs[i];

		want[i] = gpus_counted(s);
		for (size_t k = 0; want[i] > 0 && k < old->n_gpus; k++) {
			int g = cap_gpu_index(cap, old->gpus[k].gpu);

			if (g >= 0 && !owner[g] && !strcmp(old->gpus[k].service, s->spec.name)) {
				owner[g] = s->spec.name;
				want[i]--;
			}
		}
	}
	for (size_t i = 0; i < new->n_svcs; i++) {
		for (size_t g = 0; want[i] > 0 && g < cap->n_gpus; g++) {
			if (!owner[g]) {
				owner[g] = new->svcs[i].spec.name;
				want[i]--;
			}
		}
	}
	free(want);
	return 0;
}

static int assign(const struct capacity *cap, const struct reg_state *old, struct reg_state *new,
		  struct verr *e)
{
	const char *owner[CAP_MAX_GPUS] = { 0 };
	size_t n0 = e->n + e->dropped, k = 0;
	struct reg_gpu *gpus;

	take_explicit(cap, old, new, owner, e);
	if (e->n + e->dropped != n0)
		return -EINVAL;
	if (take_counted(cap, old, new, owner))
		return -ENOMEM;
	gpus = calloc(cap->n_gpus + 1, sizeof(*gpus));
	if (!gpus)
		return -ENOMEM;
	for (size_t g = 0; g < cap->n_gpus; g++) {
		if (!owner[g])
			continue;
		snprintf(gpus[k].gpu, sizeof(gpus[k].gpu), "%s", cap->gpus[g].id);
		snprintf(gpus[k].service, sizeof(gpus[k].service), "%s", owner[g]);
		k++;
	}
	qsort(gpus, k, sizeof(*gpus), reg_gpu_cmp);
	free(new->gpus);
	new->gpus = gpus;
	new->n_gpus = k;
	return 0;
}

int registry_admit(const struct capacity *cap, const struct reg_placement *pl,
		   const struct reg_state *old, struct reg_state *new, struct verr *e)
{
	int err = admit(cap, pl, old, new, e);

	if (!err)
		err = assign(cap, old, new, e);
	return err;
}

const char *registry_gpu_owner(const struct reg_state *st, const char *gpu)
{
	for (size_t i = 0; i < st->n_gpus; i++)
		if (!strcmp(st->gpus[i].gpu, gpu))
			return st->gpus[i].service;
	return NULL;
}
