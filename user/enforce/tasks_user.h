/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader, budgets and counts for bpf/tasks.bpf.c (ABI: include/caelum/tasks.h). */
#ifndef CAELUM_TASKS_USER_H
#define CAELUM_TASKS_USER_H

#include <stdint.h>

#include "bpfpin.h"
#include "ports_user.h"
#include "registry.h"

struct tasks;

#define TASKS_NPROGS 3 /* fork, exit, move */

int tasks_load(const struct bpf_env *env, struct tasks **out);
int tasks_attach(struct tasks *t, const struct bpf_env *env);
/* Run the task iterator: count every task the hooks did not see. */
int tasks_scan(struct tasks *t);
/* cm_task_budget = the services' "tasks" budgets (no entry: unlimited). */
int tasks_sync_budgets(struct tasks *t, const struct reg_state *st, svc_ident_fn ident, void *ctx);
/* Live tasks of a service (0 when none were counted). */
int64_t tasks_live(const struct tasks *t, uint64_t svc_cgid);
int tasks_budget_fd(const struct tasks *t);
void tasks_close(struct tasks *t);

#endif /* CAELUM_TASKS_USER_H */
