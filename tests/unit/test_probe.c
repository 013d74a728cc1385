// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Out-of-process probes, driven through a real struct loop: listeners and fake HTTP and Redis
 * servers on loopback (a thread each), commands that succeed, fail, print, hang and leave
 * grandchildren behind. After every asynchronous probe no child of this process may remain;
 * killed grandchildren are looked up in /proc.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"
#include "dbprobe.h"
#include "loop.h"
#include "probe.h"

#define SLACK_MS 300 /* a timeout is kept within this, fork and exec included */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- processes ---- */

/* State letter of pid from /proc, 0 when there is no such process. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], *rp;
	FILE *f;
	char st = 0;
	int pp = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
	    sscanf(rp + 1, " %c %d", &st, &pp) != 2)
		st = 0;
	fclose(f);
	if (ppid)
		*ppid = pp;
	return st;
}

/* How many processes have this one as their parent. */
static int children(pid_t *first)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name), ppid;

		if (pid > 0 && proc_state(pid, &ppid) && ppid == getpid()) {
			if (first && !n)
				*first = pid;
			n++;
		}
	}
	closedir(d);
	return n;
}

/* No child left within ms (probe_reap() called meanwhile); 0 ms: none now. */
static void expect_no_children(unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	int n;

	while ((n = children(NULL)) && now_ms() < end) {
		probe_reap();
		usleep(5000);
	}
	if (n)
		fail_msg("%d child process(es) left behind", n);
}

/* pid is not running (gone, or a zombie of someone else's) within 2 s. */
static void expect_gone(pid_t pid)
{
	uint64_t end = now_ms() + 2000;
	char st;

	while ((st = proc_state(pid, NULL)) && st != 'Z' && st != 'X' && now_ms() < end)
		usleep(5000);
	if (st && st != 'Z' && st != 'X')
		fail_msg("process %d is still there (state %c)", (int)pid, st);
}

/* ---- loopback servers ---- */

struct fake {
	int lfd;
	int port;
	const char *until; /* read until this arrives (end of request), then answer */
	const char *reply;
	const char *error;
	pthread_t thread;
	sem_t ready; /* the thread is about to wait in poll() */
};

/* Listen on loopback of family, port 0; no thread (nobody ever accepts). */
static void fake_listen(struct fake *f, int family)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	socklen_t len = family == AF_INET6 ? sizeof(*in6) : sizeof(*in);

	if (family == AF_INET6)
		in6->sin6_addr = in6addr_loopback;
	else
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&ss, &len), 0);
	f->port = ntohs(family == AF_INET6 ? in6->sin6_port : in->sin_port);
}

static void fake_talk(struct fake *f, int fd)
{
	char got[4096] = "", sink[512];
	size_t n = 0;

	while (!strstr(got, f->until)) {
		ssize_t k = recv(fd, got + n, sizeof(got) - 1 - n, 0);

		if (k <= 0) {
			f->error = "client left before the end of its request";
			return;
		}
		n += (size_t)k;
		got[n] = '\0';
	}
	send(fd, f->reply, strlen(f->reply), MSG_NOSIGNAL);
	/* until the client hangs up, so that no unread byte turns our close into a reset */
	while (recv(fd, sink, sizeof(sink), 0) > 0)
		;
}

static void *fake_serve(void *arg)
{
	struct fake *f = arg;
	struct pollfd pfd = { .fd = f->lfd, .events = POLLIN };
	struct timeval tv = { .tv_sec = 5 };
	int fd;

	sem_post(&f->ready);
	if (poll(&pfd, 1, 5000) != 1) {
		f->error = "no connection within 5 s";
		return NULL;
	}
	fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		f->error = "accept failed";
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fake_talk(f, fd);
	close(fd);
	return NULL;
}

/*
 * A one-connection server on 127.0.0.1 answering reply once it has read until. Returns once
 * the thread waits for the connection: a probe forks next, and a thread still starting up
 * may hold a sanitizer's allocator lock that the child would inherit, locked, forever.
 */
static void fake_start(struct fake *f, const char *until, const char *reply)
{
	f->until = until;
	f->reply = reply;
	f->error = NULL;
	fake_listen(f, AF_INET);
	assert_int_equal(sem_init(&f->ready, 0, 0), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
	while (sem_wait(&f->ready) && errno == EINTR)
		;
}

static void fake_stop(struct fake *f)
{
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	sem_destroy(&f->ready);
	close(f->lfd);
	if (f->error)
		fail_msg("fake server: %s", f->error);
}

/* A port on 127.0.0.1 that nobody listens on (bound, never listened, closed). */
static int closed_port(void)
{
	struct fake f;

	fake_listen(&f, AF_INET);
	close(f.lfd);
	return f.port;
}

/* ---- probes through the loop ---- */

struct run {
	struct loop *loop;
	bool in_start; /* the callback must never come from inside probe_start() */
	int calls;
	struct probe_result r;
	uint64_t give_up_ms;
	void (*poke)(struct run *run); /* called on each tick while waiting */
};

static void on_done(void *ctx, const struct probe_result *r)
{
	struct run *run = ctx;

	if (run->in_start)
		fail_msg("callback from inside probe_start()");
	run->calls++;
	run->r = *r;
}

static void tick(void *ctx)
{
	struct run *run = ctx;

	probe_reap();
	if (run->calls || now_ms() > run->give_up_ms)
		loop_stop(run->loop);
	else if (run->poke)
		run->poke(run);
}

static void spec_init(struct probe_spec *s, enum probe_kind kind, unsigned int timeout_ms,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void spec_init(struct probe_spec *s, enum probe_kind kind, unsigned int timeout_ms,
		      const char *fmt, ...)
{
	va_list ap;

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->timeout_ms = timeout_ms;
	if (!fmt)
		return;
	va_start(ap, fmt);
	vsnprintf(s->target, sizeof(s->target), fmt, ap);
	va_end(ap);
}

/* probe_start(), then the loop until the callback, which must come exactly once. */
static struct probe_result run_async_poked(const struct probe_spec *s, void (*poke)(struct run *))
{
	struct run run = { .give_up_ms = now_ms() + s->timeout_ms + 5000, .poke = poke };
	struct probe *p = NULL;

	assert_int_equal(loop_new(&run.loop), 0);
	run.in_start = true;
	assert_int_equal(probe_start(run.loop, s, on_done, &run, &p), 0);
	run.in_start = false;
	assert_non_null(p);
	assert_int_equal(run.calls, 0);
	assert_int_equal(loop_run(run.loop, 10, tick, &run), 0);
	if (run.calls != 1)
		fail_msg("callback ran %d times", run.calls);
	loop_free(run.loop);
	expect_no_children(1000);
	return run.r;
}

static struct probe_result run_async(const struct probe_spec *s)
{
	return run_async_poked(s, NULL);
}

static void expect_result(const struct probe_result *r, int ok, const char *detail)
{
	if (r->ok != ok || strcmp(r->detail, detail))
		fail_msg("got ok=%d \"%s\"\n  want ok=%d \"%s\"", r->ok, r->detail, ok, detail);
}

static void expect_prefix(const struct probe_result *r, int ok, const char *prefix)
{
	if (r->ok != ok || strncmp(r->detail, prefix, strlen(prefix)))
		fail_msg("got ok=%d \"%s\"\n  want ok=%d \"%s...\"", r->ok, r->detail, ok, prefix);
}

static void expect_elapsed(const struct probe_result *r, unsigned int ms)
{
	if (r->elapsed_ms + SLACK_MS < ms || r->elapsed_ms > ms + SLACK_MS)
		fail_msg("took %" PRIu64 " ms, expected %u +- %d ms", r->elapsed_ms, ms, SLACK_MS);
}

static void exec_spec(struct probe_spec *s, unsigned int timeout_ms, char *const *argv)
{
	spec_init(s, PROBE_EXEC, timeout_ms, NULL);
	s->argv = argv;
}

/* ---- TCP ---- */

static void test_tcp_ok(void **state)
{
	struct probe_spec s;
	struct probe_result r;
	struct fake f4, f6;
	char want[64];

	(void)state;
	fake_listen(&f4, AF_INET);
	spec_init(&s, PROBE_TCP, 2000, "127.0.0.1:%d", f4.port);
	r = run_async(&s);
	snprintf(want, sizeof(want), "connected to 127.0.0.1:%d", f4.port);
	expect_result(&r, 1, want);

	fake_listen(&f6, AF_INET6);
	spec_init(&s, PROBE_TCP, 2000, "[::1]:%d", f6.port);
	r = run_async(&s);
	snprintf(want, sizeof(want), "connected to [::1]:%d", f6.port);
	expect_result(&r, 1, want);

	/* a name, resolved in the child */
	spec_init(&s, PROBE_TCP, 2000, "localhost:%d", f4.port);
	r = run_async(&s);
	snprintf(want, sizeof(want), "connected to 127.0.0.1:%d", f4.port);
	expect_result(&r, 1, want);
	close(f4.lfd);
	close(f6.lfd);
}

static void test_tcp_refused(void **state)
{
	int port = closed_port();
	struct probe_spec s;
	struct probe_result r;
	char want[96];

	(void)state;
	spec_init(&s, PROBE_TCP, 2000, "127.0.0.1:%d", port);
	r = run_async(&s);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%d: Connection refused", port);
	expect_result(&r, 0, want);
	assert_true(r.elapsed_ms < 1000);

	spec_init(&s, PROBE_TCP, 2000, "caelum-no-such-host.invalid:80");
	r = run_async(&s);
	expect_prefix(&r, 0, "failed to resolve 'caelum-no-such-host.invalid': ");
}

/* ---- HTTP ---- */

#define HTTP_END "\r\n\r\n"

static void http_expect(const char *reply, int ok, const char *detail)
{
	struct probe_spec s;
	struct probe_result r;
	struct fake f;

	fake_start(&f, HTTP_END, reply);
	spec_init(&s, PROBE_HTTP, 3000, "http://127.0.0.1:%d/healthz", f.port);
	r = run_async(&s);
	if (f.error)
		fail_msg("probe: ok=%d \"%s\" after %" PRIu64 " ms", r.ok, r.detail, r.elapsed_ms);
	fake_stop(&f);
	expect_result(&r, ok, detail);
}

static void test_http_status(void **state)
{
	(void)state;
	http_expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 1,
		    "HTTP 200");
	http_expect("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", 1, "HTTP 204");
	/* 3xx is an answer; the redirect (to a closed port) is not followed */
	http_expect("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n"
		    "Content-Length: 0\r\n\r\n",
		    1, "HTTP 302");
	http_expect("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops", 0,
		    "HTTP 500");
	http_expect("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0, "HTTP 404");
}

/* A body that never ends: the status is known when it starts, the probe does not wait. */
static void test_http_endless_body(void **state)
{
	static char reply[200000];
	struct probe_spec s;
	struct probe_result r;
	struct fake f;
	int n;

	(void)state;
	n = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
	memset(reply + n, 'x', sizeof(reply) - (size_t)n - 1);
	fake_start(&f, HTTP_END, reply);
	spec_init(&s, PROBE_HTTP, 3000, "http://127.0.0.1:%d/", f.port);
	r = run_async(&s);
	fake_stop(&f);
	expect_result(&r, 1, "HTTP 200");
	assert_true(r.elapsed_ms < 1000);
}

static void test_http_silent(void **state)
{
	struct probe_spec s;
	struct probe_result r;
	struct fake f;

	(void)state;
	fake_listen(&f, AF_INET); /* the kernel accepts, nobody answers */
	spec_init(&s, PROBE_HTTP, 800, "http://127.0.0.1:%d/", f.port);
	r = run_async(&s);
	close(f.lfd);
	expect_result(&r, 0, "timed out after 800 ms");
	expect_elapsed(&r, 800);
}

static void test_http_errors(void **state)
{
	int port = closed_port();
	struct probe_spec s;
	struct probe_result r;

	(void)state;
	spec_init(&s, PROBE_HTTP, 2000, "http://127.0.0.1:%d/", port);
	r = run_async(&s);
	expect_prefix(&r, 0, "Failed to connect to 127.0.0.1 port ");
	/* credentials in the URL never reach a detail */
	spec_init(&s, PROBE_HTTP, 2000, "http://probe:s3cret@127.0.0.1:%d/", port);
	r = run_async(&s);
	expect_result(&r, 0, "Couldn't connect to server");
	assert_null(strstr(r.detail, "s3cret"));
}

/* ---- EXEC ---- */

static void test_exec_status(void **state)
{
	char *const t[] = { "/bin/true", NULL }, *const f[] = { "/bin/false", NULL };
	char *const bare[] = { "true", NULL };
	char *const three[] = { "/bin/sh", "-c",
				"echo; echo '  database is down'; echo more; exit 3", NULL };
	char *const sig[] = { "/bin/sh", "-c", "echo going; kill -TERM $$", NULL };
	struct probe_spec s;
	struct probe_result r;

	(void)state;
	exec_spec(&s, 3000, t);
	r = run_async(&s);
	expect_result(&r, 1, "exit status 0");
	exec_spec(&s, 3000, bare);
	r = run_async(&s);
	expect_result(&r, 1, "exit status 0");
	exec_spec(&s, 3000, f);
	r = run_async(&s);
	expect_result(&r, 0, "exit status 1");
	exec_spec(&s, 3000, three);
	r = run_async(&s);
	expect_result(&r, 0, "exit status 3:   database is down");
	exec_spec(&s, 3000, sig);
	r = run_async(&s);
	expect_result(&r, 0, "killed by signal 15 (Terminated): going");
}

/* The first line is cut at 200 bytes, made printable, and stderr counts too. */
static void test_exec_output(void **state)
{
	char *const longline[] = { "/bin/sh", "-c", "printf '%0300d\\n' 0; exit 4", NULL };
	char *const err[] = { "/bin/sh", "-c", "printf 'tab\\there \\001\\n' >&2; exit 5", NULL };
	char *const flood[] = { "/bin/sh", "-c", "yes flood | head -c 2000000; exit 6", NULL };
	char want[256];
	struct probe_spec s;
	struct probe_result r;

	(void)state;
	exec_spec(&s, 3000, longline);
	r = run_async(&s);
	snprintf(want, sizeof(want), "exit status 4: %0200d", 0);
	expect_result(&r, 0, want);
	exec_spec(&s, 3000, err);
	r = run_async(&s);
	expect_result(&r, 0, "exit status 5: tab\\there \\x01");
	/* more output than a pipe holds: read on the way, so the command never blocks */
	exec_spec(&s, 5000, flood);
	r = run_async(&s);
	expect_result(&r, 0, "exit status 6: flood");
}

/* Minimal environment, stdin /dev/null, and none of this process's fds. */
static void test_exec_environment(void **state)
{
	int leak = open("/dev/null", O_RDONLY); /* deliberately inheritable */
	char script[512];
	char *const argv[] = { "/bin/sh", "-c", script, NULL };
	struct probe_spec s;
	struct probe_result r;

	(void)state;
	assert_true(leak >= 3);
	snprintf(script, sizeof(script),
		 "echo \"in=$(readlink /proc/self/fd/0) env=$(env | sort | tr '\\n' ' ')"
		 "leak=$(test -e /proc/self/fd/%d && echo yes || echo no)\"; exit 9",
		 leak);
	exec_spec(&s, 3000, argv);
	r = run_async(&s);
	expect_result(&r, 0,
		      "exit status 9: in=/dev/null env=PATH=/usr/sbin:/usr/bin:/sbin:/bin "
		      "PWD=/ leak=no");
	assert_int_equal(probe_run(&s, &r), 0);
	expect_result(&r, 0,
		      "exit status 9: in=/dev/null env=PATH=/usr/sbin:/usr/bin:/sbin:/bin "
		      "PWD=/ leak=no");
	close(leak);
}

/* run_as: the command is uid:gid, no supplementary groups, no capabilities, no_new_privs
 * (a health check is the spec author's code, not root's). */
static void test_exec_runs_as_user(void **state)
{
	char *const argv[] = {
		"/bin/sh", "-c",
		"echo \"$(id -u):$(id -g):$(id -G) $(grep -E '^(CapEff|CapPrm|CapAmb|"
		"NoNewPrivs):' /proc/self/status | tr -s '\\t\\n' '  ')\"; exit 3",
		NULL
	};
	const char *want = "exit status 3: 65534:65533:65533 CapPrm: 0000000000000000 CapEff: "
			   "0000000000000000 CapAmb: 0000000000000000 NoNewPrivs: 1 ";
	struct probe_spec s;
	struct probe_result r;

	(void)state;
	exec_spec(&s, 3000, argv);
	s.run_as = true;
	s.uid = 65534;
	s.gid = 65533;
	r = run_async(&s);
	expect_result(&r, 0, want);
	assert_int_equal(probe_run(&s, &r), 0);
	expect_result(&r, 0, want);
}

static void test_exec_missing(void **state)
{
	char *const abs[] = { "/nonexistent/caelum-probe", NULL };
	char *const bare[] = { "caelum-no-such-command", NULL };
	char plain[PATH_MAX], garbage[PATH_MAX], want[PATH_MAX + 64];
	char *const notexec[] = { plain, NULL }, *const badexec[] = { garbage, NULL };
	struct probe_spec s;
	struct probe_result r;

	write_text(*state, "plain", "#!/bin/sh\nexit 0\n", plain); /* 0644: not even root runs it */
	write_text(*state, "garbage", "\177ELF garbage\n", garbage);
	assert_int_equal(chmod(garbage, 0755), 0);
	exec_spec(&s, 3000, abs);
	r = run_async(&s);
	expect_result(&r, 0,
		      "failed to execute '/nonexistent/caelum-probe': No such file or directory");
	exec_spec(&s, 3000, bare);
	r = run_async(&s);
	expect_result(&r, 0,
		      "failed to find 'caelum-no-such-command' in "
		      "PATH=/usr/sbin:/usr/bin:/sbin:/bin");
	exec_spec(&s, 3000, notexec);
	r = run_async(&s);
	snprintf(want, sizeof(want), "failed to execute '%s': Permission denied", plain);
	expect_result(&r, 0, want);
	exec_spec(&s, 3000, badexec);
	r = run_async(&s);
	snprintf(want, sizeof(want), "failed to execute '%s': Exec format error", garbage);
	expect_result(&r, 0, want);
}

/* "sleep & echo $! > file; sleep": the command and its grandchild, both past the timeout. */
static void hang_argv(char *script, size_t size, const char *pidfile, char **argv)
{
	snprintf(script, size, "sleep 30 & echo $! > %s; echo waiting; exec sleep 30", pidfile);
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
}

static pid_t read_pid(const char *path)
{
	char *text = read_text(path, NULL);
	pid_t pid;

	assert_non_null(text);
	pid = (pid_t)atoi(text);
	free(text);
	assert_true(pid > 0);
	return pid;
}

static void test_exec_timeout(void **state)
{
	char pidfile[PATH_MAX], script[PATH_MAX + 64], *argv[4];
	struct probe_spec s;
	struct probe_result r;
	pid_t grandchild;

	snprintf(pidfile, sizeof(pidfile), "%s/gc", (char *)*state);
	hang_argv(script, sizeof(script), pidfile, argv);
	exec_spec(&s, 600, argv);
	r = run_async(&s);
	expect_result(&r, 0, "timed out after 600 ms: waiting");
	expect_elapsed(&r, 600);
	grandchild = read_pid(pidfile);
	expect_gone(grandchild);

	/* the same in this process */
	unlink(pidfile);
	assert_int_equal(probe_run(&s, &r), 0);
	expect_result(&r, 0, "timed out after 600 ms: waiting");
	expect_elapsed(&r, 600);
	expect_gone(read_pid(pidfile));
	expect_no_children(0);
}

/* A command that succeeds but leaves a process behind: the probe's end takes it too. */
static void test_exec_leftovers(void **state)
{
	char pidfile[PATH_MAX], script[PATH_MAX + 64];
	char *const argv[] = { "/bin/sh", "-c", script, NULL };
	struct probe_spec s;
	struct probe_result r;

	snprintf(pidfile, sizeof(pidfile), "%s/gc", (char *)*state);
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; echo started", pidfile);
	exec_spec(&s, 3000, argv);
	r = run_async(&s);
	expect_result(&r, 1, "exit status 0: started");
	assert_true(r.elapsed_ms < 1000); /* the background sleep holds the pipe: not waited for */
	expect_gone(read_pid(pidfile));

	unlink(pidfile);
	assert_int_equal(probe_run(&s, &r), 0);
	expect_result(&r, 1, "exit status 0: started");
	assert_true(r.elapsed_ms < 1000);
	expect_gone(read_pid(pidfile));
}

/* A child that cannot keep its own deadline (stopped): the parent's deadline kills it all.
 * Stopped once the command's grandchild has written its pid (so the child has forked the
 * command: stopped before that, on a loaded host, there would be no grandchild to check). */
static const char *stop_after_file;

static void stop_child(struct run *run)
{
	pid_t pid;

	(void)run;
	if (access(stop_after_file, F_OK))
		return;
	if (children(&pid) == 1 && proc_state(pid, NULL) != 'T')
		kill(pid, SIGSTOP);
}

static void test_parent_deadline(void **state)
{
	char pidfile[PATH_MAX], script[PATH_MAX + 64], *argv[4];
	struct probe_spec s;
	struct probe_result r;
	pid_t grandchild;

	snprintf(pidfile, sizeof(pidfile), "%s/gc", (char *)*state);
	hang_argv(script, sizeof(script), pidfile, argv);
	exec_spec(&s, 400, argv);
	stop_after_file = pidfile;
	r = run_async_poked(&s, stop_child);
	expect_result(&r, 0, "timed out after 400 ms");
	expect_elapsed(&r, 400 + PROBE_GRACE_MS);
	assert_true(r.elapsed_ms >= 400 + PROBE_GRACE_MS);
	grandchild = read_pid(pidfile);
	expect_gone(grandchild);
}

/* A child that dies before it answers: said so, once, and reaped. */
static void kill_child(struct run *run)
{
	pid_t pid;

	(void)run;
	if (children(&pid) == 1)
		kill(pid, SIGKILL);
}

static void test_child_killed(void **state)
{
	char *const argv[] = { "/bin/sleep", "30", NULL };
	struct probe_spec s;
	struct probe_result r;

	(void)state;
	exec_spec(&s, 5000, argv);
	r = run_async_poked(&s, kill_child);
	expect_result(&r, 0, "probe process killed by signal 9 without a result");
	assert_true(r.elapsed_ms < 2000);
}

/* The child joins the cgroup first; a fake cgroup.procs records what it wrote. */
static void test_cgroup(void **state)
{
	char *const argv[] = { "/bin/true", NULL };
	char procs[PATH_MAX], want[PATH_MAX + 64], *text;
	struct probe_spec s;
	struct probe_result r;

	write_text(*state, "cgroup.procs", "", procs);
	exec_spec(&s, 3000, argv);
	snprintf(s.cgroup, sizeof(s.cgroup), "%s", (char *)*state);
	r = run_async(&s);
	expect_result(&r, 1, "exit status 0");
	text = read_text(procs, NULL);
	assert_string_equal(text, "0");
	free(text);

	snprintf(s.cgroup, sizeof(s.cgroup), "%s/missing", (char *)*state);
	r = run_async(&s);
	snprintf(want, sizeof(want), "failed to join cgroup '%s': No such file or directory",
		 s.cgroup);
	expect_result(&r, 0, want);
	/* probe_run() stays where its caller is */
	assert_int_equal(probe_run(&s, &r), 0);
	expect_result(&r, 1, "exit status 0");
}

/* ---- DB ---- */

static void db_expect(const char *reply, int ok, const char *detail)
{
	struct probe_spec s;
	struct probe_result r;
	struct fake f;

	fake_start(&f, "\r\n", reply);
	spec_init(&s, PROBE_DB, 3000, "127.0.0.1:%d", f.port);
	s.db_kind = DB_REDIS;
	r = run_async(&s);
	fake_stop(&f);
	expect_result(&r, ok, detail);
}

static void test_db_redis(void **state)
{
	(void)state;
	db_expect("+PONG\r\n", 1, "Redis: +PONG");
	db_expect("-NOAUTH Authentication required.\r\n", 1,
		  "Redis: -NOAUTH Authentication required.");
	db_expect("HTTP/1.1 400 Bad Request\r\n\r\n", 0,
		  "not a Redis server: expected a '+' or '-' line "
		  "(reply starts with \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\")");
}

/* ---- cancel, many at once ---- */

static void test_cancel(void **state)
{
	char *const argv[] = { "/bin/sh", "-c", "sleep 30 & exec sleep 30", NULL };
	struct run run = { .give_up_ms = now_ms() + 300 };
	struct probe_spec s;
	struct probe *p;

	(void)state;
	exec_spec(&s, 10000, argv);
	assert_int_equal(loop_new(&run.loop), 0);
	assert_int_equal(probe_start(run.loop, &s, on_done, &run, &p), 0);
	assert_int_equal(loop_run(run.loop, 10, tick, &run), 0); /* 300 ms in flight */
	assert_int_equal(run.calls, 0);
	assert_int_equal(children(NULL), 1);
	probe_cancel(p);
	expect_no_children(0);
	run.give_up_ms = now_ms() + 200;
	assert_int_equal(loop_run(run.loop, 10, tick, &run), 0);
	assert_int_equal(run.calls, 0);

	/* right after the start, before the child has done anything */
	assert_int_equal(probe_start(run.loop, &s, on_done, &run, &p), 0);
	probe_cancel(p);
	expect_no_children(0);
	probe_cancel(NULL);
	loop_free(run.loop);
}

#define MANY 12

struct many {
	struct loop *loop;
	int calls[MANY];
	int done;
	struct probe_result r[MANY];
};

struct many_slot {
	struct many *m;
	int i;
};

static void many_done(void *ctx, const struct probe_result *r)
{
	struct many_slot *slot = ctx;

	slot->m->calls[slot->i]++;
	slot->m->r[slot->i] = *r;
	slot->m->done++;
}

static void many_tick(void *ctx)
{
	struct many *m = ctx;

	probe_reap();
	if (m->done == MANY)
		loop_stop(m->loop);
}

/* Probes of every kind in flight together, each answered once with its own result. */
static void test_many(void **state)
{
	char *const t[] = { "/bin/true", NULL }, *const f[] = { "/bin/false", NULL };
	struct many m = { .done = 0 };
	struct many_slot slots[MANY];
	struct probe_spec s;
	struct fake lis;
	struct probe *p;

	(void)state;
	fake_listen(&lis, AF_INET);
	assert_int_equal(loop_new(&m.loop), 0);
	for (int i = 0; i < MANY; i++) {
		slots[i] = (struct many_slot){ .m = &m, .i = i };
		if (i % 3 == 0)
			exec_spec(&s, 3000, i % 2 ? f : t);
		else
			spec_init(&s, PROBE_TCP, 3000, "127.0.0.1:%d", i % 3 == 1 ? lis.port : 1);
		assert_int_equal(probe_start(m.loop, &s, many_done, &slots[i], &p), 0);
	}
	assert_int_equal(loop_run(m.loop, 10, many_tick, &m), 0);
	for (int i = 0; i < MANY; i++) {
		assert_int_equal(m.calls[i], 1);
		if (i % 3 == 0)
			expect_result(&m.r[i], !(i % 2), i % 2 ? "exit status 1" : "exit status 0");
		else
			expect_prefix(&m.r[i], i % 3 == 1, i % 3 == 1 ? "connected to" : "connect");
	}
	loop_free(m.loop);
	close(lis.lfd);
	expect_no_children(1000);
}

/* ---- synchronous ---- */

static void test_run_sync(void **state)
{
	char *const three[] = { "/bin/sh", "-c", "echo not ready; exit 3", NULL };
	struct probe_spec s;
	struct probe_result r;
	struct fake f;
	char want[64];

	(void)state;
	fake_listen(&f, AF_INET);
	spec_init(&s, PROBE_TCP, 2000, "127.0.0.1:%d", f.port);
	assert_int_equal(probe_run(&s, &r), 0);
	snprintf(want, sizeof(want), "connected to 127.0.0.1:%d", f.port);
	expect_result(&r, 1, want);
	close(f.lfd);

	spec_init(&s, PROBE_TCP, 2000, "127.0.0.1:%d", closed_port());
	assert_int_equal(probe_run(&s, &r), 0);
	expect_prefix(&r, 0, "connect 127.0.0.1:");

	fake_start(&f, HTTP_END, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
	spec_init(&s, PROBE_HTTP, 2000, "http://127.0.0.1:%d/", f.port);
	assert_int_equal(probe_run(&s, &r), 0);
	fake_stop(&f);
	expect_result(&r, 0, "HTTP 503");

	fake_start(&f, "\r\n", "+PONG\r\n");
	spec_init(&s, PROBE_DB, 2000, "127.0.0.1:%d", f.port);
	s.db_kind = DB_REDIS;
	assert_int_equal(probe_run(&s, &r), 0);
	fake_stop(&f);
	expect_result(&r, 1, "Redis: +PONG");

	exec_spec(&s, 2000, three);
	assert_int_equal(probe_run(&s, &r), 0);
	expect_result(&r, 0, "exit status 3: not ready");
	expect_no_children(0);
}

/* ---- specs that cannot be probed ---- */

static void expect_invalid(const struct probe_spec *s, const char *detail)
{
	struct run run = { .give_up_ms = 0 };
	struct probe_result r;
	struct probe *p = NULL;

	assert_int_equal(probe_run(s, &r), -EINVAL);
	expect_result(&r, 0, detail);
	assert_int_equal(loop_new(&run.loop), 0);
	assert_int_equal(probe_start(run.loop, s, on_done, &run, &p), -EINVAL);
	assert_null(p);
	loop_free(run.loop);
	assert_int_equal(run.calls, 0);
	expect_no_children(0);
}

static void test_invalid(void **state)
{
	char *const rel[] = { "bin/check", NULL }, *const empty[] = { NULL };
	struct probe_spec s;

	(void)state;
	spec_init(&s, PROBE_TCP, 0, "127.0.0.1:80");
	expect_invalid(&s, "timeout 0 ms is out of range 1..600000");
	s.timeout_ms = 600001;
	expect_invalid(&s, "timeout 600001 ms is out of range 1..600000");
	spec_init(&s, PROBE_TCP, 100, "127.0.0.1");
	expect_invalid(&s, "target '127.0.0.1': expected \"host:port\"");
	spec_init(&s, PROBE_TCP, 100, "::1:80");
	expect_invalid(&s, "target '::1:80': IPv6 needs brackets: \"[::1]:port\"");
	spec_init(&s, PROBE_TCP, 100, "[::1]80");
	expect_invalid(&s, "target '[::1]80': expected \"[address]:port\"");
	spec_init(&s, PROBE_TCP, 100, "host:0");
	expect_invalid(&s, "target 'host:0': port must be 1..65535");
	spec_init(&s, PROBE_TCP, 100, "host:65536");
	expect_invalid(&s, "target 'host:65536': port must be 1..65535");
	spec_init(&s, PROBE_TCP, 100, "host:+80");
	expect_invalid(&s, "target 'host:+80': port must be 1..65535");
	spec_init(&s, PROBE_TCP, 100, ":80");
	expect_invalid(&s, "target ':80': no host");
	spec_init(&s, PROBE_TCP, 100, "a b:80");
	expect_invalid(&s, "target is empty or holds spaces or control characters");
	spec_init(&s, PROBE_TCP, 100, NULL);
	memset(s.target, 'a', sizeof(s.target));
	expect_invalid(&s, "target is not NUL-terminated within 512 bytes");
	spec_init(&s, PROBE_HTTP, 100, "ftp://user:pw@host/");
	expect_invalid(&s, "URL must start with http:// or https://");
	spec_init(&s, PROBE_DB, 100, "127.0.0.1:6379");
	s.db_kind = 7;
	expect_invalid(&s, "invalid database kind 7");
	spec_init(&s, (enum probe_kind)9, 100, "127.0.0.1:6379");
	expect_invalid(&s, "invalid probe kind 9");
	exec_spec(&s, 100, NULL);
	expect_invalid(&s, "no command to run");
	exec_spec(&s, 100, empty);
	expect_invalid(&s, "no command to run");
	exec_spec(&s, 100, rel);
	expect_invalid(&s, "command 'bin/check': give an absolute path or a name in PATH");
	assert_int_equal(probe_run(&s, NULL), -EINVAL);
	spec_init(&s, PROBE_TCP, 100, "127.0.0.1:80");
	snprintf(s.cgroup, sizeof(s.cgroup), "sys/fs/cgroup/x");
	expect_invalid(&s, "cgroup 'sys/fs/cgroup/x' is not an absolute path");
	memset(s.cgroup, 'a', sizeof(s.cgroup));
	expect_invalid(&s, "cgroup is not NUL-terminated within 4096 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_tcp_ok),
		cmocka_unit_test(test_tcp_refused),
		cmocka_unit_test(test_http_status),
		cmocka_unit_test(test_http_endless_body),
		cmocka_unit_test(test_http_silent),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_exec_status),
		cmocka_unit_test(test_exec_output),
		cmocka_unit_test(test_exec_environment),
		cmocka_unit_test(test_exec_runs_as_user),
		cmocka_unit_test_setup_teardown(test_exec_missing, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_exec_timeout, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_exec_leftovers, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_parent_deadline, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test(test_child_killed),
		cmocka_unit_test_setup_teardown(test_cgroup, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test(test_db_redis),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_run_sync),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
