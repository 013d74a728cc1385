// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Cost of database connection enforcement: connect()+close() of a TCP socket to a listener
 * on the wildcard address, from a service cgroup, through the costliest alias: the host's
 * first non-loopback IPv4 interface address (else 127.0.0.2),
 *   none     no program attached
 *   caelum   bpf/connect.bpf.c with 1,000 database rules; the listener is one of them,
 *            registered as 127.0.0.1 (LOCAL), the service declares it (max_connections
 *            1,000,000); cm_db_host holds the host's addresses as caelumd keeps them: every
 *            connect misses the loopback test, hits cm_db_host, is looked up as LOCAL,
 *            checked and counted, every close uncounted (sock_release)
 * Rounds alternate the two, in the same process; medians and the ratio are printed, then
 * one JSON line. Many short rounds rather than a few long ones: on a shared host the load
 * of other tasks drifts over seconds, and a round of a fraction of a second sees less of
 * it. The wall-clock medians still swing by more than the programs cost; so one more round
 * with BPF_ENABLE_STATS measures the programs' own run time per connect+close (connect4 +
 * sock_release, each printed), and the ratio it implies, (none + programs) / none, is
 * printed beside the measured one. The implied ratio leaves out what the kernel does for
 * the programs outside their run: the hook's dispatch, and freeing at the socket's
 * destruction anything they allocated on it (sk_storage).
 * The bench's own cgroup subtree and bpffs directory are removed at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <json-c/json.h>

#include "bench.h"
#include "bpfpin.h"
#include "caelum/common.h"
#include "cgroup.h"
#include "connect_user.h"
#include "hostaddr.h"
#include "log.h"

#define ROUNDS	 101
#define CONNECTS 1600
#define RULES	 1000
#define CPU_PIN	 1

struct cbench {
	struct bench_sandbox sb;
	struct connect *conn;
	int listen_fd;
	uint16_t port;
	struct in_addr target;
	bool attached;
	double ns[2][ROUNDS];
};

static int listener(struct cbench *b)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof(a);

	b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->listen_fd < 0 || bind(b->listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(b->listen_fd, 4096) || getsockname(b->listen_fd, (struct sockaddr *)&a, &len))
		return -errno;
	b->port = ntohs(a.sin_port);
	return 0;
}

/* connect+close; each accepted connection is drained after its op, so the backlog never fills. */
static double connect_loop(struct cbench *b)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(b->port),
				 .sin_addr = b->target };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t spent = 0;

	for (int i = 0; i < CONNECTS; i++) {
		uint64_t t0 = bench_now_ns();
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), afd;

		/* An abortive close leaves no TIME_WAIT: tcp_tw_reuse is loopback-only by default,
		 * and the rounds would exhaust the ephemeral ports of a non-loopback target. */
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) ||
		    connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return -1;
		close(fd);
		spent += bench_now_ns() - t0;
		afd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (afd >= 0)
			close(afd);
	}
	return (double)spent / CONNECTS;
}

static void addr_of(int i, struct db_addr *out, uint16_t port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)&out->sa;

	memset(out, 0, sizeof(*out));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	/* 10.x.y.z: the other 999 rules, never reached */
	s->sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)(i + 1));
	out->len = sizeof(*s);
}

/* cm_db_host as caelumd fills it; the target is its first IPv4 address off loopback. */
static int host_addrs(struct cbench *b)
{
	static struct host_addr h[CAELUM_MAX_HOST_ADDRS];
	bool truncated;
	size_t n;
	int err = hostaddr_list(h, CAELUM_MAX_HOST_ADDRS, &n, &truncated);

	if (b->target.s_addr) /* given on the command line */
		return err ? err : connect_host_sync(b->conn, h, n);
	b->target.s_addr = htonl(0x7f000002); /* 127.0.0.2 */
	for (size_t i = 0; !err && i < n; i++)
		if (h[i].addr[10] == 0xff && h[i].addr[12] != 127) {
			memcpy(&b->target, &h[i].addr[12], 4);
			break;
		}
	return err ? err : connect_host_sync(b->conn, h, n);
}

/* 1,000 databases, the listener one of them, declared by the service. */
static int rules(struct cbench *b)
{
	static struct db_addr addrs[RULES];
	static struct conn_db dbs[RULES];
	struct conn_decl decl;
	int err = host_addrs(b);

	if (err)
		return err;

	for (int i = 0; i < RULES; i++) {
		addr_of(i, &addrs[i], 5432);
		dbs[i] = (struct conn_db){ (uint32_t)i + 1, false, &addrs[i], 1 };
	}
	((struct sockaddr_in *)&addrs[0].sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	((struct sockaddr_in *)&addrs[0].sa)->sin_port = htons(b->port);
	decl = (struct conn_decl){ b->sb.svc_id, 1, 1000000 };
	return connect_sync(b->conn, dbs, RULES, &decl, 1);
}

static int setup(struct cbench *b)
{
	int err = bench_sandbox_open(&b->sb, "cbench");

	if (!err)
		err = connect_load(&b->sb.env, &b->conn);
	if (!err)
		err = listener(b);
	if (!err)
		err = rules(b);
	return err ? err : bench_sandbox_enter(&b->sb);
}

/* Attach all five programs, or detach them (as caelumctl teardown does). */
static int attach(struct cbench *b, bool on)
{
	if (on) {
		b->attached = true;
		return connect_attach(b->conn, &b->sb.env);
	}
	for (int i = 0; b->attached && i < CONNECT_NPROGS; i++) {
		const char *name;
		int type;

		connect_prog_fd(b->conn, i, &name, &type);
		bench_link_unpin(&b->sb, name);
	}
	b->attached = false;
	return 0;
}

static void teardown(struct cbench *b)
{
	attach(b, true); /* so that the detach below finds every pin */
	attach(b, false);
	if (b->listen_fd > 0)
		close(b->listen_fd);
	connect_close(b->conn);
	bench_sandbox_close(&b->sb);
}

/* Average run time of a program since stats were enabled, in ns (0 if it never ran). */
static double prog_ns(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len) || !info.run_cnt)
		return 0;
	return (double)info.run_time_ns / (double)info.run_cnt;
}

/* The run time per connect+close of connect4 (progs[0]) and sock_release (progs[1]). */
static void programs_ns(const struct cbench *b, double progs[2])
{
	for (int i = 0; i < CONNECT_NPROGS; i++) {
		const char *name;
		int type, fd = connect_prog_fd(b->conn, i, &name, &type);

		if (type == BPF_CGROUP_INET4_CONNECT)
			progs[0] = prog_ns(fd);
		else if (type == BPF_CGROUP_INET_SOCK_RELEASE)
			progs[1] = prog_ns(fd);
	}
}

/* The round with run-time stats on: as many connects as ten rounds. */
static int stats_round(struct cbench *b)
{
	for (int i = 0; i < 10; i++)
		if (connect_loop(b) < 0)
			return -1;
	return 0;
}

static int run(struct cbench *b)
{
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < 2; k++) {
			int m = (r + k) % 2, err = attach(b, m == 1);

			if (err)
				return err;
			b->ns[m][r] = connect_loop(b);
			if (b->ns[m][r] < 0)
				return -errno;
		}
		if ((r + 1) % 10 == 0 || r + 1 == ROUNDS)
			fprintf(stderr, "connect_bench: round %d/%d done\n", r + 1, ROUNDS);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct cbench b = { .listen_fd = -1 };
	cpu_set_t set;
	double off, on, prog, progs[2] = { 0, 0 };
	int err, stats_fd;

	log_init("connect_bench", false, false);
	log_libbpf_init();
	if (geteuid()) {
		p_err("needs root");
		return 77;
	}
	if (argc > 2 || (argc == 2 && inet_pton(AF_INET, argv[1], &b.target) != 1)) {
		p_err("usage: connect_bench [IPV4_TARGET] (default: the first host address)");
		return 64;
	}
	CPU_ZERO(&set);
	CPU_SET(CPU_PIN, &set);
	sched_setaffinity(0, sizeof(set), &set);
	err = setup(&b);
	if (!err)
		err = run(&b);
	/* One more round with run-time stats on (they cost a clock read per run themselves). */
	stats_fd = err ? -1 : bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd >= 0 && !attach(&b, true) && stats_round(&b) >= 0)
		programs_ns(&b, progs);
	prog = progs[0] + progs[1];
	if (!err) {
		off = bench_median(b.ns[0], ROUNDS);
		on = bench_median(b.ns[1], ROUNDS);
		printf("connect()+close() to %s, %d per round, %d rounds, CPU %d: median ns/op\n",
		       inet_ntoa(b.target), CONNECTS, ROUNDS, CPU_PIN);
		printf("  none %.1f  caelum (%d database rules, counting) %.1f  ratio %.4f\n", off,
		       RULES, on, on / off);
		printf("  programs' own run time per connect+close %.1f ns (connect4 %.1f, "
		       "sock_release %.1f): (none + programs) / none %.4f\n",
		       prog, progs[0], progs[1], (off + prog) / off);
		printf("{\"connect_none_ns\":%.1f,\"connect_caelum_ns\":%.1f,\"ratio\":%.4f,"
		       "\"programs_ns\":%.1f,\"connect4_ns\":%.1f,\"sock_release_ns\":%.1f,"
		       "\"ratio_programs\":%.4f,\"rules\":%d}\n",
		       off, on, on / off, prog, progs[0], progs[1], (off + prog) / off, RULES);
	} else {
		p_err("benchmark failed: %s", strerror(-err));
	}
	if (stats_fd >= 0)
		close(stats_fd);
	teardown(&b);
	return err ? 1 : 0;
}
