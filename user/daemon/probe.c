// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Probes out of process. The blocking work (resolve, connect, curl, run a command) is written
 * once, synchronously, under a deadline: probe_run() calls it in the caller's process, the
 * child of probe_start() calls it and writes "<0|1> <detail>\n" to a pipe. caelumd only ever
 * reads that pipe, a timerfd and waitpid(WNOHANG) for pids it knows.
 *
 * Processes: the child P of probe_start() leads its own process group; an EXEC command G runs
 * inside that group, so one kill(-P) ends P, G and whatever G left behind. In probe_run() G
 * leads a group of its own for the same reason.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dbprobe.h"
#include "log.h"
#include "probe.h"
#include "probe_int.h"
#include "version.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* "1 " + detail + "\n" */
#define PROBE_LINE_MAX (2 + sizeof(((struct probe_result *)0)->detail) + 1)
/* How long ending a probe may wait for its SIGKILLed child before leaving it to probe_reap() */
#define PROBE_REAP_WAIT_MS 100

struct probe {
	struct loop *loop;
	probe_done_fn fn;
	void *ctx;
	pid_t pid;
	int rfd; /* the child's result line */
	int tfd; /* timerfd: the parent's own deadline */
	unsigned int timeout_ms;
	uint64_t start_ms;
	size_t len;
	char line[PROBE_LINE_MAX];
};

/* Children whose probe ended before they were reaped: probe_reap() waits for them. */
static pid_t *late_pids;
static size_t late_n, late_cap;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds until deadline, 0 once it has passed. */
unsigned int probe_ms_left(uint64_t deadline)
{
	uint64_t now = now_ms();

	return now >= deadline ? 0 : (unsigned int)(deadline - now);
}

int probe_verdict(struct probe_result *r, int ok, const char *fmt, ...)
{
	va_list ap;

	r->ok = ok;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	return 0;
}

int probe_failed(struct probe_result *r, int err, const char *fmt, ...)
{
	va_list ap;

	r->ok = 0;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	return err;
}

#define invalid(r, ...) failed(r, -EINVAL, __VA_ARGS__)

/* A local failure, errno set by what: -errno, and the reason in the detail. */
static int local_err(struct probe_result *r, const char *what)
{
	int err = errno;

	return failed(r, -err, "failed to %s: %s", what, strerror(err));
}

/* Bytes from a command or a server as printable ASCII: \r \n \t \\ and \xNN escapes. */
static void esc(char *dst, size_t size, const char *src, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];
		char e[5];
		size_t k;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			e[0] = (char)c;
			k = 1;
		} else if (c == '\\' || c == '\r' || c == '\n' || c == '\t') {
			e[0] = '\\';
			e[1] = c == '\\' ? '\\' : c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
			k = 2;
		} else {
			snprintf(e, sizeof(e), "\\x%02x", c);
			k = 4;
		}
		if (o + k >= size)
			break;
		memcpy(dst + o, e, k);
		o += k;
	}
	dst[o] = '\0';
}

/* ---- the spec ---- */

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* "host:port" or "[v6]:port" into host and port (a decimal 1..65535). */
static int split_target(const char *t, char *host, char port[6], struct probe_result *r)
{
	const char *h = t, *p;
	size_t hlen;
	char *end;
	long v;

	if (t[0] == '[') {
		const char *rb = strchr(t, ']');

		if (!rb || rb[1] != ':')
			return invalid(r, "target '%s': expected \"[address]:port\"", t);
		h = t + 1;
		hlen = (size_t)(rb - h);
		p = rb + 2;
	} else {
		const char *colon = strrchr(t, ':');

		if (!colon)
			return invalid(r, "target '%s': expected \"host:port\"", t);
		hlen = (size_t)(colon - t);
		if (memchr(t, ':', hlen))
			return invalid(r, "target '%s': IPv6 needs brackets: \"[::1]:port\"", t);
		p = colon + 1;
	}
	if (!hlen)
		return invalid(r, "target '%s': no host", t);
	errno = 0;
	v = strtol(p, &end, 10);
	if (*p < '0' || *p > '9' || *end || errno || v < 1 || v > 65535)
		return invalid(r, "target '%s': port must be 1..65535", t);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	snprintf(port, 6, "%ld", v);
	return 0;
}

static bool is_http_url(const char *u)
{
	return !strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8);
}

/* The target of TCP, HTTP and DB; the URL is never quoted, it may carry a password. */
static int check_target(const struct probe_spec *s, struct probe_result *r)
{
	char host[PROBE_TARGET_MAX], port[6];

	if (!memchr(s->target, '\0', sizeof(s->target)))
		return invalid(r, "target is not NUL-terminated within %zu bytes",
			       sizeof(s->target));
	if (!printable(s->target))
		return invalid(r, "target is empty or holds spaces or control characters");
	if (s->kind == PROBE_HTTP && !is_http_url(s->target))
		return invalid(r, "URL must start with http:// or https://");
	if (s->kind == PROBE_HTTP)
		return 0;
	return split_target(s->target, host, port, r);
}

static int check_argv(const struct probe_spec *s, struct probe_result *r)
{
	const char *cmd = s->argv ? s->argv[0] : NULL;

	if (!cmd || !cmd[0])
		return invalid(r, "no command to run");
	if (strchr(cmd, '/') && cmd[0] != '/')
		return invalid(r, "command '%s': give an absolute path or a name in PATH", cmd);
	if (strlen(cmd) >= PATH_MAX)
		return invalid(r, "command name is longer than %d bytes", PATH_MAX - 1);
	return 0;
}

static int spec_check(const struct probe_spec *s, struct probe_result *r)
{
	if (!s)
		return invalid(r, "no probe spec");
	if (!memchr(s->cgroup, '\0', sizeof(s->cgroup)))
		return invalid(r, "cgroup is not NUL-terminated within %zu bytes",
			       sizeof(s->cgroup));
	if (s->cgroup[0] && s->cgroup[0] != '/')
		return invalid(r, "cgroup '%s' is not an absolute path", s->cgroup);
	if (!s->timeout_ms || s->timeout_ms > PROBE_TIMEOUT_MAX_MS)
		return invalid(r, "timeout %u ms is out of range 1..%u", s->timeout_ms,
			       PROBE_TIMEOUT_MAX_MS);
	switch (s->kind) {
	case PROBE_EXEC:
		return check_argv(s, r);
	case PROBE_DB:
		if (s->db_kind < 0 || s->db_kind > DB_TCP)
			return invalid(r, "invalid database kind %d", s->db_kind);
		/* fall through */
	case PROBE_TCP:
	case PROBE_HTTP:
		return check_target(s, r);
	}
	return invalid(r, "invalid probe kind %d", (int)s->kind);
}

/* ---- TCP and DB: resolve, then every address in turn ---- */

static int resolve(const char *target, struct addrinfo **out, struct probe_result *r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	char host[PROBE_TARGET_MAX], port[6];
	int err = split_target(target, host, port, r);

	if (err)
		return err;
	err = getaddrinfo(host, port, &hints, out);
	if (err == EAI_MEMORY)
		return failed(r, -ENOMEM, "failed to resolve '%s': out of memory", host);
	if (err == EAI_SYSTEM)
		return verdict(r, 0, "failed to resolve '%s': %s", host, strerror(errno));
	if (err)
		return verdict(r, 0, "failed to resolve '%s': %s", host, gai_strerror(err));
	return 0;
}

static void addr_str(const struct sockaddr *sa, char *buf, size_t size)
{
	const struct sockaddr_in6 *in6 = (const void *)sa;
	const struct sockaddr_in *in = (const void *)sa;
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
	}
}

/*
 * db_probe() (a bare connect for DB_TCP) on each address until one answers. Each gets an even
 * share of what is left, so that a blackholed first address cannot starve the others and an
 * address refused at once leaves its share to the next.
 */
static int probe_addrs(enum db_kind kind, const struct probe_spec *s, uint64_t deadline,
		       struct probe_result *r)
{
	struct db_probe_result dr = { .ok = 0 };
	struct addrinfo *ai = NULL;
	unsigned int n = 0, tried = 0;
	char peer[INET6_ADDRSTRLEN + 8];
	int err = resolve(s->target, &ai, r);

	if (err || !ai)
		return err;
	for (struct addrinfo *a = ai; a; a = a->ai_next)
		n++;
	for (struct addrinfo *a = ai; a && !dr.ok; a = a->ai_next, tried++) {
		unsigned int left = ms_left(deadline), share = left / (n - tried);

		if (!left)
			break;
		err = db_probe(kind, a->ai_addr, a->ai_addrlen, share ? share : left, &dr);
		if (err) {
			freeaddrinfo(ai);
			return failed(r, err, "%s", dr.detail);
		}
		addr_str(a->ai_addr, peer, sizeof(peer));
	}
	freeaddrinfo(ai);
	if (!tried) /* the name took all the time there was */
		return verdict(r, 0, "timed out after %u ms", s->timeout_ms);
	if (dr.ok && kind == DB_TCP)
		return verdict(r, 1, "connected to %s", peer);
	if (dr.ok || tried < 2)
		return verdict(r, dr.ok, "%s", dr.detail);
	return verdict(r, 0, "%s (%u addresses tried)", dr.detail, tried);
}

/* ---- EXEC ---- */

/* fds lo..hi closed (or, with CLOSE_RANGE_CLOEXEC, marked close-on-exec). */
static int fds_close(unsigned int lo, unsigned int hi, unsigned int flags)
{
	struct dirent *de;
	DIR *d;

	if (lo > hi || !syscall(SYS_close_range, lo, hi, flags))
		return 0;
	/* before Linux 5.11 (CLOEXEC) or 5.9: walk the fds that exist */
	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		long fd = strtol(de->d_name, NULL, 10);

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd == dirfd(d) || fd < lo ||
		    fd > hi)
			continue;
		if (flags & CLOSE_RANGE_CLOEXEC)
			fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		else
			close((int)fd);
	}
	closedir(d);
	return 0;
}

/* A forked child starts from defaults: caelumd's handlers and ignored signals are not its. */
static void signals_reset(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL); /* glibc's internal signals refuse: fine */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* argv[0] as given when it holds a slash, else the first executable in PROBE_EXEC_PATH. */
static bool exec_find(const char *cmd, char path[PATH_MAX])
{
	const char *dir = PROBE_EXEC_PATH;

	if (strchr(cmd, '/')) {
		snprintf(path, PATH_MAX, "%s", cmd);
		return true;
	}
	while (*dir) {
		size_t n = strcspn(dir, ":");
		struct stat st;

		snprintf(path, PATH_MAX, "%.*s/%s", (int)n, dir, cmd);
		if (!stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK))
			return true;
		dir += n + (dir[n] == ':');
	}
	return false;
}

/* Become s's uid:gid for good (probe.h, run_as). 0 or -1 with errno. */
static int drop_to(const struct probe_spec *s)
{
	if (!s->run_as)
		return 0;
	if (setgroups(0, NULL) || setresgid(s->gid, s->gid, s->gid) ||
	    setresuid(s->uid, s->uid, s->uid))
		return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* The command's side of the fork: never returns. errno goes back through errw on failure. */
static void __attribute__((noreturn))
exec_child(const struct probe_spec *s, const char *path, int outw, int errw, bool own_group)
{
	static char *const envp[] = { "PATH=" PROBE_EXEC_PATH, NULL };
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC), err;

	if (own_group)
		setpgid(0, 0);
	signals_reset();
	/* the same start wherever caelumd or caelumctl happen to run: /, stdin empty */
	if (null < 0 || dup2(null, 0) < 0 || dup2(outw, 1) < 0 || dup2(outw, 2) < 0 || chdir("/"))
		goto fail;
	/* errw is O_CLOEXEC: it stays open for the errno until execve() succeeds */
	if (fds_close(3, ~0U, CLOSE_RANGE_CLOEXEC) || drop_to(s))
		goto fail;
	execve(path, s->argv, envp);
fail:
	err = errno;
	if (write(errw, &err, sizeof(err)) != sizeof(err))
		_exit(126);
	_exit(127);
}

/* Fork and exec; *pid, and 0, or an exec errno (> 0, the child is reaped), or -errno. */
static int exec_spawn(const struct probe_spec *s, const char *path, int outw, bool own_group,
		      pid_t *pid)
{
	int ep[2], err = 0;
	ssize_t n;

	if (pipe2(ep, O_CLOEXEC))
		return -errno;
	*pid = fork();
	if (*pid < 0) {
		err = -errno;
		close(ep[0]);
		close(ep[1]);
		return err;
	}
	if (!*pid)
		exec_child(s, path, outw, ep[1], own_group);
	if (own_group)
		setpgid(*pid, *pid); /* both sides: the group exists before any kill(-pid) */
	close(ep[1]);
	do
		n = read(ep[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == sizeof(err)) {
		waitpid(*pid, NULL, 0);
		return err > 0 ? err : EIO;
	}
	return 0;
}

/* The first non-empty line of the command's output, at most PROBE_OUTPUT_LINE_MAX bytes. */
struct out_line {
	char buf[PROBE_OUTPUT_LINE_MAX];
	size_t len;
	bool done;
};

static void out_add(struct out_line *o, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !o->done; i++) {
		if (p[i] == '\n')
			o->done = o->len > 0;
		else if (p[i] != '\r')
			o->buf[o->len++] = p[i];
		if (o->len == sizeof(o->buf))
			o->done = true;
	}
}

/* Read what is there (fd is non-blocking): 1 got bytes, 0 none now, -1 end of output. */
static int out_read(int fd, struct out_line *o)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	/* past the first line too: drained, so that the command never blocks on a full pipe */
	if (n > 0) {
		out_add(o, buf, (size_t)n);
		return 1;
	}
	return !n || (errno != EINTR && errno != EAGAIN) ? -1 : 0;
}

/*
 * Until the command exits or the deadline: its output read on the way, so that a full pipe
 * never stalls it. 1 exited (*status), 0 deadline, -errno. A pidfd, not EOF, says it exited:
 * what it left in the background may hold the pipe open.
 */
static int exec_wait(pid_t pid, int outr, uint64_t deadline, struct out_line *o, int *status)
{
	struct pollfd pf[2] = { { .fd = outr, .events = POLLIN }, { .events = POLLIN } };
	int err = 0;

	pf[1].fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pf[1].fd < 0)
		return -errno;
	while (!err) {
		unsigned int left = ms_left(deadline);
		int n;

		if (!left)
			break;
		n = poll(pf, 2, (int)left);
		if (n < 0 && errno != EINTR)
			err = -errno;
		if (n > 0 && pf[0].revents && out_read(outr, o) < 0)
			pf[0].fd = -1;
		if (n > 0 && pf[1].revents)
			err = 1;
	}
	close(pf[1].fd);
	if (err == 1 && waitpid(pid, status, 0) != pid)
		err = -errno;
	return err;
}

/* "exit status 3: <line>", "killed by signal 9 (Killed)", plus ": <line>" when there is one. */
static int exec_verdict(int status, const struct out_line *o, struct probe_result *r)
{
	char head[64], line[sizeof(r->detail)];

	if (WIFEXITED(status))
		snprintf(head, sizeof(head), "exit status %d", WEXITSTATUS(status));
	else
		snprintf(head, sizeof(head), "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	esc(line, sizeof(line), o->buf, o->len);
	if (!o->len)
		return verdict(r, WIFEXITED(status) && !WEXITSTATUS(status), "%s", head);
	return verdict(r, WIFEXITED(status) && !WEXITSTATUS(status), "%s: %s", head, line);
}

/*
 * Stop the command and everything it started: its own group in probe_run(); inside P only
 * the command itself, the parent's kill of P's group takes the rest. Then reap it.
 */
static void exec_kill(pid_t pid, bool own_group)
{
	kill(own_group ? -pid : pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int exec_collect(pid_t pid, int outr, bool own_group, const struct probe_spec *s,
			uint64_t deadline, struct probe_result *r)
{
	struct out_line o = { .len = 0 };
	char line[sizeof(r->detail)];
	int status, err = exec_wait(pid, outr, deadline, &o, &status);

	if (err <= 0) {
		exec_kill(pid, own_group);
		if (err)
			return failed(r, err, "failed to wait for the command: %s", strerror(-err));
		esc(line, sizeof(line), o.buf, o.len);
		return verdict(r, 0, "timed out after %u ms%s%s", s->timeout_ms, o.len ? ": " : "",
			       line);
	}
	/* what it left behind: still in the group, the zombie keeps the group id from reuse */
	if (own_group)
		kill(-pid, SIGKILL);
	while (!o.done && out_read(outr, &o) > 0)
		; /* what it wrote before exiting, not what the background may write later */
	return exec_verdict(status, &o, r);
}

static int probe_exec(const struct probe_spec *s, uint64_t deadline, bool own_group,
		      struct probe_result *r)
{
	char path[PATH_MAX];
	int out[2], err;
	pid_t pid = 0;

	if (!exec_find(s->argv[0], path))
		return verdict(r, 0, "failed to find '%s' in PATH=" PROBE_EXEC_PATH, s->argv[0]);
	if (pipe2(out, O_CLOEXEC))
		return local_err(r, "create a pipe");
	if (fcntl(out[0], F_SETFL, O_NONBLOCK)) {
		err = local_err(r, "configure the output pipe");
	} else {
		err = exec_spawn(s, path, out[1], own_group, &pid);
		close(out[1]);
		out[1] = -1;
	}
	if (err > 0)
		err = verdict(r, 0, "failed to execute '%s': %s", path, strerror(err));
	else if (err < 0 && !r->detail[0])
		failed(r, err, "failed to fork for '%s': %s", path, strerror(-err));
	else if (!err)
		err = exec_collect(pid, out[0], own_group, s, deadline, r);
	close(out[0]);
	if (out[1] >= 0)
		close(out[1]);
	return err;
}

/* ---- one probe, synchronously ---- */

/* in_child: inside P, whose group already holds whatever an EXEC command starts. */
static int run_spec(const struct probe_spec *s, struct probe_result *r, bool in_child)
{
	uint64_t start = now_ms(), deadline;
	int err;

	memset(r, 0, sizeof(*r));
	err = spec_check(s, r);
	if (err)
		return err;
	deadline = start + s->timeout_ms;
	switch (s->kind) {
	case PROBE_TCP:
		err = probe_addrs(DB_TCP, s, deadline, r);
		break;
	case PROBE_DB:
		err = probe_addrs((enum db_kind)s->db_kind, s, deadline, r);
		break;
	case PROBE_HTTP:
		/* Linked into caelumd only (probe_http.c): libcurl's library tree costs every
		 * caelumctl call ~5 ms of dynamic loading, and caelumctl probes databases only. */
		err = probe_http ? probe_http(s->target, s->timeout_ms, deadline, r)
				 : failed(r, -ENOTSUP,
					  "HTTP probes are run by caelumd, not by this program");
		break;
	case PROBE_EXEC:
		err = probe_exec(s, deadline, !in_child, r);
		break;
	}
	r->elapsed_ms = now_ms() - start;
	return err;
}

int probe_run(const struct probe_spec *s, struct probe_result *r)
{
	if (!r)
		return -EINVAL;
	return run_spec(s, r, false);
}

/* ---- the child of probe_start() ---- */

/*
 * Only wfd and stdin/out/err stay open. wfd moves to 3 and up, and /dev/null fills a closed
 * stdio slot, so that no pipe opened later becomes a command's stdin or stdout by accident.
 */
static int child_fds(int wfd)
{
	if (wfd < 3) {
		int fd = fcntl(wfd, F_DUPFD_CLOEXEC, 3);

		if (fd < 0)
			return -1;
		close(wfd);
		wfd = fd;
	}
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			return -1;
	if (fds_close(3, (unsigned int)wfd - 1, 0) || fds_close((unsigned int)wfd + 1, ~0U, 0))
		return -1;
	return wfd;
}

/* The detail is printable already; this only guards the line's framing. */
static void line_safe(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* "0" to cgroup.procs: this process. Its command, if any, follows it there. */
static int cgroup_join(const char *dir, struct probe_result *r)
{
	char path[PATH_MAX + 16];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err)
		return failed(r, -err, "failed to join cgroup '%s': %s", dir, strerror(err));
	return 0;
}

static void __attribute__((noreturn)) child_main(const struct probe_spec *s, int wfd)
{
	struct probe_result r;
	char line[PROBE_LINE_MAX];
	int n;

	setpgid(0, 0);
	signals_reset();
	/* sockets and a reader that went away are answers here, not reasons to die */
	signal(SIGPIPE, SIG_IGN);
	wfd = child_fds(wfd);
	if (wfd < 0)
		_exit(127);
	memset(&r, 0, sizeof(r));
	if (!s->cgroup[0] || !cgroup_join(s->cgroup, &r))
		run_spec(s, &r, true);
	line_safe(r.detail);
	n = snprintf(line, sizeof(line), "%d %s\n", r.ok ? 1 : 0, r.detail);
	/* what an EXEC command left running is the parent's to kill, with the whole group */
	_exit(write(wfd, line, (size_t)n) == n ? 0 : 127);
}

/* ---- the parent's side ---- */

static void reap_later(pid_t pid)
{
	if (late_n == late_cap) {
		size_t cap = late_cap ? late_cap * 2 : 8;
		pid_t *p = realloc(late_pids, cap * sizeof(*p));

		if (!p) {
			p_warn("failed to remember probe child %d for reaping: %s", (int)pid,
			       strerror(ENOMEM));
			return;
		}
		late_pids = p;
		late_cap = cap;
	}
	late_pids[late_n++] = pid;
}

void probe_reap(void)
{
	size_t i = 0;

	while (i < late_n) {
		pid_t w = waitpid(late_pids[i], NULL, WNOHANG);

		if (w == late_pids[i] || (w < 0 && errno == ECHILD))
			late_pids[i] = late_pids[--late_n];
		else
			i++;
	}
}

/*
 * Kill what is left of the child's group and reap the child: its wait status, or -1 when it
 * is not gone within PROBE_REAP_WAIT_MS (probe_reap() takes it then). The kill comes first:
 * until the child is reaped, its pid and so its group id cannot be reused.
 */
static int child_end(pid_t pid)
{
	int status;

	kill(-pid, SIGKILL);
	for (int i = 0; i <= PROBE_REAP_WAIT_MS; i++) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			return status;
		if (w < 0 && errno != EINTR)
			return -1; /* ECHILD: SIGCHLD ignored, the kernel reaped it */
		usleep(1000);
	}
	reap_later(pid);
	return -1;
}

static void probe_free(struct probe *p)
{
	if (p->rfd >= 0) {
		loop_del(p->loop, p->rfd);
		close(p->rfd);
	}
	if (p->tfd >= 0) {
		loop_del(p->loop, p->tfd);
		close(p->tfd);
	}
	free(p);
}

/* End the probe, then call back: fn may start new probes, and p is gone by then. */
static void probe_finish(struct probe *p, int ok, const char *detail)
{
	struct probe_result r = { .ok = ok, .elapsed_ms = now_ms() - p->start_ms };
	probe_done_fn fn = p->fn;
	void *ctx = p->ctx;

	snprintf(r.detail, sizeof(r.detail), "%s", detail);
	probe_free(p);
	fn(ctx, &r);
}

/* The child went away without a result line: say how it ended. */
static void probe_lost(struct probe *p)
{
	int status = child_end(p->pid);
	char why[128] = "probe process exited without a result";

	p->pid = 0;
	if (status >= 0 && WIFEXITED(status))
		snprintf(why, sizeof(why), "probe process exited with status %d without a result",
			 WEXITSTATUS(status));
	else if (status >= 0 && WIFSIGNALED(status))
		snprintf(why, sizeof(why), "probe process killed by signal %d without a result",
			 WTERMSIG(status));
	probe_finish(p, 0, why);
}

/* "<0|1> <detail>\n", detail printable, as child_main() writes it. */
static void probe_answer(struct probe *p, char *nl)
{
	bool good = (p->line[0] == '0' || p->line[0] == '1') && p->line[1] == ' ';

	for (const char *c = p->line + 2; good && c < nl; c++)
		good = *c >= 0x20 && *c < 0x7f;
	child_end(p->pid);
	p->pid = 0;
	if (!good) {
		probe_finish(p, 0, "probe process sent a malformed result");
		return;
	}
	*nl = '\0';
	probe_finish(p, p->line[0] == '1', p->line + 2);
}

static void on_result(void *ctx, uint32_t events)
{
	struct probe *p = ctx;
	ssize_t n;
	char *nl;

	(void)events;
	n = read(p->rfd, p->line + p->len, sizeof(p->line) - 1 - p->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		probe_lost(p);
		return;
	}
	p->len += (size_t)n;
	p->line[p->len] = '\0';
	nl = memchr(p->line, '\n', p->len);
	if (nl)
		probe_answer(p, nl);
	else if (p->len == sizeof(p->line) - 1)
		probe_answer(p, p->line + p->len); /* no end in sight: malformed */
}

static void on_deadline(void *ctx, uint32_t events)
{
	struct probe *p = ctx;
	char detail[64];

	(void)events;
	child_end(p->pid);
	p->pid = 0;
	snprintf(detail, sizeof(detail), "timed out after %u ms", p->timeout_ms);
	probe_finish(p, 0, detail);
}

static int deadline_arm(struct probe *p)
{
	unsigned int ms = p->timeout_ms + PROBE_GRACE_MS;
	struct itimerspec its = {
		.it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 },
	};

	p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (p->tfd < 0)
		return -errno;
	return timerfd_settime(p->tfd, 0, &its, NULL) ? -errno : 0;
}

/* Fork the child; the parent keeps the pipe's read end, non-blocking for the loop. */
static int probe_fork(struct probe *p, const struct probe_spec *s)
{
	int fds[2], err;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	p->rfd = fds[0];
	if (fcntl(p->rfd, F_SETFL, O_NONBLOCK)) {
		err = -errno;
		close(fds[1]);
		return err;
	}
	p->start_ms = now_ms();
	p->pid = fork();
	if (p->pid < 0) {
		err = -errno;
		p->pid = 0;
		close(fds[1]);
		return err;
	}
	if (!p->pid)
		child_main(s, fds[1]);
	setpgid(p->pid, p->pid); /* both sides: the group exists before any kill(-pid) */
	close(fds[1]);
	return 0;
}

int probe_start(struct loop *l, const struct probe_spec *s, probe_done_fn fn, void *ctx,
		struct probe **out)
{
	struct probe_result r;
	struct probe *p;
	int err;

	if (!l || !fn || !out)
		return -EINVAL;
	err = spec_check(s, &r);
	if (err) {
		p_err("failed to start probe: %s", r.detail);
		return err;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = l;
	p->fn = fn;
	p->ctx = ctx;
	p->rfd = p->tfd = -1;
	p->timeout_ms = s->timeout_ms;
	err = deadline_arm(p);
	if (!err)
		err = probe_fork(p, s);
	if (!err)
		err = loop_add(l, p->rfd, EPOLLIN, on_result, p);
	if (!err)
		err = loop_add(l, p->tfd, EPOLLIN, on_deadline, p);
	if (err) {
		p_err("failed to start probe: %s", strerror(-err));
		probe_cancel(p);
		return err;
	}
	*out = p;
	return 0;
}

void probe_cancel(struct probe *p)
{
	if (!p)
		return;
	if (p->pid > 0)
		child_end(p->pid);
	probe_free(p);
}
