// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Cost of the scheduler-side programs (bpf/tasks.bpf.c fork/exit/move, bpf/cpu.bpf.c
 * sched_switch) on the paths they sit on:
 *   fork+exit   fork(), child _exit(0), parent waitpid(), in a service cgroup (counted)
 *   ping-pong   two processes pinned to one CPU passing a byte through two pipes: every
 *               round trip is two context switches
 * Each measured with the programs attached and detached, rounds interleaved, in the same
 * process; the median of the rounds and the ratio are printed, then one JSON line.
 *
 * The programs are tracepoints: while attached they run for the whole host, not only for
 * this bench's cgroup. Everything is detached, unpinned and removed at the end.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <json-c/json.h>

#include "bench.h"
#include "bpfpin.h"
#include "caelum/common.h"
#include "cgroup.h"
#include "cpu_user.h"
#include "log.h"
#include "tasks_user.h"

#define ROUNDS	7
#define FORKS	4000
#define PINGS	100000
#define CPU_PIN 1

enum { MODE_OFF, MODE_ON, MODE_MAX };
enum { W_FORK, W_PING, W_MAX };

static const char *const mode_name[MODE_MAX] = { "detached", "attached" };
static const char *const work_name[W_MAX] = { "fork_exit", "pipe_pingpong" };

struct sbench {
	struct bench_sandbox sb;
	struct tasks *tasks;
	struct cpu *cpu;
	double ns[MODE_MAX][W_MAX][ROUNDS];
};

static double fork_exit(void)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < FORKS; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, NULL, 0) < 0)
			return -1;
	}
	return (double)(bench_now_ns() - t0) / FORKS;
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* Round trips through two pipes between two processes on one CPU. */
static double ping_pong(void)
{
	int ab[2], ba[2];
	uint64_t t0;
	pid_t pid;
	char c = 0;

	if (pipe(ab) || pipe(ba))
		return -1;
	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < PINGS; i++)
			if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1)
				_exit(1);
		_exit(0);
	}
	t0 = bench_now_ns();
	for (int i = 0; i < PINGS && pid > 0; i++)
		if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
			break;
	t0 = bench_now_ns() - t0;
	waitpid(pid, NULL, 0);
	close(ab[0]);
	close(ab[1]);
	close(ba[0]);
	close(ba[1]);
	return (double)t0 / PINGS;
}

/* <cg2>/caelum-sbench-PID/caelum/svc: a service cgroup like caelumd's, this process in it. */
static int setup(struct sbench *b)
{
	int err = bench_sandbox_open(&b->sb, "sbench");

	if (!err)
		err = tasks_load(&b->sb.env, &b->tasks);
	if (!err)
		err = cpu_load(&b->sb.env, &b->cpu);
	return err ? err : bench_sandbox_enter(&b->sb);
}

static int attach(struct sbench *b, bool on)
{
	static const char *const links[] = { "cm_task_fork", "cm_task_exit", "cm_task_move",
					     "cm_sched_switch" };
	int err = 0;

	if (on) {
		err = tasks_attach(b->tasks, &b->sb.env);
		return err ? err : cpu_attach(b->cpu, &b->sb.env);
	}
	/* Detach: unpin and detach the links, as 'caelumctl teardown' does. */
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		bench_link_unpin(&b->sb, links[i]);
	return 0;
}

static void teardown(struct sbench *b)
{
	attach(b, false);
	cpu_close(b->cpu);
	tasks_close(b->tasks);
	bench_sandbox_close(&b->sb);
}

static int run(struct sbench *b)
{
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < MODE_MAX; k++) {
			int m = (r + k) % MODE_MAX; /* alternate which goes first */
			int err = attach(b, m == MODE_ON);

			if (err)
				return err;
			b->ns[m][W_FORK][r] = fork_exit();
			b->ns[m][W_PING][r] = ping_pong();
			if (b->ns[m][W_FORK][r] < 0 || b->ns[m][W_PING][r] < 0)
				return -EIO;
		}
		fprintf(stderr, "sched_bench: round %d/%d done\n", r + 1, ROUNDS);
	}
	return 0;
}

static void report(const struct sbench *b)
{
	struct json_object *o = json_object_new_object();

	printf("scheduler hooks (tasks + cpu programs), CPU %d, %d rounds: median ns/op\n", CPU_PIN,
	       ROUNDS);
	printf("  %-14s %12s %12s %8s\n", "workload", mode_name[0], mode_name[1], "ratio");
	for (int w = 0; w < W_MAX; w++) {
		double off = bench_median(b->ns[MODE_OFF][w], ROUNDS),
		       on = bench_median(b->ns[MODE_ON][w], ROUNDS);
		char key[64];

		printf("  %-14s %12.1f %12.1f %8.4f\n", work_name[w], off, on, on / off);
		snprintf(key, sizeof(key), "%s_detached_ns", work_name[w]);
		json_object_object_add(o, key, json_object_new_double(off));
		snprintf(key, sizeof(key), "%s_attached_ns", work_name[w]);
		json_object_object_add(o, key, json_object_new_double(on));
		snprintf(key, sizeof(key), "%s_ratio", work_name[w]);
		json_object_object_add(o, key, json_object_new_double(on / off));
	}
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

int main(void)
{
	static struct sbench b;
	int err;

	log_init("sched_bench", false, false);
	log_libbpf_init();
	if (geteuid()) {
		p_err("needs root");
		return 77;
	}
	pin_cpu(CPU_PIN);
	err = setup(&b);
	if (!err)
		err = run(&b);
	if (!err)
		report(&b);
	else
		p_err("benchmark failed: %s", strerror(-err));
	teardown(&b);
	return err ? 1 : 0;
}
