/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Host capacity ("capacity" in caelum.json) and the admission arithmetic that keeps the
 * services' reservations inside it.
 *
 *   "capacity": {"cpus": "auto", "memory_mb": "auto",
 *                "gpus": [{"id": "gpu0", "devices": ["/dev/nvidia0"]}],
 *                "reserved": {"cpus": 1, "memory_mb": 1024},
 *                "egress_mbit": "auto", "ingress_mbit": 1000}
 *
 * CPUs are counted in milli-CPUs throughout (2.5 CPUs = 2500) so that fractions add up
 * exactly, bandwidth in kbit/s (20.5 Mbit/s = 20500). "auto" is detected when the config is
 * resolved (online CPUs, MemTotal; bandwidth: the sum of the link speeds of the interfaces
 * that are up and report one, /sys/class/net/<if>/speed; unknown when none does, and then
 * a service asking for bandwidth is refused until the capacity is configured).
 * Allocatable = capacity - reserved. GPUs are exclusive: one service per GPU.
 */
#ifndef CAELUM_CAPACITY_H
#define CAELUM_CAPACITY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonv.h"

#define CAP_AUTO	-1
#define CAP_UNKNOWN	-2 /* "auto" found nothing to detect (bandwidth: no link speed known) */
#define CAP_MAX_GPUS	16
#define GPU_MAX_DEVICES 8
#define GPU_ID_MAX	31

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
	int64_t memory_mb;  /* CAP_AUTO until resolved */
	int64_t reserved_cpus_milli;
	int64_t reserved_memory_mb;
	struct gpu_cfg gpus[CAP_MAX_GPUS];
	size_t n_gpus;
	/* Bandwidth in kbit/s (1 Mbit/s = 1000): CAP_AUTO until resolved, CAP_UNKNOWN when
	 * "auto" found no interface with a known link speed. */
	int64_t egress_kbit, ingress_kbit;
	bool cpus_detected, memory_detected, egress_detected, ingress_detected; /* from "auto" */
	int64_t cpu_window_s; /* CPU usage is averaged over this window */
	int64_t cpu_grace_s;  /* usage above the reservation this long: cpu_over_allocation */
};

/* What a service reserves ("resources" in its spec); zero = not reserved. */
struct spec_resources {
	int64_t cpus_milli;
	int64_t memory_mb;
	int64_t tasks;	   /* live task budget; 0 = unlimited */
	int64_t gpu_count; /* "gpus": N */
	/* "gpus": ["gpu0", ...]: n_gpu_ids ids (at most CAP_MAX_GPUS), malloc'd; NULL when the
	 * spec lists none (most services: 10,000 of them would otherwise carry 5 MB of empty
	 * rows). Copied by resources_copy(), freed by resources_free(). */
	char (*gpu_ids)[GPU_ID_MAX + 1];
	size_t n_gpu_ids;
	int64_t egress_kbit; /* "egress_mbit" in kbit/s (20 Mbit/s = 20000); 0 = not limited */
	int64_t ingress_kbit;
};

bool gpu_id_valid(const char *s);
void capacity_defaults(struct capacity *c);
/* Parse "capacity" (at path "capacity" of file). */
void capacity_parse(struct json_object *obj, const char *file, struct capacity *c, struct verr *e);
/* Sum of the link speeds (Mbit/s) of the interfaces under sys_class_net that are up and
 * report one (drivers say -1 or nothing when unknown: virtio, veth, lo); -1 when none does. */
int64_t capacity_link_speed_mbit(const char *sys_class_net);
/* Detect "auto" values and resolve GPU device paths to major:minor. */
int capacity_resolve(struct capacity *c, const char *file, struct verr *e);
/* Parse a spec's "resources". */
void resources_parse(struct json_object *obj, const char *file, struct spec_resources *r,
		     struct verr *e);
struct json_object *resources_to_json(const struct spec_resources *r);
/* dst = src with its own copy of the GPU ids; 0 or -ENOMEM (then dst holds no ids). */
int resources_copy(struct spec_resources *dst, const struct spec_resources *src);
/* Free the GPU ids; r holds none afterwards. */
void resources_free(struct spec_resources *r);
/* The same reservation (every field, GPU ids by value)? */
bool resources_equal(const struct spec_resources *a, const struct spec_resources *b);
/* Anything reserved at all (a spec without "resources" reserves nothing)? */
bool resources_any(const struct spec_resources *r);
/* A bandwidth in kbit/s as its Mbit/s JSON number (20000 -> 20, 20500 -> 20.5). */
struct json_object *mbit_json(int64_t kbit);
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
 * Do the services fit capacity - reserved in every dimension (cpus, memory_mb, gpus,
 * egress_mbit, ingress_mbit)?
 * Services that did not change are admitted first, always (they hold what they have, even
 * when capacity shrank); then the changed ones in order; each that does not fit is refused:
 * "cpus: requested 3, free 2 of 7 (alpha 4, beta 1)". 0 or -ENOSPC (reasons in e).
 * label names the source of the error (file or service name).
 */
int admission_check(const struct capacity *cap, const struct admit_svc *svcs, size_t n,
		    struct verr *e);

#endif /* CAELUM_CAPACITY_H */
