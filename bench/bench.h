/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the C benchmarks (bench/<name>_bench.c) share: the clock, order statistics, and caelumd's
 * own writes of cm_config and cm_services, which the benchmarks make instead of a daemon.
 * Header-only: each benchmark is one translation unit linked with build/libcaelum.a.
 */
#ifndef CAELUM_BENCH_H
#define CAELUM_BENCH_H

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "bpfpin.h"
#include "caelum/common.h"
#include "cgroup.h"
#include "log.h"

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline int bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n) (n >= 1; the mean of the middle two when n is even); v unchanged.
 * NaN when a copy cannot be made. */
static inline double bench_median(const double *v, size_t n)
{
	double *s = malloc(n * sizeof(*s)), m;

	if (!s || !n) {
		free(s);
		return 0.0 / 0.0;
	}
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), bench_dbl_cmp);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

/*
 * What caelumd writes before it attaches: every component in enforce mode with services at
 * svc_level below the cgroup2 root (cm_config), and svc_id registered (cm_services), in the
 * maps pinned under maps_dir (<bpffs>/maps). 0 or -errno.
 */
static inline int bench_config_write(const char *maps_dir, uint64_t svc_id, unsigned int svc_level)
{
	struct caelum_config c = { .svc_level = svc_level };
	struct caelum_service s = { .flags = CAELUM_SVC_F_REGISTERED };
	char path[PATH_MAX];
	__u32 zero = 0;
	int fd, err = 0;

	for (int i = 0; i < CAELUM_COMP_MAX; i++)
		c.mode[i] = CAELUM_MODE_ENFORCE;
	snprintf(path, sizeof(path), "%s/cm_config", maps_dir);
	fd = bpf_obj_get(path);
	if (fd < 0 || bpf_map_update_elem(fd, &zero, &c, BPF_ANY))
		err = -errno;
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/cm_services", maps_dir);
	fd = bpf_obj_get(path);
	if (!err && (fd < 0 || bpf_map_update_elem(fd, &svc_id, &s, BPF_ANY)))
		err = -errno;
	if (fd >= 0)
		close(fd);
	return err;
}

/*
 * A benchmark's own place, made as caelumd makes its own: a cgroup subtree
 * <cgroup2>/caelum-<name>-PID with one service cgroup <root>/caelum/svc, and a bpffs directory
 * /sys/fs/bpf/caelum-<name>-PID (bpf_env: maps/, links/, the ring buffer). The host's own
 * cgroups are never touched: this process moves into svc (cgroup2 only) and back.
 */
struct bench_sandbox {
	char home[PATH_MAX];  /* this process's cgroup2 cgroup before, to return to */
	char root[PATH_MAX];  /* the subtree */
	char svc[PATH_MAX];   /* the service cgroup */
	char bpffs[PATH_MAX]; /* the pin directory */
	uint64_t svc_id;      /* svc's cgroup id */
	unsigned int svc_level;
	bool away; /* this process is in svc */
	struct bpf_env env;
};

/* Make the subtree and the pin directory (name: "sbench", ...). 0 or -errno; on an error
 * bench_sandbox_close() removes what was made. */
static inline int bench_sandbox_open(struct bench_sandbox *sb, const char *name)
{
	char mount[PATH_MAX], rel[PATH_MAX];
	int err;

	memset(sb, 0, sizeof(*sb));
	if ((err = cgroup2_mount_find(mount, sizeof(mount))) ||
	    (err = cgroup_of_pid(0, rel, sizeof(rel))))
		return err;
	snprintf(sb->home, sizeof(sb->home), "%s%s", mount, strcmp(rel, "/") ? rel : "");
	snprintf(sb->root, sizeof(sb->root), "%s/caelum-%s-%d", mount, name, getpid());
	snprintf(sb->svc, sizeof(sb->svc), "%s/caelum/svc", sb->root);
	snprintf(sb->bpffs, sizeof(sb->bpffs), "/sys/fs/bpf/caelum-%s-%d", name, getpid());
	if ((err = cgroup_mkdir(sb->svc)) || (err = cgroup_id(sb->svc, &sb->svc_id)))
		return err;
	sb->svc_level = (unsigned int)cgroup_level(mount, sb->svc);
	return bpf_env_open(&sb->env, sb->bpffs, sb->root, CAELUM_RINGBUF_BYTES);
}

/* After the programs are loaded: cm_config and cm_services as caelumd writes them, then this
 * process into the service cgroup. 0 or -errno. */
static inline int bench_sandbox_enter(struct bench_sandbox *sb)
{
	int err = bench_config_write(sb->env.maps, sb->svc_id, sb->svc_level);

	if (!err && !(err = cgroup_move(sb->svc, 0)))
		sb->away = true;
	return err;
}

/* Detach and unpin the link pinned as <bpffs>/links/<name>, as caelumctl teardown does. */
static inline void bench_link_unpin(struct bench_sandbox *sb, const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sb->env.links, name);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		bpf_link_detach(fd);
		close(fd);
	}
	unlink(path);
}

/* Back to the cgroup this process came from; the pins and the subtree removed. Call after
 * the programs' own close. */
static inline void bench_sandbox_close(struct bench_sandbox *sb)
{
	char cmd[PATH_MAX + 16], path[PATH_MAX];

	if (sb->away && cgroup_move(sb->home, 0))
		p_warn("failed to move back to '%s'", sb->home);
	bpf_env_close(&sb->env);
	/* bpffs holds only our pins: remove them and the directories. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sb->bpffs);
	if (sb->bpffs[0] && system(cmd))
		p_warn("failed to remove '%s'", sb->bpffs);
	if (!sb->root[0])
		return;
	rmdir(sb->svc);
	snprintf(path, sizeof(path), "%s/caelum", sb->root);
	rmdir(path);
	rmdir(sb->root);
}

#endif /* CAELUM_BENCH_H */
