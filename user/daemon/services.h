/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Registered services at run time: each has a cgroup <cgroup_root>/caelum/<name>, created
 * when the service is registered, whose id is the service's identity in the kernel
 * (cm_services, port owners). cgroup.events is watched with inotify so that the moment a
 * service's cgroup empties is seen (service_stopped).
 */
#ifndef CAELUM_SERVICES_H
#define CAELUM_SERVICES_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry.h"

struct probe;

#define SERVICES_SUBDIR "caelum"
#define CPU_SAMPLES	301 /* one per second: the longest window (300 s) plus one */

/* Samples of (time, on-CPU ns), one per second, oldest at head. */
struct cpu_window {
	uint64_t t[CPU_SAMPLES], ns[CPU_SAMPLES];
	unsigned int head, n;
};

struct svc_rt {
	char name[SERVICE_NAME_MAX + 1];
	char *cgroup;  /* absolute path (malloc'd); NULL until materialized */
	uint64_t cgid; /* CAELUM_CGID_NONE until the cgroup exists */
	/* spec key "cgroup": an existing cgroup caelumd follows but never makes, removes or
	 * moves processes into; named in the policy by its anchor (include/caelum/cgfollow.h) */
	bool followed;
	uint64_t anchor;
	uint16_t level;
	bool running;	     /* cgroup populated */
	int wd;		     /* inotify watch on cgroup.events, -1 when none */
	pid_t main_pid;	     /* as reported by caelumctl run */
	uint64_t started_ns; /* realtime */
	/* CPU usage window (resources.c), allocated once the service has used a CPU: a
	 * service that never ran costs no history (10,000 idle services stay small). */
	struct cpu_window *cpu;
	uint64_t cpu_zero_at_ns; /* last sample that found no CPU time yet (no window kept) */
	uint64_t over_since_ns;	 /* usage above the reservation since, 0 = not above */
	bool over_reported;
	/* cgroup v2 limits written for cpus, memory_mb, tasks (resources.c) */
	bool limit_written[3];
	/* health (health.c) */
	int health;	     /* HEALTH_STATE_* */
	int health_failures; /* consecutive */
	char *health_detail; /* the last probe's detail (malloc'd), NULL before one */
	uint64_t health_last_ns, health_since_ns;
	struct probe *health_probe;
};

enum health_state {
	HEALTH_STATE_UNKNOWN,
	HEALTH_STATE_PASSING,
	HEALTH_STATE_WARNING,
	HEALTH_STATE_CRITICAL
};

#define SVCS_MAX_INTERNAL 8

/* Caelum's own cgroups at service level (".probe", ".verify-..."): names no service can
 * have (they start with a dot), registered in cm_services so the programs treat them as
 * services, never shown as ones. */
struct svc_internal {
	char name[32];
	char cgroup[PATH_MAX];
	uint64_t cgid;
};

struct svcs {
	struct svc_rt *v;
	size_t n;
	struct svc_internal internal[SVCS_MAX_INTERNAL];
	size_t n_internal;
	char base[PATH_MAX]; /* <cgroup_root>/caelum */
	char root[PATH_MAX]; /* <cgroup_root> */
	char cg2_mount[PATH_MAX];
	unsigned int level; /* cgroup level of a service cgroup */
	int inotify_fd;
	int map_fd; /* cm_services */
};

/* State change seen by svcs_handle_inotify(). */
typedef void (*svcs_change_fn)(void *ctx, struct svc_rt *s, bool running);

int svcs_init(struct svcs *s, const char *cgroup_root, const char *cg2_mount,
	      unsigned int root_level);
void svcs_fini(struct svcs *s);
void svcs_set_map(struct svcs *s, int map_fd);
/* Create (or find) an internal cgroup <base>/<name> and register it; its id in *cgid. */
int svcs_internal(struct svcs *s, const char *name, uint64_t *cgid, const char **path);
/* Make the table match the registry: cgroups created, map entries added and removed. */
int svcs_reconcile(struct svcs *s, const struct reg_state *st);
struct svc_rt *svcs_find(const struct svcs *s, const char *name);
const char *svcs_name_of(void *s, uint64_t cgid);
int svcs_ident(void *s, const char *name, uint64_t *cgid, uint16_t *level);
/* The anchor of a followed service: CAELUM_CG_ANCHOR_BIT | FNV-1a 64 of its name. */
uint64_t svcs_anchor(const char *name);
/* Followed cgroups (spec key "cgroup") come and go under their manager: re-resolve each one's
 * id and population (cgroup.events) and report running <-> stopped transitions. Cheap
 * (one stat and one small read per followed service); called every loop tick. */
void svcs_poll_followed(struct svcs *s, svcs_change_fn fn, void *ctx);
/* Drain inotify and report running <-> stopped transitions. */
void svcs_handle_inotify(struct svcs *s, svcs_change_fn fn, void *ctx);
/* Re-read populated for one service (after caelumctl run moved into it). */
void svcs_refresh(struct svcs *s, struct svc_rt *rt, svcs_change_fn fn, void *ctx);
/* Is the cgroup2 path (relative to the mount, as in /proc/PID/cgroup) inside the service? */
bool svcs_path_inside(const struct svcs *s, const struct svc_rt *rt, const char *cg_rel);

#endif /* CAELUM_SERVICES_H */
