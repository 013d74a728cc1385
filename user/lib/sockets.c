// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Who holds a local port: a sock_diag dump lists the sockets on the port in the caller's
 * network namespace (as ss does), then one pass over /proc/PID/fd maps each socket inode
 * to the processes that hold it.
 *
 * sock_diag behaviour this relies on (checked on Linux 6.18):
 * - id.idiag_sport is honoured by the TCP listen and established walks and by UDP, but the
 *   walk of bound-only TCP sockets (TCP_BOUND_INACTIVE, Linux >= 6.7) ignores it and returns
 *   every bound-only socket of the family, so each reply's port is checked again here.
 * - bound-only sockets are requested with the TCP_BOUND_INACTIVE bit but reported with
 *   idiag_state TCP_CLOSE; older kernels cannot report them at all.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "log.h"
#include "sockets.h"

/* Kernel-internal pseudo-state (include/net/tcp_states.h), not in the uapi headers. */
#define SK_TCP_BOUND_INACTIVE 13 /* Linux >= 6.7; older kernels ignore the bit */
#define SK_STATE(s)	      (1U << (s))

/*
 * TCP states 1..13 but CLOSE (the kernel walks no table for it; bound-only sockets come
 * through the BOUND_INACTIVE bit). TIME_WAIT and SYN_RECV bring in timewait and request
 * sockets: inode 0, never held by a process; sock_blocks_bind() tells what they mean.
 */
#define TCP_DUMP_STATES                                                                            \
	((SK_STATE(SK_TCP_BOUND_INACTIVE + 1) - 1) & ~(SK_STATE(0) | SK_STATE(TCP_CLOSE)))
/* An unconnected UDP socket sits in TCP_CLOSE, a connected one in TCP_ESTABLISHED. */
#define UDP_DUMP_STATES 0xffffffffU

/* Large enough for any dump skb the kernel builds (it caps them at 32 KiB). */
#define DIAG_BUF_SIZE 32768

struct holder_vec {
	struct sock_holder *v;
	size_t n, cap;
};

/* What one /proc pass needs: the dumped sockets, sorted by inode, and where holders go. */
struct proc_scan {
	const struct holder_vec *found;
	pid_t *seen_by; /* per found socket: the last pid recorded for it, 0 for none yet */
	struct holder_vec *held;
};

static int vec_push(struct holder_vec *vec, const struct sock_holder *h)
{
	struct sock_holder *v;
	size_t cap;

	if (vec->n == vec->cap) {
		cap = vec->cap ? vec->cap * 2 : 8;
		v = realloc(vec->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		vec->v = v;
		vec->cap = cap;
	}
	vec->v[vec->n++] = *h;
	return 0;
}

static const char *proto_name(int proto)
{
	return proto == IPPROTO_TCP ? "tcp" : "udp";
}

static const char *family_name(int family)
{
	return family == AF_INET ? "ipv4" : "ipv6";
}

static int diag_open(void)
{
	int fd, err;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		err = -errno;
		p_err("failed to open sock_diag socket: %s", strerror(-err));
		return err;
	}
	return fd;
}

static int diag_request(int fd, int family, int proto, uint16_t port)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = {
			.nlmsg_len = sizeof(msg),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		},
		.req = {
			.sdiag_family = family,
			.sdiag_protocol = proto,
			.idiag_states = proto == IPPROTO_TCP ? TCP_DUMP_STATES : UDP_DUMP_STATES,
			.id.idiag_sport = htons(port),
		},
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	return 0;
}

/* Keep one dumped socket if it really is on `port` (see the bound-only note at the top). */
static int diag_add(const struct inet_diag_msg *m, int proto, uint16_t port,
		    struct holder_vec *found)
{
	struct sock_holder h = {
		.inode = m->idiag_inode,
		.family = m->idiag_family,
		.proto = proto,
		.port = port,
		.listening = proto == IPPROTO_TCP && m->idiag_state == TCP_LISTEN,
		.state = m->idiag_state,
	};

	if (ntohs(m->id.idiag_sport) != port)
		return 0;
	if (h.family != AF_INET && h.family != AF_INET6)
		return 0;
	if (!inet_ntop(h.family, m->id.idiag_src, h.addr, sizeof(h.addr)))
		return -errno;
	return vec_push(found, &h);
}

/* A dump ends in NLMSG_DONE, whose payload carries the dump's error, or in NLMSG_ERROR. */
static int diag_status(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = NLMSG_DATA(nlh);
	const int *done_err = NLMSG_DATA(nlh);

	if (nlh->nlmsg_type == NLMSG_DONE) {
		if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*done_err)))
			return 0;
		return *done_err < 0 ? *done_err : 0;
	}
	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
		return -EPROTO;
	return e->error < 0 ? e->error : -EPROTO;
}

/* Returns 1 once the dump is complete, 0 when more messages follow, or -errno. */
static int diag_parse(const struct nlmsghdr *nlh, int len, int proto, uint16_t port,
		      struct holder_vec *found)
{
	int err;

	for (; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
		if (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR) {
			err = diag_status(nlh);
			return err ? err : 1;
		}
		if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			continue;
		err = diag_add(NLMSG_DATA(nlh), proto, port, found);
		if (err)
			return err;
	}
	return 0;
}

static int diag_dump(int fd, int family, int proto, uint16_t port, struct holder_vec *found)
{
	char buf[DIAG_BUF_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t len;
	int err;

	err = diag_request(fd, family, proto, port);
	while (!err) {
		/* MSG_TRUNC makes recv() return the real length, so a cut-off dump is noticed. */
		len = recv(fd, buf, sizeof(buf), MSG_TRUNC);
		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0)
			err = -errno;
		else if (len > (ssize_t)sizeof(buf))
			err = -EMSGSIZE;
		else
			err = diag_parse((struct nlmsghdr *)buf, len, proto, port, found);
	}
	if (err < 0)
		p_err("failed to dump %s %s sockets: %s%s", family_name(family), proto_name(proto),
		      strerror(-err),
		      err == -ENOENT ? " (is the inet_diag module available?)" : "");
	return err < 0 ? err : 0;
}

/* Both families: a dual-stack socket on "::" is reported once, by the AF_INET6 dump. */
static int diag_collect(uint16_t port, int proto, struct holder_vec *found)
{
	int fd, err;

	fd = diag_open();
	if (fd < 0)
		return fd;
	err = diag_dump(fd, AF_INET, proto, port, found);
	if (!err)
		err = diag_dump(fd, AF_INET6, proto, port, found);
	close(fd);
	return err;
}

static int inode_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct sock_holder *)a)->inode;
	uint64_t y = ((const struct sock_holder *)b)->inode;

	return x < y ? -1 : x > y;
}

/*
 * Sort by inode for bsearch(), and drop repeats: a socket that changes hash table while
 * the kernel walks them (bind then listen) can be dumped twice. Inode 0 (request sockets)
 * is not unique and never matches an fd, so those entries all stay.
 */
static void found_sort(struct holder_vec *found)
{
	size_t i, k = 0;

	qsort(found->v, found->n, sizeof(*found->v), inode_cmp);
	for (i = 0; i < found->n; i++) {
		if (k && found->v[i].inode && found->v[i].inode == found->v[k - 1].inode)
			continue;
		found->v[k++] = found->v[i];
	}
	found->n = k;
}

/* The inode behind an fd if it is a socket, else 0 (also when the fd went away meanwhile). */
static uint64_t fd_socket_inode(int fd_dir, const char *name)
{
	char link[64], *end;
	unsigned long long ino;
	ssize_t len;

	len = readlinkat(fd_dir, name, link, sizeof(link) - 1);
	if (len < 0)
		return 0;
	link[len] = '\0';
	if (strncmp(link, "socket:[", 8))
		return 0;
	errno = 0;
	ino = strtoull(link + 8, &end, 10);
	if (errno || end == link + 8 || strcmp(end, "]"))
		return 0;
	return ino;
}

/* A process that exits mid-scan, or one we may not inspect, is skipped without a word. */
static bool proc_skippable(int err)
{
	return err == ENOENT || err == ESRCH || err == EACCES || err == EPERM;
}

/* comm is at most 15 characters plus '\n', so size - 1 bytes hold all of it. */
static int pid_read_comm(int pid_fd, char *comm, size_t size)
{
	ssize_t len;
	int fd;

	fd = openat(pid_fd, "comm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, comm, size - 1);
	if (len < 0)
		len = -errno;
	close(fd);
	if (len < 0)
		return len;
	comm[len] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return 0;
}

/* The cgroup v2 path is the "0::" line; a v1-only host has none and leaves "" behind. */
static int pid_read_cgroup(int pid_fd, char *cgroup, size_t size)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int fd;

	fd = openat(pid_fd, "cgroup", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -errno;
	}
	cgroup[0] = '\0';
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(cgroup, size, "%s", line + 3);
		break;
	}
	free(line);
	fclose(f);
	return 0;
}

/* Fill who's pid, comm and cgroup; read only for processes that hold a match. */
static int pid_read_info(int pid_fd, pid_t pid, struct sock_holder *who)
{
	int err;

	who->pid = pid;
	err = pid_read_comm(pid_fd, who->comm, sizeof(who->comm));
	if (!err)
		err = pid_read_cgroup(pid_fd, who->cgroup, sizeof(who->cgroup));
	return err;
}

static int holder_add(struct proc_scan *s, size_t idx, const struct sock_holder *who)
{
	struct sock_holder h = s->found->v[idx];

	h.pid = who->pid;
	memcpy(h.comm, who->comm, sizeof(h.comm));
	memcpy(h.cgroup, who->cgroup, sizeof(h.cgroup));
	s->seen_by[idx] = who->pid;
	return vec_push(s->held, &h);
}

/* Walk one process's fds; dup()ed fds of one socket count once per process. */
static int pid_match_fds(DIR *fds, int pid_fd, pid_t pid, struct proc_scan *s)
{
	struct sock_holder key = {}, who = {}, *hit;
	struct dirent *de;
	size_t idx;
	int err = 0;

	while (!err && (de = readdir(fds))) {
		key.inode = fd_socket_inode(dirfd(fds), de->d_name);
		if (!key.inode)
			continue;
		hit = bsearch(&key, s->found->v, s->found->n, sizeof(key), inode_cmp);
		if (!hit)
			continue;
		idx = hit - s->found->v;
		if (s->seen_by[idx] == pid)
			continue;
		if (!who.pid)
			err = pid_read_info(pid_fd, pid, &who);
		if (!err)
			err = holder_add(s, idx, &who);
	}
	return err;
}

/* Open /proc/PID once and work relative to it, so a recycled pid cannot mix two processes. */
static int pid_scan(int proc_fd, const char *name, pid_t pid, struct proc_scan *s)
{
	int pid_fd, fd_dir, err;
	DIR *fds;

	pid_fd = openat(proc_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pid_fd < 0)
		return -errno;
	fd_dir = openat(pid_fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd_dir < 0) {
		err = -errno;
		goto out_pid;
	}
	fds = fdopendir(fd_dir);
	if (!fds) {
		err = -errno;
		close(fd_dir);
		goto out_pid;
	}
	err = pid_match_fds(fds, pid_fd, pid, s);
	closedir(fds);
out_pid:
	close(pid_fd);
	return err;
}

static pid_t pid_parse(const char *name)
{
	char *end;
	long pid;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	errno = 0;
	pid = strtol(name, &end, 10);
	if (errno || *end || pid <= 0 || pid != (pid_t)pid)
		return 0;
	return pid;
}

static int proc_scan_all(struct proc_scan *s)
{
	struct dirent *de;
	int err = 0;
	pid_t pid;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc) {
		err = -errno;
		p_err("failed to open '/proc': %s", strerror(-err));
		return err;
	}
	while (!err) {
		errno = 0;
		de = readdir(proc);
		if (!de) {
			err = -errno;
			break;
		}
		pid = pid_parse(de->d_name);
		if (!pid)
			continue;
		err = pid_scan(dirfd(proc), de->d_name, pid, s);
		if (err && proc_skippable(-err))
			err = 0;
		else if (err)
			p_err("failed to scan fds of pid %d: %s", pid, strerror(-err));
	}
	closedir(proc);
	if (err && !de)
		p_err("failed to read '/proc': %s", strerror(-err));
	return err;
}

/* Sockets nobody visible holds are still reported, with pid 0. */
static int orphans_add(const struct proc_scan *s)
{
	size_t i;
	int err;

	for (i = 0; i < s->found->n; i++) {
		if (s->seen_by[i])
			continue;
		err = vec_push(s->held, &s->found->v[i]);
		if (err) {
			p_err("failed to allocate socket list: %s", strerror(-err));
			return err;
		}
	}
	return 0;
}

static int holders_collect(struct holder_vec *found, struct holder_vec *held)
{
	struct proc_scan s = { .found = found, .held = held };
	int err;

	found_sort(found);
	s.seen_by = calloc(found->n, sizeof(*s.seen_by));
	if (!s.seen_by) {
		p_err("failed to allocate socket list: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	err = proc_scan_all(&s);
	if (!err)
		err = orphans_add(&s);
	free(s.seen_by);
	return err;
}

static int query_check(uint16_t port, int proto, struct sock_holder **out, size_t *n)
{
	if (!out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
		p_err("failed to find sockets: protocol %d is neither tcp nor udp", proto);
		return -EINVAL;
	}
	/* The kernel reads sport 0 as "any port"; no socket is bound to port 0. */
	if (!port) {
		p_err("failed to find sockets: port 0 is not a bound port");
		return -EINVAL;
	}
	return 0;
}

int sockets_find(uint16_t port, int proto, struct sock_holder **out, size_t *n)
{
	struct holder_vec found = {}, held = {};
	int err;

	err = query_check(port, proto, out, n);
	if (err)
		return err;
	err = diag_collect(port, proto, &found);
	/* The /proc scan costs one readlink per fd on the host; skip it when nothing matched. */
	if (!err && found.n)
		err = holders_collect(&found, &held);
	free(found.v);
	if (err) {
		free(held.v);
		return err;
	}
	*out = held.v;
	*n = held.n;
	return 0;
}

/*
 * net/ipv4/inet_connection_sock.c inet_bind_conflict(): a socket in the port's bind bucket
 * conflicts unless both set SO_REUSEADDR and it is not listening; timewait sockets sit in
 * the bucket too. A request socket (SYN_RECV, inode 0) only exists under a listener, which
 * is dumped itself.
 */
bool sock_blocks_bind(const struct sock_holder *h, bool reuseaddr)
{
	if (h->proto != IPPROTO_TCP)
		return true; /* UDP: no states, a bound socket is bound */
	if (h->state == TCP_SYN_RECV && !h->inode)
		return false;
	if (!reuseaddr)
		return true;
	switch (h->state) {
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_TIME_WAIT:
	case TCP_CLOSE_WAIT:
	case TCP_LAST_ACK:
	case TCP_CLOSING:
		return false;
	default:
		return true;
	}
}

const char *sock_state_name(const struct sock_holder *h)
{
	static const char *const names[] = {
		[TCP_ESTABLISHED] = "established",
		[TCP_SYN_SENT] = "syn_sent",
		[TCP_SYN_RECV] = "syn_recv",
		[TCP_FIN_WAIT1] = "fin_wait1",
		[TCP_FIN_WAIT2] = "fin_wait2",
		[TCP_TIME_WAIT] = "time_wait",
		[TCP_CLOSE] = "bound",
		[TCP_CLOSE_WAIT] = "close_wait",
		[TCP_LAST_ACK] = "last_ack",
		[TCP_LISTEN] = "listen",
		[TCP_CLOSING] = "closing",
	};

	if (h->proto != IPPROTO_TCP)
		return h->state == TCP_ESTABLISHED ? "connected" : "bound";
	if (h->state >= 0 && (size_t)h->state < sizeof(names) / sizeof(names[0]) && names[h->state])
		return names[h->state];
	return "unknown";
}
