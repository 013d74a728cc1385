/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and map sync for bpf/cgfollow.bpf.c (ABI and semantics: include/caelum/cgfollow.h). */
#ifndef CAELUM_CGFOLLOW_USER_H
#define CAELUM_CGFOLLOW_USER_H

#include "bpfpin.h"

struct cgfollow;
struct svcs;

/* open -> load (shared maps reused from env->maps) -> attach cgroup_mkdir/rmdir (pinned
 * tracing links). 0 or -errno, with the reason logged. */
int cgfollow_setup(const struct bpf_env *env, struct cgfollow **out);
/*
 * Make cm_cg_follow hold the path of every followed service (relative to the cgroup2 mount)
 * and cm_cg_alias the current id of every followed cgroup that exists, then drop entries of
 * services no longer followed. Call after svcs_reconcile(), before the port policy that
 * names the anchors is installed. 0 or -errno.
 */
int cgfollow_sync(struct cgfollow *f, const struct svcs *s);
void cgfollow_close(struct cgfollow *f);

#endif /* CAELUM_CGFOLLOW_USER_H */
