// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "comp_bpf.h"
#include "log.h"

void comp_bpf_init(struct comp_bpf *b)
{
	b->obj = NULL;
	b->n_links = 0;
	for (size_t i = 0; i < COMP_MAX_PROGS; i++)
		b->links[i] = (struct comp_link){ .fd = -1 };
}

void comp_bpf_set(struct comp_bpf *b, struct bpf_object *obj)
{
	b->obj = obj;
}

int comp_bpf_add(struct comp_bpf *b, struct bpf_program *prog, int attach_type, bool tracing)
{
	if (b->n_links >= COMP_MAX_PROGS)
		return -E2BIG;
	b->links[b->n_links++] = (struct comp_link){
		.prog = prog, .attach_type = attach_type, .tracing = tracing, .fd = -1
	};
	return 0;
}

static int link_attach(struct comp_link *l, const struct bpf_env *env)
{
	const char *name = bpf_program__name(l->prog);
	int fd;

	if (l->tracing)
		fd = link_install_tracing(env, name, bpf_program__fd(l->prog), &l->outcome);
	else
		fd = link_install(env, name, bpf_program__fd(l->prog), l->attach_type, &l->outcome);
	if (fd < 0)
		return fd;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	p_debug("link %s: %s", name, link_outcome_name(l->outcome));
	return 0;
}

int comp_bpf_attach(struct comp_bpf *b, const struct bpf_env *env, size_t first)
{
	for (size_t k = 0; k < b->n_links; k++) {
		int err = link_attach(&b->links[(first + k) % b->n_links], env);

		if (err)
			return err;
	}
	return 0;
}

void comp_bpf_close(struct comp_bpf *b)
{
	for (size_t i = 0; i < b->n_links; i++) {
		if (b->links[i].fd >= 0)
			close(b->links[i].fd);
		b->links[i].fd = -1;
	}
}

int comp_bpf_link_fd(const struct comp_bpf *b, size_t idx)
{
	return idx < b->n_links ? b->links[idx].fd : -1;
}

size_t comp_bpf_progs(void *self, struct comp_prog *out, size_t max)
{
	const struct comp_bpf *b = self;
	size_t n = 0;

	for (; n < b->n_links && n < max; n++) {
		const struct comp_link *l = &b->links[n];

		out[n] = (struct comp_prog){ bpf_program__name(l->prog),
					     bpf_program__fd(l->prog),
					     l->fd,
					     l->attach_type,
					     !l->tracing,
					     link_outcome_name(l->outcome) };
	}
	return n;
}

struct bpf_object *comp_bpf_object(void *self, size_t i)
{
	return i == 0 ? ((struct comp_bpf *)self)->obj : NULL;
}
