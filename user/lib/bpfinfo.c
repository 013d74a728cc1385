// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"

#define MAX_QUERY_PROGS 64

static struct json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

struct json_object *bpfinfo_prog(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	struct json_object *o;
	char tag[BPF_TAG_SIZE * 2 + 1];

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return NULL;
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		sprintf(tag + 2 * i, "%02x", info.tag[i]);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(info.id));
	json_object_object_add(o, "name", json_object_new_string(info.name));
	json_object_object_add(o, "type", str_or_null(libbpf_bpf_prog_type_str(info.type)));
	json_object_object_add(o, "tag", json_object_new_string(tag));
	json_object_object_add(o, "run_time_ns", json_object_new_uint64(info.run_time_ns));
	json_object_object_add(o, "run_cnt", json_object_new_uint64(info.run_cnt));
	json_object_object_add(o, "verified_insns", json_object_new_int64(info.verified_insns));
	json_object_object_add(o, "nr_map_ids", json_object_new_int64(info.nr_map_ids));
	return o;
}

uint32_t bpfinfo_prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static long long count_entries(int fd, __u32 key_size)
{
	char *key = calloc(2, key_size ? key_size : 1), *next;
	long long n = 0;
	void *prev = NULL;

	if (!key)
		return -1;
	next = key + key_size;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	free(key);
	return n;
}

struct json_object *bpfinfo_map(int fd, bool count)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct json_object *o;
	bool hashed;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(info.id));
	json_object_object_add(o, "name", json_object_new_string(info.name));
	json_object_object_add(o, "type", str_or_null(libbpf_bpf_map_type_str(info.type)));
	json_object_object_add(o, "key_size", json_object_new_int64(info.key_size));
	json_object_object_add(o, "value_size", json_object_new_int64(info.value_size));
	json_object_object_add(o, "max_entries", json_object_new_int64(info.max_entries));
	json_object_object_add(o, "flags", json_object_new_int64(info.map_flags));
	hashed = info.type == BPF_MAP_TYPE_HASH || info.type == BPF_MAP_TYPE_LRU_HASH ||
		 info.type == BPF_MAP_TYPE_PERCPU_HASH;
	if (count && hashed)
		json_object_object_add(o, "entries",
				       json_object_new_int64(count_entries(fd, info.key_size)));
	else if (info.type == BPF_MAP_TYPE_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_ARRAY ||
		 info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS)
		json_object_object_add(o, "entries", json_object_new_int64(info.max_entries));
	return o;
}

struct json_object *bpfinfo_link(int fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	struct json_object *o;
	char tp[128] = "";

	/* Raw tracepoint links hand back their tracepoint's name into our buffer. */
	info.raw_tracepoint.tp_name = (__u64)(unsigned long)tp;
	info.raw_tracepoint.tp_name_len = sizeof(tp);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(info.id));
	json_object_object_add(o, "type", str_or_null(libbpf_bpf_link_type_str(info.type)));
	json_object_object_add(o, "prog_id", json_object_new_int64(info.prog_id));
	if (info.type == BPF_LINK_TYPE_CGROUP) {
		json_object_object_add(o, "cgroup_id",
				       json_object_new_uint64(info.cgroup.cgroup_id));
		json_object_object_add(
			o, "attach_type",
			str_or_null(libbpf_bpf_attach_type_str(info.cgroup.attach_type)));
		/* A link whose cgroup went away is defunct: it enforces nothing. */
		json_object_object_add(o, "defunct",
				       json_object_new_boolean(!info.cgroup.cgroup_id));
	} else if (info.type == BPF_LINK_TYPE_RAW_TRACEPOINT) {
		json_object_object_add(o, "tracepoint", json_object_new_string(tp));
		json_object_object_add(o, "defunct", json_object_new_boolean(!info.prog_id));
	}
	return o;
}

bool bpfinfo_link_alive(int fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	return fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len) && info.prog_id != 0;
}

bool bpfinfo_attached(int cg_fd, int attach_type, uint32_t prog_id)
{
	__u32 ids[MAX_QUERY_PROGS], cnt = MAX_QUERY_PROGS, flags = 0;

	if (!prog_id || bpf_prog_query(cg_fd, attach_type, 0, &flags, ids, &cnt))
		return false;
	for (__u32 i = 0; i < cnt; i++)
		if (ids[i] == prog_id)
			return true;
	return false;
}

int bpfinfo_inner_map_fd(int outer_fd)
{
	__u32 zero = 0, id = 0;
	int fd;

	if (bpf_map_lookup_elem(outer_fd, &zero, &id))
		return -errno;
	fd = bpf_map_get_fd_by_id(id);
	return fd < 0 ? -errno : fd;
}

bool bpfinfo_stats_enabled(void)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	int v = 0;

	if (!f)
		return false;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v != 0;
}

uint64_t bpfinfo_percpu_sum(int map_fd, uint32_t key)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals, sum = 0;

	if (ncpu <= 0)
		return 0;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (vals && !bpf_map_lookup_elem(map_fd, &key, vals))
		for (int i = 0; i < ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}
