/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Host capacity ("capacity" in caelum.json) and the admission arithmetic that keeps the
 * services' reservations inside it.
 *
 *   "capacity": {"cpus": "auto", "memory_mb": "auto",
 *                "gpus": [{"id": "gpu0", "devices": ["/dev/nvidia0"]}],
 *                "reserved": {"cpus": 1, "memory_mb": 1024}}
 *
 * CPUs are counted in milli-CPUs throughout (2.5 CPUs = 2500) so that fractions add up
 * exactly. "auto" is detected when the config is resolved (online CPUs, MemTotal).
 * Allocatable = capacity - reserved. GPUs are exclusive: one service per GPU.
 */
#ifndef CAELUM_CAPACITY_H
#define CAELUM_CAPACITY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonv.h"

#define CAP_AUTO -1
#define CAP_MAX_GPUS 16
#define GPU_MAX_DEVICES 8
#define GPU_ID_MAX 31

#define GPU_PATH_MAX 255

struct gpu_device {
	char path[GPU_PATH_MAX + 1];
	uint32_t major, minor; /* resolved from the path (a character device) */
};

struct gpu_cfg {
	char id[GPU_ID_MAX + 1];
	struct gpu_device dev[GPU_MAX_DEVICES];
	size_t n_dev;
};

struct capacity {
	int64_t cpus_milli; /* CAP_AUTO until resolved */
	int64_t memory_mb; /* CAP_AUTO until resolved */
	int64_t reserved_cpus_milli;
	int64_t reserved_memory_mb;
	struct gpu_cfg gpus[CAP_MAX_GPUS];
	size_t n_gpus;
	bool cpus_detected, memory_detected; /* came from "auto" */
	int64_t cpu_window_s; /* CPU usage is averaged over this window */
	int64_t cpu_grace_s; /* usage above the reservation this long: cpu_over_allocation */
};

/* What a service reserves ("resources" in its spec); zero = not reserved. */
struct spec_resources {
	int64_t cpus_milli;
	int64_t memory_mb;
	int64_t tasks; /* live task budget; 0 = unlimited */
	int64_t gpu_count; /* "gpus": N */
	char gpu_ids[CAP_MAX_GPUS][GPU_ID_MAX + 1]; /* "gpus": ["gpu0", ...] */
	size_t n_gpu_ids;
};

bool gpu_id_valid(const char *s);
void capacity_defaults(struct capacity *c);
/* Parse "capacity" (at path "capacity" of file). */
void capacity_parse(struct json_object *obj, const char *file, struct capacity *c,
		    struct verr *e);
/* Detect "auto" values and resolve GPU device paths to major:minor. */
int capacity_resolve(struct capacity *c, const char *file, struct verr *e);
/* Parse a spec's "resources". */
void resources_parse(struct json_object *obj, const char *file, struct spec_resources *r,
		     struct verr *e);
struct json_object *resources_to_json(const struct spec_resources *r);
/* "2.5" style rendering of milli-CPUs. */
void milli_fmt(int64_t milli, char *buf, size_t len);
int64_t resources_gpus(const struct spec_resources *r);

/* ---- admission ---- */

struct admit_svc {
	const char *name;
	const struct spec_resources *res;
	bool changed; /* being applied now: admitted after the unchanged ones */
};

/*
 * Do the services fit capacity - reserved in every dimension (cpus, memory_mb, gpus)?
 * Services that did not change are admitted first, always (they hold what they have, even
 * when capacity shrank); then the changed ones in order; each that does not fit is refused:
 * "cpus: requested 3, free 2 of 7 (alpha 4, beta 1)". 0 or -ENOSPC (reasons in e).
 * label names the source of the error (file or service name).
 */
int admission_check(const struct capacity *cap, const struct admit_svc *svcs, size_t n,
		    struct verr *e);

#endif /* CAELUM_CAPACITY_H */
