/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-side facts about programs, maps and links, as JSON (status, prog/map/link show). */
#ifndef CAELUM_BPFINFO_H
#define CAELUM_BPFINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

struct json_object *bpfinfo_prog(int fd);
/* entries are counted by walking the keys when count is set (hash maps). */
struct json_object *bpfinfo_map(int fd, bool count);
struct json_object *bpfinfo_link(int fd);
/* Is prog_id attached at the cgroup for attach_type, per BPF_PROG_QUERY? */
bool bpfinfo_attached(int cg_fd, int attach_type, uint32_t prog_id);
uint32_t bpfinfo_prog_id(int fd);
/* Does the link still hold a program (not detached)? */
bool bpfinfo_link_alive(int fd);
/* The map in slot 0 of an array-of-maps, as a new fd (or -errno). */
int bpfinfo_inner_map_fd(int outer_fd);
/* Is kernel.bpf_stats_enabled on (run_time_ns/run_cnt are only counted then)? */
bool bpfinfo_stats_enabled(void);

/* Sum over CPUs of a per-CPU array's u64 value at key (cm_stats counters); 0 on error. */
uint64_t bpfinfo_percpu_sum(int map_fd, uint32_t key);

#endif /* CAELUM_BPFINFO_H */
