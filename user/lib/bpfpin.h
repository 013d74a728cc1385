/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pinned objects under the configured bpffs directory:
 *   <bpffs>/maps/<map name>     every map shared by the programs (pinned by name by libbpf)
 *   <bpffs>/links/<prog name>   one cgroup link per program
 * Links live as long as their pin: enforcement survives caelumd being killed. A new caelumd
 * swaps its freshly loaded program into the pinned link (BPF_LINK_UPDATE): no gap, no
 * second attachment.
 */
#ifndef CAELUM_BPFPIN_H
#define CAELUM_BPFPIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

struct bpf_env {
	char root[PATH_MAX];  /* <bpffs> */
	char maps[PATH_MAX];  /* <bpffs>/maps */
	char links[PATH_MAX]; /* <bpffs>/links */
	int cg_fd;	      /* cgroup_root, where programs attach */
	uint64_t cg_id;
	unsigned int ringbuf_bytes; /* size of the shared ring buffer cm_events */
};

struct bpf_object;
/* Size the shared maps of obj as configured (call between open and load): every object
 * declares them, and pinned maps are only reused when their parameters match. */
int bpf_env_size_shared(const struct bpf_env *env, struct bpf_object *obj);

/*
 * The lifecycle's first half for a bpftool skeleton <stem>_bpf (ports, agg, cpu, ...):
 * open with the shared maps pinned under env->maps (reused when present), size them as
 * configured, load. *skelp is set (NULL if open failed); 0 or -errno, reason logged.
 * A macro because every skeleton has its own types.
 */
#define BPF_SKEL_OPEN_LOAD(env, stem, skelp)                                                       \
	({                                                                                         \
		LIBBPF_OPTS(bpf_object_open_opts, _opts, .pin_root_path = (env)->maps);            \
		int _err;                                                                          \
                                                                                                   \
		*(skelp) = stem##_bpf__open_opts(&_opts);                                          \
		_err = *(skelp) ? bpf_env_size_shared(env, (*(skelp))->obj) : -errno;              \
		if (*(skelp) && !_err)                                                             \
			_err = stem##_bpf__load(*(skelp));                                         \
		if (_err)                                                                          \
			bpf_skel_load_failed(#stem, *(skelp) != NULL, _err, env);                  \
		_err;                                                                              \
	})
/* The message of BPF_SKEL_OPEN_LOAD's failures. */
void bpf_skel_load_failed(const char *stem, bool opened, int err, const struct bpf_env *env);

/* Make sure dir is on a bpffs (mounting one if needed) and create maps/ and links/. */
int bpf_env_open(struct bpf_env *env, const char *bpffs, const char *cgroup_root,
		 unsigned int ringbuf_bytes);
void bpf_env_close(struct bpf_env *env);
bool path_is_bpffs(const char *path);

enum link_outcome { LINK_CREATED, LINK_UPDATED, LINK_MOVED };

/*
 * Attach prog_fd at env->cg_fd through the link pinned at links/<name>: update it in place
 * when it is attached to this cgroup, otherwise attach a new link, re-pin, and detach the
 * old one (cgroup_root changed, or the old link went defunct). Returns the link fd.
 */
int link_install(const struct bpf_env *env, const char *name, int prog_fd, int attach_type,
		 enum link_outcome *outcome);
const char *link_outcome_name(enum link_outcome o);
/*
 * Tracing links (tp_btf) cannot be updated in place: attach the new program, re-pin over
 * links/<name>, then detach the old link. The programs are written so that running twice
 * for a moment is harmless. Returns the link fd.
 */
int link_install_tracing(const struct bpf_env *env, const char *name, int prog_fd,
			 enum link_outcome *outcome);

#endif /* CAELUM_BPFPIN_H */
