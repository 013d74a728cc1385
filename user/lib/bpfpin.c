// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpfpin.h"
#include "cgroup.h"
#include "fsutil.h"
#include "log.h"

#define BPFFS_DEFAULT "/sys/fs/bpf"

bool path_is_bpffs(const char *path)
{
	struct statfs sf;

	return !statfs(path, &sf) && sf.f_type == BPF_FS_MAGIC;
}

/* Deepest existing ancestor of path (path itself included). */
static void existing_ancestor(const char *path, char *buf, size_t len)
{
	struct stat st;

	snprintf(buf, len, "%s", path);
	while (stat(buf, &st)) {
		char *slash = strrchr(buf, '/');

		if (!slash || slash == buf) {
			strcpy(buf, "/");
			return;
		}
		*slash = '\0';
	}
}

/* bpffs is not mounted at boot here: mount one at /sys/fs/bpf, or at dir itself. */
static int bpffs_mount_for(const char *dir)
{
	const char *target = dir;
	int err;

	if (!strncmp(dir, BPFFS_DEFAULT "/", strlen(BPFFS_DEFAULT) + 1) ||
	    !strcmp(dir, BPFFS_DEFAULT))
		target = BPFFS_DEFAULT;
	err = mkdir_p(target, 0700);
	if (err) {
		p_err("failed to create bpffs mount point '%s': %s", target, strerror(-err));
		return err;
	}
	if (mount("bpf", target, "bpf", 0, "mode=0700")) {
		err = -errno;
		p_err("failed to mount bpffs at '%s': %s (run as root)", target, strerror(errno));
		return err;
	}
	p_info("mounted bpffs at %s", target);
	return 0;
}

int bpf_env_open(struct bpf_env *env, const char *bpffs, const char *cgroup_root,
		 unsigned int ringbuf_bytes)
{
	char anc[PATH_MAX];
	int err;

	memset(env, 0, sizeof(*env));
	env->cg_fd = -1;
	env->ringbuf_bytes = ringbuf_bytes;
	existing_ancestor(bpffs, anc, sizeof(anc));
	if (!path_is_bpffs(anc) && (err = bpffs_mount_for(bpffs)))
		return err;
	snprintf(env->root, sizeof(env->root), "%s", bpffs);
	snprintf(env->maps, sizeof(env->maps), "%s/maps", bpffs);
	snprintf(env->links, sizeof(env->links), "%s/links", bpffs);
	if ((err = mkdir_p(env->maps, 0700)) || (err = mkdir_p(env->links, 0700))) {
		p_err("failed to create pin directories under '%s': %s (is bpffs mounted?)", bpffs,
		      strerror(-err));
		return err;
	}
	if (!path_is_bpffs(env->maps)) {
		p_err("'%s' is not on a bpffs", env->maps);
		return -EXDEV;
	}
	env->cg_fd = open(cgroup_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (env->cg_fd < 0) {
		err = -errno;
		p_err("failed to open cgroup '%s': %s", cgroup_root, strerror(errno));
		return err;
	}
	err = cgroup_id(cgroup_root, &env->cg_id);
	if (err)
		p_err("failed to get id of cgroup '%s': %s", cgroup_root, strerror(-err));
	return err;
}

void bpf_skel_load_failed(const char *stem, bool opened, int err, const struct bpf_env *env)
{
	if (!opened)
		p_err("failed to open BPF object '%s': %s", stem, strerror(-err));
	else
		p_err("failed to load BPF object '%s': %s (pinned maps under %s from another "
		      "version? try 'caelumctl teardown')",
		      stem, strerror(-err), env->maps);
}

int bpf_env_size_shared(const struct bpf_env *env, struct bpf_object *obj)
{
	struct bpf_map *rb = bpf_object__find_map_by_name(obj, "cm_events");
	int err;

	if (!rb)
		return -ENOENT;
	err = bpf_map__set_max_entries(rb, env->ringbuf_bytes);
	if (err)
		p_err("failed to size ring buffer 'cm_events' to %u bytes: %s", env->ringbuf_bytes,
		      strerror(-err));
	return err;
}

void bpf_env_close(struct bpf_env *env)
{
	if (env->cg_fd >= 0)
		close(env->cg_fd);
	env->cg_fd = -1;
}

const char *link_outcome_name(enum link_outcome o)
{
	switch (o) {
	case LINK_CREATED:
		return "attached";
	case LINK_UPDATED:
		return "replaced in place";
	case LINK_MOVED:
		return "moved";
	}
	return "?";
}

/* The pinned link can be updated in place only if it still hangs on our cgroup. */
static bool link_reusable(int fd, const struct bpf_env *env, int attach_type)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	return info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == env->cg_id &&
	       info.cgroup.attach_type == (__u32)attach_type;
}

/* Pin under a temporary name, then rename over the old pin: never a moment without. */
static int link_pin(int fd, const char *path)
{
	char tmp[PATH_MAX];
	int err;

	snprintf(tmp, sizeof(tmp), "%s_new", path); /* bpffs reserves names with a dot */
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp) || rename(tmp, path)) {
		err = -errno;
		p_err("failed to pin link '%s': %s", path, strerror(errno));
		unlink(tmp);
		return err;
	}
	return 0;
}

static int link_pin_new(const struct bpf_env *env, const char *path, int prog_fd, int attach_type)
{
	int fd, err;

	fd = bpf_link_create(prog_fd, env->cg_fd, attach_type, NULL);
	if (fd < 0) {
		p_err("failed to attach program at cgroup: %s", strerror(-fd));
		return fd;
	}
	err = link_pin(fd, path);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int link_install_tracing(const struct bpf_env *env, const char *name, int prog_fd,
			 enum link_outcome *outcome)
{
	char path[PATH_MAX];
	int old, fd, err;

	snprintf(path, sizeof(path), "%s/%s", env->links, name);
	fd = bpf_raw_tracepoint_open(NULL, prog_fd);
	if (fd < 0) {
		p_err("failed to attach program '%s': %s", name, strerror(-fd));
		return fd;
	}
	old = bpf_obj_get(path);
	err = link_pin(fd, path);
	if (err) {
		close(fd);
		if (old >= 0)
			close(old);
		return err;
	}
	*outcome = LINK_CREATED;
	if (old >= 0) {
		bpf_link_detach(old);
		close(old);
		*outcome = LINK_MOVED;
	}
	return fd;
}

int link_install(const struct bpf_env *env, const char *name, int prog_fd, int attach_type,
		 enum link_outcome *outcome)
{
	char path[PATH_MAX];
	int old, fd;

	snprintf(path, sizeof(path), "%s/%s", env->links, name);
	old = bpf_obj_get(path);
	if (old >= 0 && link_reusable(old, env, attach_type)) {
		if (bpf_link_update(old, prog_fd, NULL)) {
			fd = -errno;
			p_err("failed to update link '%s': %s", path, strerror(errno));
			close(old);
			return fd;
		}
		*outcome = LINK_UPDATED;
		return old;
	}
	fd = link_pin_new(env, path, prog_fd, attach_type);
	if (fd < 0) {
		if (old >= 0)
			close(old);
		return fd;
	}
	*outcome = LINK_CREATED;
	if (old >= 0) {
		/* Attached elsewhere or defunct: the new link is live, retire the old one. */
		bpf_link_detach(old);
		close(old);
		*outcome = LINK_MOVED;
	}
	return fd;
}
