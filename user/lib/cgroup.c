// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "cgroup.h"
#include "fsutil.h"
#include "log.h"

/* mountinfo escapes spaces and friends as \ooo */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

int cgroup2_mount_find(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char mnt[PATH_MAX], *sep = strstr(line, " - ");
		char fstype[64];

		/* id parent major:minor root mountpoint ... - fstype source options */
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2"))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		unescape_octal(mnt);
		if (!cgroup_is_v2(mnt) || strlen(mnt) >= len)
			continue;
		strcpy(buf, mnt);
		err = 0;
		break;
	}
	free(line);
	fclose(f);
	return err;
}

bool cgroup_is_v2(const char *path)
{
	struct statfs sf;

	return !statfs(path, &sf) && sf.f_type == CGROUP2_SUPER_MAGIC;
}

int cgroup_level(const char *mount, const char *path)
{
	size_t mlen = strlen(mount);
	int level = 0;

	while (mlen > 1 && mount[mlen - 1] == '/')
		mlen--;
	if (strncmp(path, mount, mlen) || (path[mlen] && path[mlen] != '/'))
		return -EINVAL;
	for (const char *p = path + mlen; *p; p++)
		if (*p == '/' && p[1] && p[1] != '/')
			level++;
	return level;
}

int cgroup_id(const char *path, uint64_t *id)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + sizeof(uint64_t)];
	} h;
	int mount_id;

	h.fh.handle_bytes = sizeof(uint64_t);
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0))
		return -errno;
	if (h.fh.handle_bytes != sizeof(uint64_t))
		return -EINVAL;
	memcpy(id, h.fh.f_handle, sizeof(*id));
	return 0;
}

int cgroup_mkdir(const char *path)
{
	int err = mkdir_p(path, 0755);

	if (err)
		return err;
	return cgroup_is_v2(path) ? 0 : -EXDEV;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

int cgroup_move(const char *path, pid_t pid)
{
	char file[PATH_MAX + 16], val[32];

	/* The v1 hierarchies carry the host's own accounting: never write there. */
	if (!cgroup_is_v2(path))
		return -EXDEV;
	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	snprintf(val, sizeof(val), "%d\n", pid ? pid : getpid());
	return write_str(file, val);
}

int cgroup_populated(const char *path)
{
	char file[PATH_MAX + 16], line[128];
	int populated = -ENOENT;
	FILE *f;

	snprintf(file, sizeof(file), "%s/cgroup.events", path);
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int v;

		if (sscanf(line, "populated %d", &v) == 1)
			populated = v ? 1 : 0;
	}
	fclose(f);
	return populated;
}

int cgroup_nr_procs(const char *path)
{
	char file[PATH_MAX + 16], line[32];
	int n = 0;
	FILE *f;

	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

int cgroup_of_pid(pid_t pid, char *buf, size_t len)
{
	char file[64], *line = NULL;
	size_t cap = 0;
	int err = -ENOENT;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/cgroup", pid ? pid : getpid());
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, len, "%s", line + 3);
		err = 0;
		break;
	}
	free(line);
	fclose(f);
	return err;
}
