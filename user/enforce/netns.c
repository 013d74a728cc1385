// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/nsfs.h>
#include <bpf/bpf.h>

#include "caelum/netns.h"
#include "log.h"
#include "netns_user.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* include/uapi/asm-generic/socket.h, Linux >= 5.14 */
#endif

int netns_cookie_self(uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	close(fd);
	return err;
}

/* In the child: only async-signal-safe calls (the parent may have threads). */
static void child_cookie(int nsfd, int wfd)
{
	uint64_t cookie = 0;
	int err = 0;

	if (setns(nsfd, CLONE_NEWNET))
		err = errno;
	else if (netns_cookie_self(&cookie))
		err = errno;
	if (err)
		cookie = 0;
	if (write(wfd, &cookie, sizeof(cookie)) != sizeof(cookie) ||
	    write(wfd, &err, sizeof(err)) != sizeof(err))
		_exit(1);
	_exit(0);
}

static int read_child(int rfd, pid_t pid, uint64_t *cookie)
{
	int status, err = -EIO, child_err = 0;

	if (read(rfd, cookie, sizeof(*cookie)) == sizeof(*cookie) &&
	    read(rfd, &child_err, sizeof(child_err)) == sizeof(child_err))
		err = child_err ? -child_err : 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return err;
}

int netns_cookie_of(const char *path, uint64_t *cookie, char *why, size_t why_len)
{
	int nsfd, pfd[2], err;
	pid_t pid;

	why[0] = '\0';
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		err = -errno;
		snprintf(why, why_len, "%s", strerror(errno));
		return err;
	}
	if (ioctl(nsfd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		close(nsfd);
		snprintf(why, why_len, "is not a network namespace");
		return -EINVAL;
	}
	if (pipe2(pfd, O_CLOEXEC)) {
		err = -errno;
		close(nsfd);
		snprintf(why, why_len, "pipe: %s", strerror(-err));
		return err;
	}
	pid = fork();
	if (pid == 0)
		child_cookie(nsfd, pfd[1]);
	err = pid < 0 ? -errno : 0;
	close(pfd[1]);
	close(nsfd);
	if (!err)
		err = read_child(pfd[0], pid, cookie);
	close(pfd[0]);
	if (err)
		snprintf(why, why_len, "cannot read its cookie: %s", strerror(-err));
	return err;
}

static bool listed(uint64_t key, uint64_t host, const uint64_t *cookies, size_t n)
{
	if (key == host || key == CAELUM_NETNS_KEY_CONFIGURED)
		return true;
	for (size_t i = 0; i < n; i++)
		if (cookies[i] == key)
			return true;
	return false;
}

static int put(int map_fd, uint64_t key, __u32 flags)
{
	struct caelum_netns v = { .flags = flags };

	if (bpf_map_update_elem(map_fd, &key, &v, BPF_ANY)) {
		p_err("failed to update cm_netns: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int netns_apply(int map_fd, const uint64_t *cookies, size_t n)
{
	__u64 key, next, *prev = NULL;
	uint64_t host;
	int err;

	if (n + 2 > CAELUM_MAX_NETNS)
		return -E2BIG;
	err = netns_cookie_self(&host);
	if (err) {
		p_err("failed to read the host's network namespace cookie: %s (Linux >= 5.14 "
		      "needed)",
		      strerror(-err));
		return err;
	}
	err = put(map_fd, host, CAELUM_NETNS_F_HOST);
	for (size_t i = 0; i < n && !err; i++)
		err = put(map_fd, cookies[i],
			  cookies[i] == host ? CAELUM_NETNS_F_HOST : CAELUM_NETNS_F_OPTED_IN);
	if (!err)
		err = put(map_fd, CAELUM_NETNS_KEY_CONFIGURED, CAELUM_NETNS_F_CONFIGURED);
	while (!err && !bpf_map_get_next_key(map_fd, prev, &next)) {
		key = next;
		prev = &key;
		if (listed(key, host, cookies, n))
			continue;
		bpf_map_delete_elem(map_fd, &key);
		prev = NULL; /* restart: deleting can reorder the walk */
	}
	return err;
}
