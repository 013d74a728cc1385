/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cgroup v2 only. The host runs a hybrid layout whose v1 hierarchies carry its own
 * accounting: nothing here ever writes to a v1 hierarchy; every write first checks that
 * the target is on cgroup2 (statfs magic).
 */
#ifndef CAELUM_CGROUP_H
#define CAELUM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Find the cgroup2 mount point in /proc/self/mountinfo. 0 or -ENOENT. */
int cgroup2_mount_find(char *buf, size_t len);
bool cgroup_is_v2(const char *path);
/* Level of path below mount (mount itself = 0); -EINVAL if not below it. */
int cgroup_level(const char *mount, const char *path);
/* The kernel's 64-bit cgroup id (what bpf_get_current_cgroup_id() returns). */
int cgroup_id(const char *path, uint64_t *id);
/* mkdir -p below an existing cgroup2 directory. */
int cgroup_mkdir(const char *path);
/* Move pid (0 = self) into the cgroup; refuses anything that is not cgroup2. */
int cgroup_move(const char *path, pid_t pid);
/* "populated" from cgroup.events: 1, 0, or -errno. */
int cgroup_populated(const char *path);
/* Number of processes in cgroup.procs (this cgroup only), or -errno. */
int cgroup_nr_procs(const char *path);
/* cgroup2 path of pid relative to the cgroup2 mount (the "0::" line), e.g. "/caelum/a". */
int cgroup_of_pid(pid_t pid, char *buf, size_t len);

#endif /* CAELUM_CGROUP_H */
