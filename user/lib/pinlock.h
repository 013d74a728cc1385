/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One caelumd per pin set. A caelumd owns its bpffs directory (pinned maps and links) and its
 * cgroup_root (where the links are attached); a second one on either would swap its own
 * policy into the first one's maps. Before changing anything, caelumd takes an exclusive,
 * non-blocking flock(2) on both directories themselves (no lock files: the lock follows the
 * inode whatever path, symlink or bind mount names it). The kernel drops the locks when the
 * process dies, so a killed caelumd never leaves a stale lock behind.
 *
 * Example: caelumd A runs with bpffs /sys/fs/bpf/caelum and cgroup_root /sys/fs/cgroup/x;
 * caelumd B with the same bpffs (and other state/runtime dirs) exits 1 with
 *   another caelumd (pid 4242) uses bpffs '/sys/fs/bpf/caelum'; stop it, or give this one
 *   its own "bpffs" and "cgroup_root"
 * and A's maps, links and policy are untouched. The holder's pid comes from /proc/locks.
 */
#ifndef CAELUM_PINLOCK_H
#define CAELUM_PINLOCK_H

#include <stdint.h>
#include <sys/types.h>

struct pinlock {
	int bpffs_fd; /* -1 when not held */
	int cgroup_fd;
};

/*
 * Lock bpffs (a directory that exists) and cgroup_root, in that order. 0, or -EBUSY when
 * another process holds either (the message names it and its pid), or -errno; on failure
 * nothing is held. pl needs no initialisation.
 */
int pinlock_take(struct pinlock *pl, const char *bpffs, const char *cgroup_root);
void pinlock_release(struct pinlock *pl);

/*
 * The pid holding a FLOCK on (dev, ino) according to text in /proc/locks format
 * ("1: FLOCK  ADVISORY  WRITE 4242 00:26:21742 0 EOF", device as hex major:minor), or 0 if
 * no line matches. Pure, for the unit tests. Format: fs/locks.c lock_get_status().
 */
pid_t pinlock_holder_in(const char *text, dev_t dev, ino_t ino);

#endif /* CAELUM_PINLOCK_H */
