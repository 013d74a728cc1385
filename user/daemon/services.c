// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "caelum/cgfollow.h"
#include "caelum/common.h"
#include "cgroup.h"
#include "log.h"
#include "services.h"
#include "sorted.h"

int svcs_init(struct svcs *s, const char *cgroup_root, const char *cg2_mount,
	      unsigned int root_level)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->map_fd = -1;
	snprintf(s->base, sizeof(s->base), "%s/" SERVICES_SUBDIR, cgroup_root);
	snprintf(s->root, sizeof(s->root), "%s", cgroup_root);
	snprintf(s->cg2_mount, sizeof(s->cg2_mount), "%s", cg2_mount);
	s->level = root_level + 2;
	err = cgroup_mkdir(s->base);
	if (err) {
		p_err("failed to create cgroup '%s': %s", s->base, strerror(-err));
		return err;
	}
	s->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->inotify_fd < 0) {
		err = -errno;
		p_err("failed to create inotify instance: %s", strerror(errno));
	}
	return err;
}

static void rt_free(struct svc_rt *rt)
{
	free(rt->cgroup);
	free(rt->cpu);
	free(rt->health_detail);
	rt->cgroup = NULL;
	rt->cpu = NULL;
	rt->health_detail = NULL;
}

void svcs_fini(struct svcs *s)
{
	if (s->inotify_fd >= 0)
		close(s->inotify_fd);
	for (size_t i = 0; i < s->n; i++)
		rt_free(&s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
	s->inotify_fd = -1;
}

void svcs_set_map(struct svcs *s, int map_fd)
{
	s->map_fd = map_fd;
}

static int rt_name_cmp(const void *elem, const void *key)
{
	return strcmp(((const struct svc_rt *)elem)->name, key);
}

/* s->v is in the registry's order (sorted by name): a binary search, -1 if absent. */
static ssize_t svcs_index(const struct svcs *s, const char *name)
{
	bool found;
	size_t i = sorted_find(s->v, s->n, sizeof(*s->v), name, rt_name_cmp, &found);

	return found ? (ssize_t)i : -1;
}

struct svc_rt *svcs_find(const struct svcs *s, const char *name)
{
	ssize_t i = svcs_index(s, name);

	return i < 0 ? NULL : &s->v[i];
}

const char *svcs_name_of(void *ctx, uint64_t cgid)
{
	const struct svcs *s = ctx;

	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].cgid == cgid && cgid != CAELUM_CGID_NONE)
			return s->v[i].name;
	return NULL;
}

uint64_t svcs_anchor(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *c = name; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
	return CAELUM_CG_ANCHOR_BIT | (h & ~CAELUM_CG_ANCHOR_BIT);
}

int svcs_ident(void *ctx, const char *name, uint64_t *cgid, uint16_t *level)
{
	const struct svcs *s = ctx;
	const struct svc_rt *rt = svcs_find(s, name);

	*cgid = rt ? (rt->followed ? rt->anchor : rt->cgid) : CAELUM_CGID_NONE;
	*level = rt ? rt->level : 0;
	/* Caelum's own cgroups (names with a leading dot) own the verification canaries. */
	for (size_t i = 0; !rt && i < s->n_internal; i++) {
		if (strcmp(s->internal[i].name, name))
			continue;
		*cgid = s->internal[i].cgid;
		*level = (uint16_t)s->level;
	}
	return 0;
}

/* A followed cgroup: found, never made; it may not exist yet (then it owns its ports from
 * the moment it is made, through the kernel's mkdir hook). */
static int svc_follow(struct svcs *s, struct svc_rt *rt, const char *rel)
{
	int level;

	free(rt->cgroup); /* the path may have changed with the spec */
	if (asprintf(&rt->cgroup, "%s/%s", s->root, rel) < 0) {
		rt->cgroup = NULL;
		return -ENOMEM;
	}
	rt->followed = true;
	rt->anchor = svcs_anchor(rt->name);
	level = cgroup_level(s->cg2_mount, rt->cgroup);
	if (level < 0)
		return level;
	rt->level = (uint16_t)level;
	if (cgroup_id(rt->cgroup, &rt->cgid))
		rt->cgid = CAELUM_CGID_NONE;
	rt->running = rt->cgid != CAELUM_CGID_NONE && cgroup_populated(rt->cgroup) == 1;
	return 0;
}

/* Create (or find) the service's cgroup and start watching it. */
static int svc_materialize(struct svcs *s, struct svc_rt *rt)
{
	char events[PATH_MAX + 16];
	int err, pop;

	if (rt->followed) { /* no longer its manager's: ours, under <base> */
		free(rt->cgroup);
		rt->cgroup = NULL;
		rt->followed = false;
	}
	if (!rt->cgroup && asprintf(&rt->cgroup, "%s/%s", s->base, rt->name) < 0) {
		rt->cgroup = NULL;
		rt->cgid = CAELUM_CGID_NONE;
		return -ENOMEM;
	}
	err = cgroup_mkdir(rt->cgroup);
	if (!err)
		err = cgroup_id(rt->cgroup, &rt->cgid);
	if (err) {
		p_err("failed to create cgroup '%s': %s", rt->cgroup, strerror(-err));
		rt->cgid = CAELUM_CGID_NONE;
		return err;
	}
	rt->level = (uint16_t)s->level;
	if (rt->wd < 0) {
		snprintf(events, sizeof(events), "%s/cgroup.events", rt->cgroup);
		rt->wd = inotify_add_watch(s->inotify_fd, events, IN_MODIFY);
		if (rt->wd < 0)
			p_warn("failed to watch '%s': %s", events, strerror(errno));
	}
	pop = cgroup_populated(rt->cgroup);
	rt->running = pop == 1;
	return 0;
}

static int map_sync_add(struct svcs *s, const struct svc_rt *rt)
{
	struct caelum_service v = { .flags = CAELUM_SVC_F_REGISTERED };

	if (s->map_fd < 0 || rt->cgid == CAELUM_CGID_NONE)
		return 0;
	if (bpf_map_update_elem(s->map_fd, &rt->cgid, &v, BPF_ANY)) {
		p_err("failed to add service '%s' to cm_services: %s", rt->name, strerror(errno));
		return -errno;
	}
	return 0;
}

/* A service left the registry: forget it; its cgroup goes too when empty. */
static void svc_retire(struct svcs *s, struct svc_rt *rt)
{
	if (s->map_fd >= 0 && rt->cgid != CAELUM_CGID_NONE)
		bpf_map_delete_elem(s->map_fd, &rt->cgid);
	if (rt->wd >= 0)
		inotify_rm_watch(s->inotify_fd, rt->wd);
	if (rt->followed) {
		rt_free(rt);
		return; /* its manager's, never ours to remove */
	}
	if (rt->cgroup && rmdir(rt->cgroup) && errno != ENOENT)
		p_warn("cgroup '%s' of deleted service '%s' kept: %s", rt->cgroup, rt->name,
		       strerror(errno));
	rt_free(rt);
}

static bool is_internal(const struct svcs *s, uint64_t cgid)
{
	for (size_t i = 0; i < s->n_internal; i++)
		if (s->internal[i].cgid == cgid)
			return true;
	return false;
}

int svcs_internal(struct svcs *s, const char *name, uint64_t *cgid, const char **path)
{
	struct caelum_service v = { .flags = CAELUM_SVC_F_REGISTERED | CAELUM_SVC_F_INTERNAL };
	struct svc_internal *in = NULL;
	int err;

	for (size_t i = 0; i < s->n_internal && !in; i++)
		if (!strcmp(s->internal[i].name, name))
			in = &s->internal[i];
	if (!in) {
		if (s->n_internal == SVCS_MAX_INTERNAL)
			return -ENOSPC;
		in = &s->internal[s->n_internal++];
		snprintf(in->name, sizeof(in->name), "%s", name);
		snprintf(in->cgroup, sizeof(in->cgroup), "%s/%s", s->base, name);
	}
	err = cgroup_mkdir(in->cgroup);
	if (!err)
		err = cgroup_id(in->cgroup, &in->cgid);
	if (!err && s->map_fd >= 0 && bpf_map_update_elem(s->map_fd, &in->cgid, &v, BPF_ANY))
		err = -errno;
	if (err) {
		p_err("failed to set up cgroup '%s': %s", in->cgroup, strerror(-err));
		return err;
	}
	*cgid = in->cgid;
	if (path)
		*path = in->cgroup;
	return 0;
}

/* Entries of cm_services that no service owns any more (left by an earlier run). */
static void map_prune(struct svcs *s)
{
	__u64 key, next, *prev = NULL;

	if (s->map_fd < 0)
		return;
	while (!bpf_map_get_next_key(s->map_fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!svcs_name_of(s, key) && !is_internal(s, key)) {
			bpf_map_delete_elem(s->map_fd, &key);
			prev = NULL; /* restart: deleting can reorder the walk */
		}
	}
}

int svcs_reconcile(struct svcs *s, const struct reg_state *st)
{
	struct svc_rt *v = calloc(st->n_svcs + 1, sizeof(*v));
	bool *taken = calloc(s->n + 1, sizeof(*taken));
	int err = 0;

	if (!v || !taken) {
		free(v);
		free(taken);
		return -ENOMEM;
	}
	for (size_t i = 0; i < st->n_svcs; i++) {
		ssize_t old = svcs_index(s, st->svcs[i].spec.name);

		if (old >= 0) {
			v[i] = s->v[old];
			taken[old] = true;
		} else {
			snprintf(v[i].name, sizeof(v[i].name), "%s", st->svcs[i].spec.name);
			v[i].wd = -1;
		}
		if (st->svcs[i].spec.cgroup[0]) {
			if (svc_follow(s, &v[i], st->svcs[i].spec.cgroup) && !err)
				err = -EIO;
		} else if (svc_materialize(s, &v[i]) && !err) {
			err = -EIO;
		}
		if (map_sync_add(s, &v[i]) && !err)
			err = -EIO;
	}
	for (size_t i = 0; i < s->n; i++)
		if (!taken[i])
			svc_retire(s, &s->v[i]);
	free(taken);
	free(s->v);
	s->v = v;
	s->n = st->n_svcs;
	map_prune(s);
	return err;
}

void svcs_refresh(struct svcs *s, struct svc_rt *rt, svcs_change_fn fn, void *ctx)
{
	bool running = cgroup_populated(rt->cgroup) == 1;

	(void)s;
	if (running == rt->running)
		return;
	rt->running = running;
	fn(ctx, rt, running);
}

void svcs_handle_inotify(struct svcs *s, svcs_change_fn fn, void *ctx)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;

	while ((len = read(s->inotify_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ie = (struct inotify_event *)p;

			for (size_t i = 0; i < s->n; i++)
				if (s->v[i].wd == ie->wd)
					svcs_refresh(s, &s->v[i], fn, ctx);
			p += sizeof(*ie) + ie->len;
		}
	}
}

bool svcs_path_inside(const struct svcs *s, const struct svc_rt *rt, const char *cg_rel)
{
	const char *rel = rt->cgroup + strlen(s->cg2_mount);
	size_t len = strlen(rel);

	/* cgroup_root may be the mount itself: then rel already starts with '/'. */
	return !strncmp(cg_rel, rel, len) && (cg_rel[len] == '\0' || cg_rel[len] == '/');
}

void svcs_poll_followed(struct svcs *s, svcs_change_fn fn, void *ctx)
{
	for (size_t i = 0; i < s->n; i++) {
		struct svc_rt *rt = &s->v[i];
		uint64_t id = CAELUM_CGID_NONE;
		bool running;

		if (!rt->followed)
			continue;
		if (cgroup_id(rt->cgroup, &id))
			id = CAELUM_CGID_NONE;
		rt->cgid = id; /* events name it; the kernel already follows it (cm_cg_alias) */
		running = id != CAELUM_CGID_NONE && cgroup_populated(rt->cgroup) == 1;
		if (running == rt->running)
			continue;
		rt->running = running;
		fn(ctx, rt, running);
	}
}
