/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and runner of bpf/agg.bpf.c: the in-kernel flush of aggregation windows. */
#ifndef CAELUM_AGG_H
#define CAELUM_AGG_H

#include "bpfpin.h"
#include "caelum/common.h"

struct agg;

/* Load with the shared maps pinned under env->maps (they must exist or are created). */
int agg_load(const struct bpf_env *env, struct agg **out);
/* Run cm_agg_flush once. 0 or -errno. */
int agg_flush(struct agg *a, struct caelum_agg_flush_args *out);
int agg_prog_fd(const struct agg *a);
void agg_close(struct agg *a);

struct bpf_object;
/* The loaded object (its pinned maps are checked by the integrity check). */
struct bpf_object *agg_obj(const struct agg *a);

#endif /* CAELUM_AGG_H */
