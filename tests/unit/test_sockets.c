// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockets_find() against real loopback sockets made by this process and a forked child.
 * Other processes on the host may hold the same port number for another protocol or
 * family, so assertions look our sockets up by inode rather than trusting n alone.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "sockets.h"

#define CHILD_COMM "sk_child"

struct found {
	struct sock_holder *v;
	size_t n;
};

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	assert_int_equal(uname(&u), 0);
	assert_int_equal(sscanf(u.release, "%d.%d", &ma, &mi), 2);
	return ma > major || (ma == major && mi >= minor);
}

/* A loopback socket on a free port: bind port 0, then read the port back. */
static int loopback_socket(int family, int type, bool listening, uint16_t *port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, err;

	fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd < 0 && family == AF_INET6 && errno == EAFNOSUPPORT)
		return -1;
	assert_true(fd >= 0);
	if (family == AF_INET6)
		err = bind(fd, (struct sockaddr *)&a6, sizeof(a6));
	else
		err = bind(fd, (struct sockaddr *)&a4, sizeof(a4));
	if (err && family == AF_INET6 && errno == EADDRNOTAVAIL) {
		close(fd);
		return -1;
	}
	assert_int_equal(err, 0);
	if (listening)
		assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					 : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static uint64_t fd_inode(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static void find(uint16_t port, int proto, struct found *f)
{
	f->v = NULL;
	f->n = 42;
	assert_int_equal(sockets_find(port, proto, &f->v, &f->n), 0);
}

static size_t count_inode(const struct found *f, uint64_t inode)
{
	size_t i, c = 0;

	for (i = 0; i < f->n; i++)
		c += f->v[i].inode == inode;
	return c;
}

/* The entry for inode held by pid, which must exist exactly once. */
static const struct sock_holder *holder_of(const struct found *f, uint64_t inode, pid_t pid)
{
	const struct sock_holder *hit = NULL;
	size_t i;

	for (i = 0; i < f->n; i++) {
		if (f->v[i].inode != inode || f->v[i].pid != pid)
			continue;
		assert_null(hit);
		hit = &f->v[i];
	}
	assert_non_null(hit);
	return hit;
}

static void read_self(const char *path, const char *prefix, char *buf, size_t size)
{
	char line[4200];
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	buf[0] = '\0';
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, prefix, strlen(prefix)))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, size, "%s", line + strlen(prefix));
		break;
	}
	fclose(fp);
}

static void test_tcp_listener(void **state)
{
	const struct sock_holder *h;
	struct found f;
	char comm[16];
	uint16_t port;
	int fd;

	(void)state;
	fd = loopback_socket(AF_INET, SOCK_STREAM, true, &port);
	find(port, IPPROTO_TCP, &f);
	h = holder_of(&f, fd_inode(fd), getpid());
	read_self("/proc/self/comm", "", comm, sizeof(comm));
	assert_string_equal(h->comm, comm);
	assert_int_equal(h->listening, 1);
	assert_int_equal(h->family, AF_INET);
	assert_int_equal(h->proto, IPPROTO_TCP);
	assert_string_equal(h->addr, "127.0.0.1");
	assert_int_equal(h->port, port);
	free(f.v);
	close(fd);
}

static void test_tcp_bound_not_listening(void **state)
{
	const struct sock_holder *h;
	struct found f;
	uint16_t port;
	int fd;

	(void)state;
	/* sock_diag reports bound-only TCP sockets since Linux 6.7 (TCP_BOUND_INACTIVE). */
	if (!kernel_at_least(6, 7))
		skip();
	fd = loopback_socket(AF_INET, SOCK_STREAM, false, &port);
	find(port, IPPROTO_TCP, &f);
	h = holder_of(&f, fd_inode(fd), getpid());
	assert_int_equal(h->listening, 0);
	assert_int_equal(h->port, port);
	free(f.v);
	close(fd);
}

/* The kernel's bound-only walk ignores the port filter: another port must not leak in. */
static void test_tcp_bound_other_port_excluded(void **state)
{
	uint16_t port, other_port;
	struct found f;
	int fd, other;
	size_t i;

	(void)state;
	if (!kernel_at_least(6, 7))
		skip();
	fd = loopback_socket(AF_INET, SOCK_STREAM, false, &port);
	other = loopback_socket(AF_INET, SOCK_STREAM, false, &other_port);
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, fd_inode(fd)), 1);
	assert_int_equal(count_inode(&f, fd_inode(other)), 0);
	for (i = 0; i < f.n; i++)
		assert_int_equal(f.v[i].port, port);
	free(f.v);
	close(other);
	close(fd);
}

static void test_tcp6_listener(void **state)
{
	const struct sock_holder *h;
	struct found f;
	uint16_t port;
	int fd;

	(void)state;
	fd = loopback_socket(AF_INET6, SOCK_STREAM, true, &port);
	if (fd < 0)
		skip(); /* no IPv6 on this host */
	find(port, IPPROTO_TCP, &f);
	h = holder_of(&f, fd_inode(fd), getpid());
	assert_int_equal(h->family, AF_INET6);
	assert_string_equal(h->addr, "::1");
	assert_int_equal(h->listening, 1);
	free(f.v);
	close(fd);
}

/* An accepted connection shares the listener's local port; the client's does not. */
static void test_tcp_established(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int lfd, cfd, afd;
	struct found f;
	uint16_t port;

	(void)state;
	lfd = loopback_socket(AF_INET, SOCK_STREAM, true, &port);
	a.sin_port = htons(port);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(holder_of(&f, fd_inode(lfd), getpid())->listening, 1);
	assert_int_equal(holder_of(&f, fd_inode(afd), getpid())->listening, 0);
	assert_int_equal(count_inode(&f, fd_inode(cfd)), 0);
	free(f.v);
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_udp(void **state)
{
	const struct sock_holder *h;
	struct found f;
	uint16_t port;
	size_t i;
	int fd;

	(void)state;
	fd = loopback_socket(AF_INET, SOCK_DGRAM, false, &port);
	find(port, IPPROTO_UDP, &f);
	h = holder_of(&f, fd_inode(fd), getpid());
	assert_int_equal(h->proto, IPPROTO_UDP);
	assert_int_equal(h->family, AF_INET);
	assert_string_equal(h->addr, "127.0.0.1");
	assert_int_equal(h->listening, 0);
	free(f.v);

	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, fd_inode(fd)), 0);
	for (i = 0; i < f.n; i++)
		assert_int_equal(f.v[i].proto, IPPROTO_TCP);
	free(f.v);
	close(fd);
}

/* One dup()ed socket is one entry per process, not one per fd. */
static void test_dup_counted_once(void **state)
{
	struct found f;
	uint16_t port;
	int fd, fd2;

	(void)state;
	fd = loopback_socket(AF_INET, SOCK_STREAM, true, &port);
	fd2 = dup(fd);
	assert_true(fd2 >= 0);
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, fd_inode(fd)), 1);
	free(f.v);
	close(fd2);
	close(fd);
}

/* The child renames itself, says so on `ready`, and holds its fds until `hold` closes. */
static pid_t spawn_holder(int *hold_wr)
{
	int ready[2], hold[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(ready[0]);
		close(hold[1]);
		prctl(PR_SET_NAME, CHILD_COMM);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*hold_wr = hold[1];
	return pid;
}

static void reap(pid_t pid, int hold_wr)
{
	int status;

	close(hold_wr);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_child_holder(void **state)
{
	const struct sock_holder *h;
	int fd, hold_wr;
	struct found f;
	uint64_t inode;
	uint16_t port;
	pid_t child;

	(void)state;
	fd = loopback_socket(AF_INET, SOCK_STREAM, true, &port);
	inode = fd_inode(fd);
	child = spawn_holder(&hold_wr);

	/* Shared after fork(): one entry per process. */
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, inode), 2);
	holder_of(&f, inode, getpid());
	h = holder_of(&f, inode, child);
	assert_string_equal(h->comm, CHILD_COMM);
	free(f.v);

	/* Only the child holds it now. */
	close(fd);
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, inode), 1);
	assert_string_equal(holder_of(&f, inode, child)->comm, CHILD_COMM);
	free(f.v);
	reap(child, hold_wr);
}

static void test_closed_socket_gone(void **state)
{
	struct found f;
	uint64_t inode;
	uint16_t port;
	int fd;

	(void)state;
	fd = loopback_socket(AF_INET, SOCK_STREAM, true, &port);
	inode = fd_inode(fd);
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, inode), 1);
	free(f.v);
	close(fd);
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(count_inode(&f, inode), 0);
	free(f.v);
}

static void test_unused_port(void **state)
{
	struct found f;
	uint16_t port;

	(void)state;
	close(loopback_socket(AF_INET, SOCK_STREAM, true, &port));
	find(port, IPPROTO_TCP, &f);
	assert_int_equal(f.n, 0);
	assert_null(f.v);
}

static void test_cgroup(void **state)
{
	const struct sock_holder *h;
	char want[4096];
	struct found f;
	uint16_t port;
	int fd;

	(void)state;
	read_self("/proc/self/cgroup", "0::", want, sizeof(want));
	fd = loopback_socket(AF_INET, SOCK_STREAM, true, &port);
	find(port, IPPROTO_TCP, &f);
	h = holder_of(&f, fd_inode(fd), getpid());
	assert_string_equal(h->cgroup, want);
	free(f.v);
	close(fd);
}

static void test_blocks_bind_table(void **state)
{
	static const struct {
		int proto, state, inode, reuse, plain;
	} cases[] = {
		{ IPPROTO_TCP, TCP_LISTEN, 1, 1, 1 },	   { IPPROTO_TCP, TCP_CLOSE, 1, 1, 1 },
		{ IPPROTO_TCP, TCP_ESTABLISHED, 1, 1, 1 }, { IPPROTO_TCP, TCP_SYN_SENT, 1, 1, 1 },
		{ IPPROTO_TCP, TCP_FIN_WAIT1, 0, 0, 1 },   { IPPROTO_TCP, TCP_FIN_WAIT2, 0, 0, 1 },
		{ IPPROTO_TCP, TCP_TIME_WAIT, 0, 0, 1 },   { IPPROTO_TCP, TCP_CLOSE_WAIT, 1, 0, 1 },
		{ IPPROTO_TCP, TCP_LAST_ACK, 0, 0, 1 },	   { IPPROTO_TCP, TCP_CLOSING, 0, 0, 1 },
		{ IPPROTO_TCP, TCP_SYN_RECV, 0, 0, 0 },	   { IPPROTO_UDP, TCP_CLOSE, 1, 1, 1 },
		{ IPPROTO_UDP, TCP_ESTABLISHED, 1, 1, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sock_holder h = { .proto = cases[i].proto,
					 .state = cases[i].state,
					 .inode = (uint64_t)cases[i].inode };

		if (sock_blocks_bind(&h, true) != cases[i].reuse ||
		    sock_blocks_bind(&h, false) != cases[i].plain)
			fail_msg("case %zu (%s %s)", i,
				 cases[i].proto == IPPROTO_TCP ? "tcp" : "udp",
				 sock_state_name(&h));
	}
}

/* errno of bind(127.0.0.1:port), with or without SO_REUSEADDR. */
static int try_bind(uint16_t port, bool reuse)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;

	assert_true(fd >= 0);
	if (reuse)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
		err = errno;
	close(fd);
	return err;
}

/* The only socket left on port in state st: what it means, checked against the kernel. */
static void assert_closing(uint16_t port, int st)
{
	struct found f;
	size_t i, hits = 0;

	for (int tries = 0; tries < 200; tries++) {
		find(port, IPPROTO_TCP, &f);
		for (i = 0, hits = 0; i < f.n; i++)
			hits += f.v[i].state == st;
		if (hits)
			break;
		free(f.v);
		usleep(10000);
	}
	if (hits != 1) {
		for (i = 0; i < f.n; i++)
			print_message("port %u: %s pid %d inode %llu\n", port,
				      sock_state_name(&f.v[i]), f.v[i].pid,
				      (unsigned long long)f.v[i].inode);
		fail_msg("%zu sockets in state %d on port %u, expected 1", hits, st, port);
	}
	for (i = 0; i < f.n; i++) {
		if (f.v[i].state != st)
			continue;
		assert_int_equal(f.v[i].pid, 0);
		assert_false(sock_blocks_bind(&f.v[i], true));
		assert_true(sock_blocks_bind(&f.v[i], false));
	}
	free(f.v);
	if (try_bind(port, true) || try_bind(port, false) != EADDRINUSE)
		fail_msg("port %u state %d: bind with SO_REUSEADDR %d, plain %d", port, st,
			 try_bind(port, true), try_bind(port, false));
}

/* A server that exits while its client holds the connection: FIN_WAIT2, then TIME_WAIT. */
static void test_closing_states_real(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, lfd, cfd, afd;
	uint16_t port;

	(void)state;
	lfd = loopback_socket(AF_INET, SOCK_STREAM, false, &port);
	assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	a.sin_port = htons(port);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	close(afd);
	close(lfd);
	assert_closing(port, TCP_FIN_WAIT2);
	close(cfd);
	assert_closing(port, TCP_TIME_WAIT);
}

static void test_invalid_args(void **state)
{
	struct sock_holder dummy, *v = &dummy;
	size_t n = 42;

	(void)state;
	assert_int_equal(sockets_find(0, IPPROTO_TCP, &v, &n), -EINVAL);
	assert_int_equal(sockets_find(80, IPPROTO_SCTP, &v, &n), -EINVAL);
	assert_null(v);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_listener),
		cmocka_unit_test(test_tcp_bound_not_listening),
		cmocka_unit_test(test_tcp_bound_other_port_excluded),
		cmocka_unit_test(test_tcp6_listener),
		cmocka_unit_test(test_tcp_established),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_dup_counted_once),
		cmocka_unit_test(test_child_holder),
		cmocka_unit_test(test_closed_socket_gone),
		cmocka_unit_test(test_unused_port),
		cmocka_unit_test(test_cgroup),
		cmocka_unit_test(test_blocks_bind_table),
		cmocka_unit_test(test_closing_states_real),
		cmocka_unit_test(test_invalid_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
