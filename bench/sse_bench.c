// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Event export under load: a private caelumd (its own config, cgroup subtree and bpffs
 * directory), generators in their own cgroups denied bind() as fast as they can on 1,000
 * managed ports, and
 *   baseline   no SSE client
 *   sse        100 concurrent SSE clients on /api/v1/events/stream
 * in the same run. Printed: events emitted per second, events delivered per client and in
 * all, events lost per stage (kernel ring buffer, SSE queues), and caelumd's CPU use in
 * each phase with their ratio; then one JSON line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cgroup.h"
#include "rpc.h"

#define CLIENTS	   100
#define GENERATORS 2
#define PORT_LO	   20000
#define PORT_HI	   20999
#define PHASE_S	   5

struct bench {
	char dir[PATH_MAX], root[PATH_MAX], bpffs[PATH_MAX], cfg[PATH_MAX], sock[PATH_MAX];
	char daemon[PATH_MAX], ctl[PATH_MAX];
	pid_t pid;
	uint16_t port;
};

struct client {
	int fd;
	uint64_t events;
	int match; /* characters of "id: " matched at the start of a line; -1: not at one */
};

struct phase {
	double seconds, cpu_s;
	uint64_t emitted, kernel_lost, sse_drops, delivered, min_client, kernel_records;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	p = strrchr(buf, ')');
	/* fields after ")": state(3) ... utime(14) stime(15) */
	if (p &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
		return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

static struct json_object *call(struct bench *b, const char *method)
{
	struct json_object *res = NULL, *err = NULL;
	struct rpc_client *c;

	if (rpc_client_open(&c, b->sock))
		return NULL;
	if (rpc_client_call(c, method, NULL, &res, &err)) {
		json_object_put(err);
		res = NULL;
	}
	rpc_client_close(c);
	return res;
}

static uint64_t jpath(struct json_object *o, const char *a, const char *b, const char *c)
{
	struct json_object *v = o;

	if (a && !json_object_object_get_ex(v, a, &v))
		return 0;
	if (b && !json_object_object_get_ex(v, b, &v))
		return 0;
	if (c && !json_object_object_get_ex(v, c, &v))
		return 0;
	return (uint64_t)json_object_get_int64(v);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

static int setup(struct bench *b, const char *argv0)
{
	char mount[PATH_MAX], self[PATH_MAX], text[4096], *dir;
	int i;

	if (cgroup2_mount_find(mount, sizeof(mount)))
		return -ENOENT;
	snprintf(b->dir, sizeof(b->dir), "/tmp/caelum-ssebench-XXXXXX");
	if (!mkdtemp(b->dir))
		return -errno;
	snprintf(b->root, sizeof(b->root), "%s/caelum-ssebench-%d", mount, getpid());
	snprintf(b->bpffs, sizeof(b->bpffs), "/sys/fs/bpf/caelum-ssebench-%d", getpid());
	snprintf(b->cfg, sizeof(b->cfg), "%s/caelum.json", b->dir);
	snprintf(b->sock, sizeof(b->sock), "%s/run/caelumd.sock", b->dir);
	if (mkdir(b->root, 0755))
		return -errno;
	for (i = 0; i < GENERATORS; i++) {
		snprintf(text, sizeof(text), "%s/gen%d", b->root, i);
		if (mkdir(text, 0755))
			return -errno;
	}
	snprintf(text, sizeof(text), "%s/services.d", b->dir);
	mkdir(text, 0755);
	snprintf(text, sizeof(text),
		 "{\"host\": \"bench\", \"bpffs\": \"%s\", \"state_dir\": \"%s/state\","
		 " \"runtime_dir\": \"%s/run\", \"services_dir\": \"%s/services.d\","
		 " \"managed_ports\": [\"%d-%d\"], \"cgroup_root\": \"%s\","
		 " \"http\": {\"listen\": \"127.0.0.1:0\"}, \"verify\": {\"interval_s\": 0}}\n",
		 b->bpffs, b->dir, b->dir, b->dir, PORT_LO, PORT_HI, b->root);
	if (write_file(b->cfg, text))
		return -EIO;
	snprintf(self, sizeof(self), "%s", argv0);
	dir = dirname(self);
	snprintf(b->daemon, sizeof(b->daemon), "%s/../caelumd", dir);
	snprintf(b->ctl, sizeof(b->ctl), "%s/../caelumctl", dir);
	return 0;
}

static int start_daemon(struct bench *b)
{
	struct json_object *st;
	char log[PATH_MAX];
	double deadline;

	snprintf(log, sizeof(log), "%s/caelumd.log", b->dir);
	b->pid = fork();
	if (b->pid < 0)
		return -errno;
	if (!b->pid) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(b->daemon, "caelumd", "-c", b->cfg, (char *)NULL);
		_exit(127);
	}
	for (deadline = now_s() + 20; now_s() < deadline; usleep(50000)) {
		if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
			fprintf(stderr, "sse_bench: caelumd exited; see %s\n", log);
			b->pid = 0;
			return -ECHILD;
		}
		st = call(b, "status");
		if (!st)
			continue;
		b->port = (uint16_t)jpath(st, "http", "dashboard", "port");
		json_object_put(st);
		return b->port ? 0 : -EADDRNOTAVAIL;
	}
	return -ETIMEDOUT;
}

/* A generator: into its cgroup, then bind() over the managed range until killed. */
static pid_t generator(struct bench *b, int i)
{
	char cg[PATH_MAX];
	pid_t pid = fork();

	if (pid)
		return pid;
	snprintf(cg, sizeof(cg), "%s/gen%d", b->root, i);
	if (cgroup_move(cg, getpid()))
		_exit(1);
	for (;;) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);

		for (int p = PORT_LO; p <= PORT_HI; p++) {
			struct sockaddr_in a = { .sin_family = AF_INET,
						 .sin_port = htons((uint16_t)p),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

			if (!bind(fd, (struct sockaddr *)&a, sizeof(a)))
				_exit(2); /* a managed port must never be granted */
		}
		close(fd);
	}
}

static int client_open(struct bench *b, struct client *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(b->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char req[256];
	int n;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)))
		return -errno;
	n = snprintf(req, sizeof(req),
		     "GET /api/v1/events/stream?type=bind_denied HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
		     "Accept: text/event-stream\r\n\r\n",
		     b->port);
	if (write(c->fd, req, (size_t)n) != n)
		return -EIO;
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Count events: lines that start with "id: " (not retry: or keep-alive comments). */
static void client_read(struct client *c)
{
	static const char id[] = "id: ";
	char buf[65536];
	ssize_t n;

	while ((n = read(c->fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				c->match = 0;
			} else if (c->match >= 0 && buf[i] == id[c->match]) {
				if (++c->match == 4) {
					c->events++;
					c->match = -1;
				}
			} else {
				c->match = -1;
			}
		}
}

static void snapshot(struct bench *b, struct phase *p, bool end)
{
	struct json_object *st = call(b, "status");
	int sign = end ? 1 : -1;

	p->cpu_s += sign * proc_cpu_s(b->pid);
	p->seconds += sign * now_s();
	p->emitted += (uint64_t)sign * jpath(st, "events", "emitted", NULL);
	p->kernel_records += (uint64_t)sign * jpath(st, "events", "kernel_records", NULL);
	p->kernel_lost += (uint64_t)sign * (jpath(st, "events", "lost", "kernel_ringbuf_first") +
					    jpath(st, "events", "lost", "kernel_ringbuf_followup"));
	p->sse_drops += (uint64_t)sign * jpath(st, "http", "stream_drops", NULL);
	json_object_put(st);
}

static void run_phase(struct bench *b, struct phase *p, struct client *cl, int n_clients)
{
	struct epoll_event evs[64];
	pid_t gens[GENERATORS];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	double end;

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < n_clients; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &cl[i] };

		epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &e);
	}
	usleep(300000); /* streams registered */
	for (int i = 0; i < n_clients; i++)
		client_read(&cl[i]), cl[i].events = 0;
	snapshot(b, p, false);
	for (int i = 0; i < GENERATORS; i++)
		gens[i] = generator(b, i);
	for (end = now_s() + PHASE_S; now_s() < end;) {
		int n = epoll_wait(ep, evs, 64, 100);

		for (int i = 0; i < n; i++)
			client_read(evs[i].data.ptr);
	}
	for (int i = 0; i < GENERATORS; i++) {
		kill(gens[i], SIGKILL);
		waitpid(gens[i], NULL, 0);
	}
	/* Let the last windows flush and the queues drain. */
	for (end = now_s() + 1.5; now_s() < end;) {
		int n = epoll_wait(ep, evs, 64, 100);

		for (int i = 0; i < n; i++)
			client_read(evs[i].data.ptr);
	}
	snapshot(b, p, true);
	p->min_client = n_clients ? UINT64_MAX : 0;
	for (int i = 0; i < n_clients; i++) {
		p->delivered += cl[i].events;
		if (cl[i].events < p->min_client)
			p->min_client = cl[i].events;
	}
	close(ep);
}

static void teardown(struct bench *b)
{
	char cmd[PATH_MAX * 3];

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		waitpid(b->pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "%s -c %s teardown >/dev/null 2>&1; rm -rf %s", b->ctl, b->cfg,
		 b->dir);
	if (system(cmd))
		fprintf(stderr, "sse_bench: teardown incomplete\n");
	for (int i = 0; i < GENERATORS; i++) {
		snprintf(cmd, sizeof(cmd), "%s/gen%d", b->root, i);
		rmdir(cmd);
	}
	snprintf(cmd, sizeof(cmd), "%s/caelum", b->root);
	rmdir(cmd);
	rmdir(b->root);
	rmdir(b->bpffs);
}

int main(int argc, char **argv)
{
	static struct client cl[CLIENTS];
	struct phase base, sse;
	struct bench b = {};
	double ratio;
	int err;

	(void)argc;
	signal(SIGPIPE, SIG_IGN);
	err = setup(&b, argv[0]);
	if (!err)
		err = start_daemon(&b);
	if (err) {
		fprintf(stderr, "sse_bench: setup failed: %s\n", strerror(-err));
		teardown(&b);
		return 1;
	}
	run_phase(&b, &base, cl, 0);
	for (int i = 0; i < CLIENTS; i++)
		if ((err = client_open(&b, &cl[i]))) {
			fprintf(stderr, "sse_bench: client %d: %s\n", i, strerror(-err));
			teardown(&b);
			return 1;
		}
	run_phase(&b, &sse, cl, CLIENTS);
	for (int i = 0; i < CLIENTS; i++)
		close(cl[i].fd);
	teardown(&b);

	ratio = base.cpu_s > 0 ? sse.cpu_s / base.cpu_s : 0;
	printf("sse_bench: %d generators denied on %d ports for %d s per phase\n", GENERATORS,
	       PORT_HI - PORT_LO + 1, PHASE_S);
	printf("  baseline (0 clients):   %8.0f events/s emitted, caelumd CPU %5.1f%%\n",
	       (double)base.emitted / base.seconds, 100 * base.cpu_s / base.seconds);
	printf("  sse (%d clients):      %8.0f events/s emitted, caelumd CPU %5.1f%% (ratio "
	       "%.2f)\n",
	       CLIENTS, (double)sse.emitted / sse.seconds, 100 * sse.cpu_s / sse.seconds, ratio);
	printf("  delivered: %llu in all (%.0f events/s), per client min %llu of %llu emitted\n",
	       (unsigned long long)sse.delivered, (double)sse.delivered / sse.seconds,
	       (unsigned long long)sse.min_client, (unsigned long long)sse.emitted);
	printf("  lost: kernel ring buffer %llu (baseline %llu), SSE queues %llu\n",
	       (unsigned long long)sse.kernel_lost, (unsigned long long)base.kernel_lost,
	       (unsigned long long)sse.sse_drops);
	printf("{\"bench\":\"sse\",\"clients\":%d,\"base_events_per_s\":%.0f,\"base_cpu\":%.3f,"
	       "\"sse_events_per_s\":%.0f,\"sse_cpu\":%.3f,\"cpu_ratio\":%.3f,"
	       "\"delivered\":%llu,\"min_client\":%llu,\"emitted\":%llu,\"kernel_lost\":%llu,"
	       "\"sse_drops\":%llu}\n",
	       CLIENTS, (double)base.emitted / base.seconds, base.cpu_s / base.seconds,
	       (double)sse.emitted / sse.seconds, sse.cpu_s / sse.seconds, ratio,
	       (unsigned long long)sse.delivered, (unsigned long long)sse.min_client,
	       (unsigned long long)sse.emitted, (unsigned long long)sse.kernel_lost,
	       (unsigned long long)sse.sse_drops);
	return 0;
}
