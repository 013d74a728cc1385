// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * change_bench: what one registry change costs on its way to the kernel, and whether that
 * cost depends on the size of the registry (it should not: a change is O(keys changed)).
 *
 * The same path as caelumd: a file registry in a temporary directory (snapshot + fsync'd
 * log), its watch applied to the model (registry_poll), the watcher turning the delta's
 * slots into table entries (port_rule_compute) and ports_update() writing them to the two
 * pinned tables of bpf/ports.bpf.c (own bpffs directory and cgroup subtree; nothing is
 * attached, the tables are the same maps the programs read).
 *
 * 1. commit -> kernel, one reservation: with N = 40, 10,000 and 65,535 entries already in the
 *    registry and the tables (one service whose spec declares N tcp ports), REPS reservations
 *    of a udp port, each followed by its release; p50/p99 of each call, from the call into the
 *    registry until the tables hold the change (the log's fdatasync included: it dominates,
 *    and it is the disk's figure), and of its kernel part alone (the watcher: delta slots ->
 *    rules -> map updates). Ratio of the 65,535 p99 to the 40 p99.
 * 2. loading 65,535 reservations into empty tables (startup): claims -> policy, then both
 *    tables filled with batched updates and slot 0 flipped once.
 * 3. memory: caelumd-side bytes per reservation (RSS of this process, which holds the same
 *    registry, model and mirror) for 10,000 runtime reservations, and after releasing them.
 *
 * Everything it creates is removed at exit.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "bench.h"
#include "cgroup.h"
#include "log.h"
#include "ports_user.h"
#include "registry.h"
#include "spec.h"

#define REPS	 400
#define MEM_RESV 10000
#define SVC_CGID 4242ULL

struct bench {
	char cg[PATH_MAX], bpffs[PATH_MAX], dir[PATH_MAX];
	struct bpf_env env;
	struct ports *ports;
	struct registry *reg;
	int apply_err;
	uint64_t apply_ns; /* the last watcher call: slots -> rules -> tables */
};

static int ident(void *ctx, const char *name, uint64_t *cgid, uint16_t *level)
{
	(void)ctx;
	(void)name;
	*cgid = SVC_CGID;
	*level = 2;
	return 0;
}

/* caelumd's apply_slots(), without the daemon around it. */
static void on_change(void *ctx, const struct reg_state *st, const struct reg_delta *d)
{
	struct bench *b = ctx;
	struct caelum_port_rule *rules = calloc(d->n_slots + 1, sizeof(*rules));
	uint64_t t0 = bench_now_ns();

	if (!rules) {
		b->apply_err = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < d->n_slots; i++)
		port_rule_compute(REG_SLOT_PORT(d->slots[i]), REG_SLOT_PROTO(d->slots[i]),
				  registry_slot_owner(st, d->slots[i]), NULL, 0, ident, b,
				  &rules[i]);
	b->apply_err = ports_update(b->ports, d->slots, rules, d->n_slots);
	free(rules);
	b->apply_ns = bench_now_ns() - t0;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[(size_t)(p * (double)(n - 1))] / 1e3;
}

static void rm_dir_files(const char *dir)
{
	char cmd[PATH_MAX + 16];

	/* Only directories this process made (mkdtemp, its own pid in the name). */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		p_warn("failed to remove '%s'", dir);
}

static int setup(struct bench *b)
{
	char mnt[PATH_MAX];
	int err;

	err = cgroup2_mount_find(mnt, sizeof(mnt));
	if (err) {
		p_err("no cgroup2 mount found: %s", strerror(-err));
		return err;
	}
	snprintf(b->cg, sizeof(b->cg), "%s/caelum-cbench-%d", mnt, getpid());
	snprintf(b->bpffs, sizeof(b->bpffs), "/sys/fs/bpf/caelum-cbench-%d", getpid());
	snprintf(b->dir, sizeof(b->dir), "/tmp/caelum-cbench-XXXXXX");
	if (!mkdtemp(b->dir)) {
		b->dir[0] = '\0';
		return -errno;
	}
	err = cgroup_mkdir(b->cg);
	if (!err)
		err = bpf_env_open(&b->env, b->bpffs, b->cg, 1 << 20);
	if (!err)
		err = ports_load(&b->env, &b->ports);
	return err;
}

static void teardown(struct bench *b)
{
	registry_close(b->reg);
	b->reg = NULL;
	ports_close(b->ports);
	b->ports = NULL;
	bpf_env_close(&b->env);
	if (b->bpffs[0])
		rm_dir_files(b->bpffs);
	if (b->dir[0])
		rm_dir_files(b->dir);
	if (b->cg[0] && rmdir(b->cg) && errno != ENOENT)
		p_warn("failed to remove cgroup '%s': %s", b->cg, strerror(errno));
}

/* A fresh registry whose one service declares n tcp ports, and tables that hold it. */
static int registry_fill(struct bench *b, uint32_t n)
{
	struct registry_backend *be;
	struct port_range range = { 1, (uint16_t)n, IPPROTO_TCP };
	struct service_spec s = { .name = "svc", .ports = &range, .n_ports = 1 };
	struct port_policy pol = {};
	struct reg_claim *cl = NULL;
	struct verr e = {};
	size_t ncl;
	int err;

	registry_close(b->reg);
	b->reg = NULL;
	rm_dir_files(b->dir);
	if (mkdir(b->dir, 0700))
		return -errno;
	err = registry_file_open(b->dir, &be);
	if (err)
		return err;
	err = registry_open(be, &b->reg, &e);
	if (err) {
		be->ops->free(be);
		return err;
	}
	err = registry_service_apply(b->reg, &s, ORIGIN_API, &e);
	if (!err)
		err = registry_claims(registry_state(b->reg), &cl, &ncl);
	if (!err)
		err = port_policy_build(&pol, cl, ncl, NULL, 0, ident, b);
	if (!err)
		err = ports_install(b->ports, &pol);
	free(cl);
	port_policy_free(&pol);
	verr_free(&e);
	if (!err)
		registry_watch(b->reg, on_change, b);
	return err;
}

static int one_change(struct bench *b, uint16_t port, bool reserve, uint64_t *ns,
		      uint64_t *kernel_ns)
{
	struct verr e = {};
	uint64_t t0 = bench_now_ns();
	int err = reserve ? registry_reserve(b->reg, port, IPPROTO_UDP, NULL, "svc", &e)
			  : registry_release(b->reg, port, IPPROTO_UDP, NULL, &e);

	*ns = bench_now_ns() - t0;
	*kernel_ns = b->apply_ns;
	verr_free(&e);
	return err ? err : b->apply_err;
}

static int latency(struct bench *b, uint32_t n, double *p99_out)
{
	static uint64_t res[REPS], rel[REPS], kres[REPS], krel[REPS];
	uint64_t flips0, flips1, w;
	int err = registry_fill(b, n);

	if (err)
		return err;
	ports_counters(b->ports, &flips0, &w);
	for (int i = 0; i < REPS && !err; i++) {
		err = one_change(b, (uint16_t)(1000 + i % 50), true, &res[i], &kres[i]);
		if (!err)
			err = one_change(b, (uint16_t)(1000 + i % 50), false, &rel[i], &krel[i]);
	}
	if (err)
		return err;
	ports_counters(b->ports, &flips1, &w);
	*p99_out = pct_us(res, REPS, 0.99);
	printf("  %6u entries: reserve p50 %7.1f us  p99 %7.1f us | release p50 %7.1f us  p99 "
	       "%7.1f us  (table flips: %llu)\n",
	       n, pct_us(res, REPS, 0.5), *p99_out, pct_us(rel, REPS, 0.5), pct_us(rel, REPS, 0.99),
	       (unsigned long long)(flips1 - flips0));
	printf("  %6u entries: of which model -> kernel tables: reserve p50 %5.1f us  p99 %5.1f us "
	       "| release p50 %5.1f us  p99 %5.1f us\n",
	       n, pct_us(kres, REPS, 0.5), pct_us(kres, REPS, 0.99), pct_us(krel, REPS, 0.5),
	       pct_us(krel, REPS, 0.99));
	return 0;
}

/* Startup: every table empty, 65,535 reservations to load. */
static int full_load(struct bench *b)
{
	struct port_policy pol = {};
	struct reg_claim *cl = NULL;
	uint64_t t0, t1, t2;
	size_t ncl;
	int err;

	/* New pins: both tables empty, slot 0 unset, as on a first start. */
	ports_close(b->ports);
	b->ports = NULL;
	rm_dir_files(b->bpffs);
	bpf_env_close(&b->env);
	err = bpf_env_open(&b->env, b->bpffs, b->cg, 1 << 20);
	if (!err)
		err = ports_load(&b->env, &b->ports);
	if (!err)
		err = registry_claims(registry_state(b->reg), &cl, &ncl);
	if (err)
		return err;
	t0 = bench_now_ns();
	err = port_policy_build(&pol, cl, ncl, NULL, 0, ident, b);
	t1 = bench_now_ns();
	if (!err)
		err = ports_install(b->ports, &pol);
	t2 = bench_now_ns();
	printf("  %zu reservations into empty tables: policy build %.1f ms, both tables + flip "
	       "%.1f ms, total %.1f ms\n",
	       pol.n, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, (double)(t2 - t0) / 1e6);
	free(cl);
	port_policy_free(&pol);
	return err;
}

static int memory(struct bench *b)
{
	long before, after, released;
	struct verr e = {};
	int err = registry_fill(b, 40);

	malloc_trim(0);
	before = rss_kib();
	for (int i = 0; i < MEM_RESV && !err; i++)
		err = registry_reserve(b->reg, (uint16_t)(1000 + i), IPPROTO_UDP, NULL, "svc", &e);
	after = rss_kib();
	for (int i = 0; i < MEM_RESV && !err; i++)
		err = registry_release(b->reg, (uint16_t)(1000 + i), IPPROTO_UDP, NULL, &e);
	malloc_trim(0);
	released = rss_kib();
	verr_free(&e);
	if (err)
		return err;
	printf("  %d reservations: RSS +%ld KiB (%.0f bytes per reservation); after releasing them "
	       "+%ld KiB\n",
	       MEM_RESV, after - before, (double)(after - before) * 1024.0 / MEM_RESV,
	       released - before);
	return 0;
}

int main(void)
{
	static const uint32_t sizes[] = { 40, 10000, 65535 };
	struct bench b = {};
	double p99[3];
	int err;

	log_init("change_bench", false, false);
	if (geteuid()) {
		p_err("change_bench needs root (BPF maps, cgroups)");
		return 77;
	}
	err = setup(&b);
	printf("change_bench: one reservation, commit (fsync) -> model -> kernel tables\n");
	for (int i = 0; i < 3 && !err; i++)
		err = latency(&b, sizes[i], &p99[i]);
	if (!err)
		printf("  p99 ratio 65,535 / 40 entries: %.2f\n", p99[2] / p99[0]);
	if (!err)
		err = full_load(&b);
	if (!err)
		err = memory(&b);
	teardown(&b);
	if (err) {
		p_err("change_bench failed: %s", strerror(-err));
		return 1;
	}
	return 0;
}
