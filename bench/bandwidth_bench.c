// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Cost of the bandwidth programs (bpf/bandwidth.bpf.c) per packet, over loopback, with the
 * sender and the receiver both in one service cgroup (so every packet passes cm_bw_egress
 * and cm_bw_ingress):
 *   none       no program attached
 *   allow      bench/allow.bpf.c's cgroup_skb programs (return 1): the price of any
 *              cgroup_skb hook, which no program of ours can go under
 *   unlimited  programs attached; the service has no cm_bw entry (one lookup per packet;
 *              another cgroup has one, so the map is not empty)
 *   limited    the service is limited at 1 Tbit/s each way, far above its traffic: the whole
 *              accounting path (queue atomics, per-CPU counts) and never a throttle
 * Workloads: TCP throughput (64 KiB writes, a receiver thread) and UDP datagrams per second
 * (64-byte datagrams, a receiver thread draining). Rounds alternate the three modes in the
 * same process; medians and the ratios against none are printed, then one JSON line. One
 * more round per mode with BPF_ENABLE_STATS gives the programs' own run time per packet.
 * The bench's cgroup subtree and bpffs directory are removed at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "allow.skel.h"
#include "bandwidth_user.h"
#include "bench.h"
#include "bpfpin.h"
#include "capacity.h"
#include "caelum/common.h"
#include "cgroup.h"
#include "log.h"

#define ROUNDS	    7
#define TCP_BYTES   (512ULL << 20)
#define UDP_PACKETS 200000
#define UDP_LEN	    64
#define NMODES	    4
#define LIMIT_KBIT  (1000000000LL) /* 1 Tbit/s */

enum mode { M_NONE, M_ALLOW, M_UNLIMITED, M_LIMITED };
static const char *const mode_names[NMODES] = { "none", "allow", "unlimited", "limited" };

struct bbench {
	struct bench_sandbox sb;
	struct comp_env cenv;
	void *bw;
	struct allow_bpf *allow;
	struct bpf_link *allow_link[2];
	bool attached;
	double tcp_gbit[NMODES][ROUNDS], udp_kpps[NMODES][ROUNDS];
	double tcp_prog_ns[NMODES], udp_prog_ns[NMODES]; /* per packet */
	double tcp_prog_round_ns[NMODES]; /* all the programs' run time in one TCP round */
};

/* A receiver thread: read fd until EOF (TCP) or until told to stop (UDP). */
struct sink {
	int fd;
	atomic_bool stop;
};

static void *sink_run(void *arg)
{
	struct sink *s = arg;
	static __thread char buf[1 << 16];

	while (!atomic_load(&s->stop)) {
		ssize_t n = recv(s->fd, buf, sizeof(buf), 0);

		if (n == 0)
			break;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
	}
	return NULL;
}

static int loopback_listener(int type, struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) ||
	    getsockname(fd, (struct sockaddr *)a, &len) || (type == SOCK_STREAM && listen(fd, 1))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Gbit/s of one TCP stream of TCP_BYTES over loopback, or < 0. */
static double tcp_round(void)
{
	static char buf[1 << 16];
	struct sink s = { .fd = -1 };
	struct sockaddr_in a;
	pthread_t th;
	uint64_t t0, sent = 0;
	int lfd = loopback_listener(SOCK_STREAM, &a), cfd;

	if (lfd < 0)
		return -1;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof(a)) ||
	    (s.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 ||
	    pthread_create(&th, NULL, sink_run, &s)) {
		close(lfd);
		return -1;
	}
	t0 = bench_now_ns();
	while (sent < TCP_BYTES) {
		ssize_t n = send(cfd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		sent += (uint64_t)n;
	}
	shutdown(cfd, SHUT_WR);
	pthread_join(th, NULL);
	t0 = bench_now_ns() - t0;
	close(cfd);
	close(s.fd);
	close(lfd);
	return sent < TCP_BYTES ? -1 : (double)sent * 8 / (double)t0;
}

/* Thousands of UDP datagrams sent per second over loopback, or < 0. */
static double udp_round(void)
{
	static const char buf[UDP_LEN];
	struct timeval tv = { .tv_usec = 100000 };
	struct sink s = { .fd = -1 };
	struct sockaddr_in a;
	pthread_t th;
	uint64_t t0;
	int fd;

	s.fd = loopback_listener(SOCK_DGRAM, &a);
	if (s.fd < 0)
		return -1;
	setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    pthread_create(&th, NULL, sink_run, &s)) {
		close(s.fd);
		return -1;
	}
	t0 = bench_now_ns();
	for (int i = 0; i < UDP_PACKETS; i++)
		send(fd, buf, sizeof(buf), 0); /* a full receive buffer drops: fine */
	t0 = bench_now_ns() - t0;
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	close(fd);
	close(s.fd);
	return (double)UDP_PACKETS * 1e6 / (double)t0;
}

/* The service's cm_bw entry (and zeroed counts), or none, as caelumd's sync writes them. */
static int limit(struct bbench *b, bool on)
{
	struct spec_resources r = { .egress_kbit = LIMIT_KBIT, .ingress_kbit = LIMIT_KBIT };
	char path[PATH_MAX];
	struct caelum_bw e;
	void *zero = NULL;
	int fd, cfd, err = 0;

	snprintf(path, sizeof(path), "%s/cm_bw", b->sb.env.maps);
	fd = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/cm_bw_count", b->sb.env.maps);
	cfd = bpf_obj_get(path);
	if (fd < 0 || cfd < 0) {
		err = -errno;
		goto out;
	}
	bandwidth_entry(&r, &e);
	/* Another service is limited in every mode: the lookup never runs on an empty map. */
	if (bpf_map_update_elem(fd, &b->sb.env.cg_id, &e, BPF_ANY)) {
		err = -errno;
		goto out;
	}
	if (!on) {
		bpf_map_delete_elem(fd, &b->sb.svc_id);
		bpf_map_delete_elem(cfd, &b->sb.svc_id);
		goto out;
	}
	zero = calloc((size_t)libbpf_num_possible_cpus(), sizeof(struct caelum_bw_count));
	if (!zero || bpf_map_update_elem(fd, &b->sb.svc_id, &e, BPF_ANY) ||
	    bpf_map_update_elem(cfd, &b->sb.svc_id, zero, BPF_ANY))
		err = zero ? -errno : -ENOMEM;
out:
	free(zero);
	if (fd >= 0)
		close(fd);
	if (cfd >= 0)
		close(cfd);
	return err;
}

/* Attach both programs through the component, or detach them (as caelumctl teardown does). */
static int attach(struct bbench *b, bool on)
{
	struct comp_prog p[COMP_MAX_PROGS];
	size_t n;

	if (on) {
		b->attached = true;
		return bandwidth_component.attach(b->bw, &b->cenv);
	}
	n = bandwidth_component.progs(b->bw, p, COMP_MAX_PROGS);
	for (size_t i = 0; b->attached && i < n; i++)
		bench_link_unpin(&b->sb, p[i].name);
	b->attached = false;
	return 0;
}

/* The allow-all pair at the bench's cgroup root, or detached. */
static int allow_attach(struct bbench *b, bool on)
{
	for (int i = 0; i < 2; i++) {
		bpf_link__destroy(b->allow_link[i]);
		b->allow_link[i] = NULL;
	}
	if (!on)
		return 0;
	b->allow_link[0] =
		bpf_program__attach_cgroup(b->allow->progs.cm_bench_skb_eg, b->sb.env.cg_fd);
	b->allow_link[1] =
		bpf_program__attach_cgroup(b->allow->progs.cm_bench_skb_in, b->sb.env.cg_fd);
	return b->allow_link[0] && b->allow_link[1] ? 0 : -errno;
}

static int set_mode(struct bbench *b, enum mode m)
{
	int err = allow_attach(b, m == M_ALLOW);

	if (!err)
		err = attach(b, m == M_UNLIMITED || m == M_LIMITED);
	return err ? err : limit(b, m == M_LIMITED);
}

static int setup(struct bbench *b)
{
	int err = bench_sandbox_open(&b->sb, "bwbench");

	b->cenv.bpf = &b->sb.env;
	if (!err)
		err = bandwidth_component.load(&b->cenv, &b->bw);
	if (!err && !(b->allow = allow_bpf__open_and_load()))
		err = -errno;
	return err ? err : bench_sandbox_enter(&b->sb);
}

static void teardown(struct bbench *b)
{
	allow_attach(b, false);
	allow_bpf__destroy(b->allow);
	if (b->bw) {
		attach(b, true); /* so that the detach below finds every pin */
		attach(b, false);
		bandwidth_component.close(b->bw);
	}
	bench_sandbox_close(&b->sb);
}

static int run(struct bbench *b)
{
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < NMODES; k++) {
			enum mode m = (enum mode)((r + k) % NMODES);
			int err = set_mode(b, m);

			if (err)
				return err;
			b->tcp_gbit[m][r] = tcp_round();
			b->udp_kpps[m][r] = udp_round();
			if (b->tcp_gbit[m][r] < 0 || b->udp_kpps[m][r] < 0)
				return -EIO;
		}
		fprintf(stderr, "bandwidth_bench: round %d/%d done\n", r + 1, ROUNDS);
	}
	return 0;
}

/* Run time and count so far of both programs of mode m (allow's or the component's). */
static void prog_stats(struct bbench *b, enum mode m, uint64_t *ns, uint64_t *cnt)
{
	struct comp_prog p[COMP_MAX_PROGS];
	size_t n = bandwidth_component.progs(b->bw, p, COMP_MAX_PROGS);
	int fds[2] = { bpf_program__fd(b->allow->progs.cm_bench_skb_eg),
		       bpf_program__fd(b->allow->progs.cm_bench_skb_in) };

	*ns = *cnt = 0;
	for (size_t i = 0; i < n && i < 2; i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(m == M_ALLOW ? fds[i] : p[i].prog_fd, &info, &len)) {
			*ns += info.run_time_ns;
			*cnt += info.run_cnt;
		}
	}
}

/* ns of program run time per packet (one egress + one ingress run) of fn in mode m; the
 * round's total in *total_ns. */
static double prog_round(struct bbench *b, enum mode m, double (*fn)(void), double *total_ns)
{
	uint64_t ns0, cnt0, ns1, cnt1;

	*total_ns = 0;
	if (set_mode(b, m))
		return 0;
	prog_stats(b, m, &ns0, &cnt0);
	if (fn() < 0)
		return 0;
	prog_stats(b, m, &ns1, &cnt1);
	*total_ns = (double)(ns1 - ns0);
	return cnt1 > cnt0 ? 2.0 * (double)(ns1 - ns0) / (double)(cnt1 - cnt0) : 0;
}

/*
 * On a shared host the wall-clock medians swing by more than the programs cost, so the
 * ratio the programs' own run time implies is printed beside the measured one:
 * (time of a round without programs + the programs' run time in it) / that time.
 */
static void report(struct bbench *b)
{
	double tcp[NMODES], udp[NMODES], itcp[NMODES], iudp[NMODES];

	for (int m = 0; m < NMODES; m++) {
		double tcp_round_ns, udp_pkt_ns;

		tcp[m] = bench_median(b->tcp_gbit[m], ROUNDS);
		udp[m] = bench_median(b->udp_kpps[m], ROUNDS);
		tcp_round_ns = (double)TCP_BYTES * 8 / bench_median(b->tcp_gbit[M_NONE], ROUNDS);
		udp_pkt_ns = 1e6 / bench_median(b->udp_kpps[M_NONE], ROUNDS);
		itcp[m] = (tcp_round_ns + b->tcp_prog_round_ns[m]) / tcp_round_ns;
		iudp[m] = (udp_pkt_ns + b->udp_prog_ns[m]) / udp_pkt_ns;
	}
	printf("loopback, sender and receiver in one service cgroup, %d rounds: medians\n", ROUNDS);
	for (int m = 0; m < NMODES; m++)
		printf("  %-9s  tcp %6.2f Gbit/s (none/this %.4f, by run time %.4f)  udp %7.1f "
		       "kpps "
		       "(none/this %.4f, by run time %.4f)  programs per packet: tcp %5.1f ns, udp "
		       "%5.1f ns\n",
		       mode_names[m], tcp[m], tcp[M_NONE] / tcp[m], itcp[m], udp[m],
		       udp[M_NONE] / udp[m], iudp[m], b->tcp_prog_ns[m], b->udp_prog_ns[m]);
	printf("  (run times are measured with BPF_ENABLE_STATS on, which adds two clock reads "
	       "per run: see allow)\n");
	printf("{\"tcp_gbit\":{\"none\":%.3f,\"allow\":%.3f,\"unlimited\":%.3f,\"limited\":%.3f},"
	       "\"udp_kpps\":{\"none\":%.1f,\"allow\":%.1f,\"unlimited\":%.1f,\"limited\":%.1f},"
	       "\"ratio_tcp_allow\":%.4f,\"ratio_udp_allow\":%.4f,"
	       "\"ratio_tcp_unlimited\":%.4f,\"ratio_tcp_limited\":%.4f,"
	       "\"ratio_udp_unlimited\":%.4f,\"ratio_udp_limited\":%.4f,"
	       "\"ratio_by_run_time\":{\"tcp_unlimited\":%.4f,\"tcp_limited\":%.4f,"
	       "\"udp_unlimited\":%.4f,\"udp_limited\":%.4f},"
	       "\"prog_ns_per_packet\":{\"tcp_allow\":%.1f,\"tcp_unlimited\":%.1f,"
	       "\"tcp_limited\":%.1f,\"udp_allow\":%.1f,\"udp_unlimited\":%.1f,"
	       "\"udp_limited\":%.1f}}\n",
	       tcp[0], tcp[1], tcp[2], tcp[3], udp[0], udp[1], udp[2], udp[3], tcp[0] / tcp[1],
	       udp[0] / udp[1], tcp[0] / tcp[2], tcp[0] / tcp[3], udp[0] / udp[2], udp[0] / udp[3],
	       itcp[2], itcp[3], iudp[2], iudp[3], b->tcp_prog_ns[1], b->tcp_prog_ns[2],
	       b->tcp_prog_ns[3], b->udp_prog_ns[1], b->udp_prog_ns[2], b->udp_prog_ns[3]);
}

int main(void)
{
	static struct bbench b;
	int err, stats_fd;

	log_init("bandwidth_bench", false, false);
	log_libbpf_init();
	if (geteuid()) {
		p_err("needs root");
		return 77;
	}
	err = setup(&b);
	if (!err)
		err = run(&b);
	/* One more round per mode with run-time stats on (they cost a clock read per run). */
	stats_fd = err ? -1 : bpf_enable_stats(BPF_STATS_RUN_TIME);
	for (int m = M_ALLOW; stats_fd >= 0 && m < NMODES; m++) {
		double unused;

		b.tcp_prog_ns[m] = prog_round(&b, (enum mode)m, tcp_round, &b.tcp_prog_round_ns[m]);
		b.udp_prog_ns[m] = prog_round(&b, (enum mode)m, udp_round, &unused);
	}
	if (!err)
		report(&b);
	else
		p_err("benchmark failed: %s", strerror(-err));
	if (stats_fd >= 0)
		close(stats_fd);
	teardown(&b);
	return err ? 1 : 0;
}
