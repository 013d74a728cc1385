// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agg.h"
#include "agg.skel.h"
#include "comp_bpf.h"
#include "log.h"

/* A syscall program run by caelumd, no link: the shape's object part only (comp_bpf.h). */
struct agg {
	struct comp_bpf bpf;
	struct agg_bpf *skel;
};

int agg_load(const struct bpf_env *env, struct agg **out)
{
	return COMP_BPF_NEW(env, agg, out);
}

int agg_flush(struct agg *a, struct caelum_agg_flush_args *out)
{
	struct caelum_agg_flush_args args = {};
	/* Syscall programs write their results back into ctx_in (ctx_out is refused). */
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &args, .ctx_size_in = sizeof(args));
	int err;

	err = bpf_prog_test_run_opts(bpf_program__fd(a->skel->progs.cm_agg_flush), &opts);
	if (err)
		return err;
	if (out)
		*out = args;
	return 0;
}

int agg_prog_fd(const struct agg *a)
{
	return bpf_program__fd(a->skel->progs.cm_agg_flush);
}

void agg_close(struct agg *a)
{
	if (!a)
		return;
	agg_bpf__destroy(a->skel);
	free(a);
}

struct bpf_object *agg_obj(const struct agg *a)
{
	return a->bpf.obj;
}
