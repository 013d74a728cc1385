// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caelum/cgfollow.h"
#include "cgfollow_user.h"
#include "cgfollow.skel.h"
#include "comp_bpf.h"
#include "log.h"
#include "services.h"

struct cgfollow {
	struct comp_bpf bpf;
	struct cgfollow_bpf *skel;
};

void cgfollow_close(struct cgfollow *f)
{
	if (!f)
		return;
	comp_bpf_close(&f->bpf);
	cgfollow_bpf__destroy(f->skel);
	free(f);
}

int cgfollow_setup(const struct bpf_env *env, struct cgfollow **out)
{
	struct cgfollow *f;
	int err = COMP_BPF_NEW(env, cgfollow, &f);

	if (!err) {
		comp_bpf_add(&f->bpf, f->skel->progs.cm_cg_mkdir, BPF_TRACE_RAW_TP, true);
		comp_bpf_add(&f->bpf, f->skel->progs.cm_cg_rmdir, BPF_TRACE_RAW_TP, true);
		err = comp_bpf_attach(&f->bpf, env, 0);
		if (err)
			cgfollow_close(f);
	}
	if (err) {
		p_err("failed to set up cgroup following (tp_btf/cgroup_mkdir): %s",
		      strerror(-err));
		return err;
	}
	*out = f;
	return 0;
}

static bool anchor_wanted(const struct svcs *s, uint64_t anchor)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].followed && s->v[i].anchor == anchor)
			return true;
	return false;
}

/* The path as the kernel's cgroup_mkdir tracepoint prints it: relative to the mount. */
static int path_key(const struct svcs *s, const struct svc_rt *rt, struct caelum_cg_path *k)
{
	const char *rel = rt->cgroup + strlen(s->cg2_mount);

	memset(k, 0, sizeof(*k));
	if (strlen(rel) >= sizeof(k->path))
		return -ENAMETOOLONG;
	strcpy(k->path, rel);
	return 0;
}

static void prune(int follow_fd, int alias_fd, const struct svcs *s)
{
	struct caelum_cg_path pk, pnext, *pprev = NULL;
	__u64 key, next, *prev = NULL, anchor;

	while (!bpf_map_get_next_key(follow_fd, pprev, &pnext)) {
		pk = pnext;
		pprev = &pk;
		if (!bpf_map_lookup_elem(follow_fd, &pk, &anchor) && anchor_wanted(s, anchor))
			continue;
		bpf_map_delete_elem(follow_fd, &pk);
		pprev = NULL;
	}
	while (!bpf_map_get_next_key(alias_fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(alias_fd, &key, &anchor) && anchor_wanted(s, anchor))
			continue;
		bpf_map_delete_elem(alias_fd, &key);
		prev = NULL;
	}
}

int cgfollow_sync(struct cgfollow *f, const struct svcs *s)
{
	int follow_fd = bpf_map__fd(f->skel->maps.cm_cg_follow);
	int alias_fd = bpf_map__fd(f->skel->maps.cm_cg_alias);
	int err = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct svc_rt *rt = &s->v[i];
		struct caelum_cg_path k;

		if (!rt->followed)
			continue;
		if (path_key(s, rt, &k)) {
			p_err("service '%s': cgroup path '%s' is too long to follow in the kernel "
			      "(at most %d characters below the cgroup2 mount)",
			      rt->name, rt->cgroup, CAELUM_CG_PATH_MAX - 1);
			err = -ENAMETOOLONG;
			continue;
		}
		if (bpf_map_update_elem(follow_fd, &k, &rt->anchor, BPF_ANY) ||
		    (rt->cgid != CAELUM_CGID_NONE &&
		     bpf_map_update_elem(alias_fd, &rt->cgid, &rt->anchor, BPF_ANY))) {
			err = -errno;
			p_err("failed to follow cgroup '%s' of service '%s': %s", rt->cgroup,
			      rt->name, strerror(errno));
		}
	}
	prune(follow_fd, alias_fd, s);
	return err;
}
