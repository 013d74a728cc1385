/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The loader shape every component shares, folded into one place: its BPF object and the
 * links of its programs. A component's state starts with a struct comp_bpf (first member),
 * so that the ops below that take void *self serve every component's table entry as they
 * are (.progs = comp_bpf_progs, .object = comp_bpf_object).
 *
 *   load:    COMP_BPF_NEW() (the state allocated, its skeleton opened and loaded), then
 *            comp_bpf_add() per program, in the order status lists them
 *   attach:  comp_bpf_attach(): each program through its pinned link (link_install for a
 *            cgroup program, link_install_tracing for tp_btf), the new fd replacing the old
 *   close:   comp_bpf_close(): the fds caelumd holds (the pins keep the links attached);
 *            the skeleton is the component's to destroy
 */
#ifndef CAELUM_COMP_BPF_H
#define CAELUM_COMP_BPF_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "bpfpin.h"
#include "component.h"

struct bpf_object;
struct bpf_program;

/* One program and the link caelumd holds for it. */
struct comp_link {
	struct bpf_program *prog;
	int attach_type;	   /* enum bpf_attach_type: BPF_CGROUP_* or BPF_TRACE_RAW_TP */
	bool tracing;		   /* tp_btf (link_install_tracing); else at the cgroup root */
	int fd;			   /* -1 until attached */
	enum link_outcome outcome; /* how the last attach installed it */
};

struct comp_bpf {
	struct bpf_object *obj; /* NULL until loaded */
	struct comp_link links[COMP_MAX_PROGS];
	size_t n_links;
};

/*
 * The load step for a component state type whose first member is `struct comp_bpf bpf` and
 * which holds the skeleton <stem>_bpf in `skel`: *statep = a zeroed state, its skeleton
 * opened with the shared maps pinned and sized, and loaded (BPF_SKEL_OPEN_LOAD), its object
 * recorded, no programs listed yet. 0, or -errno (reason logged; *statep NULL, nothing left
 * over). A macro because every skeleton has its own types.
 */
#define COMP_BPF_NEW(env, stem, statep)                                                            \
	({                                                                                         \
		int _err = -ENOMEM;                                                                \
                                                                                                   \
		*(statep) = calloc(1, sizeof(**(statep)));                                         \
		if (*(statep)) {                                                                   \
			comp_bpf_init(&(*(statep))->bpf);                                          \
			_err = BPF_SKEL_OPEN_LOAD(env, stem, &(*(statep))->skel);                  \
			if (_err) {                                                                \
				stem##_bpf__destroy((*(statep))->skel);                            \
				free(*(statep));                                                   \
				*(statep) = NULL;                                                  \
			} else {                                                                   \
				comp_bpf_set(&(*(statep))->bpf, (*(statep))->skel->obj);           \
			}                                                                          \
		}                                                                                  \
		_err;                                                                              \
	})

/* No object, no programs. */
void comp_bpf_init(struct comp_bpf *b);
/* The loaded object (its pinned maps are checked by the integrity check). */
void comp_bpf_set(struct comp_bpf *b, struct bpf_object *obj);
/* Append prog, attached at the cgroup root as attach_type, or as a tp_btf program when
 * tracing (attach_type is then BPF_TRACE_RAW_TP, for status). Its index is the order of the
 * calls. 0, or -E2BIG past COMP_MAX_PROGS. */
int comp_bpf_add(struct comp_bpf *b, struct bpf_program *prog, int attach_type, bool tracing);
/*
 * Create or replace every program's pinned link (links/<program name>), starting with the
 * program at index first and going on in index order, wrapping (an order a component's
 * programs may need during an upgrade, connect.c). A link that is replaced keeps running the
 * old program until the new one is in. 0, or the first failure's -errno (the programs before
 * it are attached).
 */
int comp_bpf_attach(struct comp_bpf *b, const struct bpf_env *env, size_t first);
/* Close the link fds caelumd holds; the pins keep the links attached. */
void comp_bpf_close(struct comp_bpf *b);
/* The link fd of program idx, or -1 (not attached, or no such program). */
int comp_bpf_link_fd(const struct comp_bpf *b, size_t idx);

/* component_ops.progs for a state that starts with a struct comp_bpf. */
size_t comp_bpf_progs(void *self, struct comp_prog *out, size_t max);
/* component_ops.object for a state that starts with a struct comp_bpf: its one object. */
struct bpf_object *comp_bpf_object(void *self, size_t i);

#endif /* CAELUM_COMP_BPF_H */
