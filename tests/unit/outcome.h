/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What a registry commit's continuation was told (registry_commit_fn), for the unit tests. */
#ifndef CAELUM_TEST_OUTCOME_H
#define CAELUM_TEST_OUTCOME_H

#include <stdint.h>
#include <stdio.h>

#include "jsonv.h"

struct outcome {
	int calls, err;
	uint64_t rev;
	char msg[512]; /* the first message, "" for none */
};

/* A registry_commit_fn: arg is a struct outcome. */
static inline void on_outcome(void *arg, int err, uint64_t rev, struct verr *e)
{
	struct outcome *o = arg;

	o->calls++;
	o->err = err;
	o->rev = rev;
	snprintf(o->msg, sizeof(o->msg), "%s", e->n ? e->msgs[0] : "");
}

#endif /* CAELUM_TEST_OUTCOME_H */
