// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fsutil.h"
#include "log.h"
#include "pinlock.h"

#define PROC_LOCKS     "/proc/locks"
#define PROC_LOCKS_MAX (4U << 20)

pid_t pinlock_holder_in(const char *text, dev_t dev, ino_t ino)
{
	const char *line = text;

	while (line && *line) {
		unsigned int ma, mi;
		unsigned long long in;
		char kind[16];
		int pid;

		/* "N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INO START END"; blocked waiters
		 * ("N: -> FLOCK ...") do not hold the lock and do not parse. */
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &pid, &ma, &mi, &in) ==
			    5 &&
		    !strcmp(kind, "FLOCK") && ma == major(dev) && mi == minor(dev) &&
		    in == (unsigned long long)ino && pid > 0)
			return pid;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return 0;
}

static pid_t holder_of(int fd)
{
	struct stat st;
	char *text = NULL;
	size_t len;
	pid_t pid;

	if (fstat(fd, &st) || file_read_all(PROC_LOCKS, PROC_LOCKS_MAX, &text, &len))
		return 0;
	pid = pinlock_holder_in(text, st.st_dev, st.st_ino);
	free(text);
	return pid;
}

/* Open and lock one directory; what names it in messages: "bpffs" or "cgroup_root". */
static int lock_dir(const char *path, const char *what)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t pid;
	int err;

	if (fd < 0) {
		err = -errno;
		p_err("failed to open %s '%s' to lock it: %s", what, path, strerror(errno));
		return err;
	}
	if (!flock(fd, LOCK_EX | LOCK_NB))
		return fd;
	err = -errno;
	if (err != -EWOULDBLOCK) {
		p_err("failed to lock %s '%s': %s", what, path, strerror(-err));
		close(fd);
		return err;
	}
	pid = holder_of(fd);
	close(fd);
	if (pid)
		p_err("another caelumd (pid %d) uses %s '%s'; stop it, or give this one its own "
		      "\"bpffs\" and \"cgroup_root\"",
		      (int)pid, what, path);
	else
		p_err("another caelumd uses %s '%s' (its pid is not visible here); stop it, or "
		      "give this one its own \"bpffs\" and \"cgroup_root\"",
		      what, path);
	return -EBUSY;
}

int pinlock_take(struct pinlock *pl, const char *bpffs, const char *cgroup_root)
{
	pl->bpffs_fd = lock_dir(bpffs, "bpffs");
	pl->cgroup_fd = -1;
	if (pl->bpffs_fd < 0) {
		int err = pl->bpffs_fd;

		pl->bpffs_fd = -1;
		return err;
	}
	pl->cgroup_fd = lock_dir(cgroup_root, "cgroup_root");
	if (pl->cgroup_fd < 0) {
		int err = pl->cgroup_fd;

		pinlock_release(pl);
		return err;
	}
	return 0;
}

void pinlock_release(struct pinlock *pl)
{
	if (pl->bpffs_fd >= 0)
		close(pl->bpffs_fd);
	if (pl->cgroup_fd >= 0)
		close(pl->cgroup_fd);
	pl->bpffs_fd = -1;
	pl->cgroup_fd = -1;
}
