// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumctl prog | map | link | teardown: read (or remove) the pinned objects directly
 * under <bpffs>, with no daemon involved.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpfinfo.h"
#include "caelum/common.h"
#include "caelum/ports.h"
#include "cgroup.h"
#include "ctl.h"
#include "events.h"
#include "log.h"
#include "portrange.h"
#include "reserved_ports.h"
#include "rpc.h"
#include "services.h"

#define MAX_PINS 64

struct pin {
	char name[256];
	char path[PATH_MAX];
};

static int pin_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pin *)a)->name, ((const struct pin *)b)->name);
}

/* Pins in <bpffs>/<sub>, sorted. */
static int pins_list(const char *sub, struct pin *pins, size_t *n)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	*n = 0;
	snprintf(dir, sizeof(dir), "%s/%s", ctl.cfg.bpffs, sub);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) && *n < MAX_PINS) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(pins[*n].name, sizeof(pins[*n].name), "%s", de->d_name);
		snprintf(pins[*n].path, sizeof(pins[*n].path), "%s/%s", dir, de->d_name);
		(*n)++;
	}
	closedir(d);
	qsort(pins, *n, sizeof(*pins), pin_cmp);
	return 0;
}

static int pins_or_fail(const char *sub, struct pin *pins, size_t *n)
{
	int err;

	ctl_config(true);
	if (geteuid() != 0)
		return ctl_error(EXIT_NOPERM, "reading pinned BPF objects needs root");
	err = pins_list(sub, pins, n);
	if (err)
		return ctl_error(EXIT_FAIL, "failed to list '%s/%s': %s", ctl.cfg.bpffs, sub,
				 strerror(-err));
	return 0;
}

static void print_or_json(struct json_object *arr, void (*row)(struct json_object *))
{
	if (ctl.json) {
		ctl_json_print(arr);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		row(json_object_array_get_idx(arr, i));
	json_object_put(arr);
}

/* ---- prog ---- */

/* The program behind a pinned link, with where and whether it is attached. */
static struct json_object *prog_of_link(const struct pin *pin, int cg_fd)
{
	struct json_object *link = NULL, *prog = NULL;
	int lfd = bpf_obj_get(pin->path), pfd = -1;
	bool cgroup;

	if (lfd < 0)
		return NULL;
	link = bpfinfo_link(lfd);
	if (link)
		pfd = bpf_prog_get_fd_by_id((__u32)jint(link, "prog_id"));
	if (pfd >= 0)
		prog = bpfinfo_prog(pfd);
	if (!prog)
		goto out;
	cgroup = jstr(link, "attach_type") != NULL;
	if (cgroup) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);

		bpf_obj_get_info_by_fd(lfd, &info, &len);
		json_object_object_add(prog, "attach_type",
				       json_object_new_string(jstr(link, "attach_type")));
		json_object_object_add(prog, "cgroup_id",
				       json_object_new_uint64((uint64_t)jint(link, "cgroup_id")));
		json_object_object_add(prog, "attached",
				       json_object_new_boolean(bpfinfo_attached(
					       cg_fd, (int)info.cgroup.attach_type, info.prog_id)));
	} else {
		json_object_object_add(prog, "tracepoint",
				       json_object_new_string(jstr(link, "tracepoint") ?: ""));
		json_object_object_add(prog, "attached",
				       json_object_new_boolean(bpfinfo_link_alive(lfd)));
	}
	json_object_object_add(prog, "link_id", json_object_new_int64(jint(link, "id")));
	json_object_object_add(prog, "pinned", json_object_new_string(pin->path));
out:
	if (pfd >= 0)
		close(pfd);
	json_object_put(link);
	close(lfd);
	return prog;
}

static void prog_row(struct json_object *p)
{
	printf("%lld: %s  name %s  tag %s\n", (long long)jint(p, "id"), jstr(p, "type"),
	       jstr(p, "name"), jstr(p, "tag"));
	printf("\t%s %s  link %lld  %s  pinned %s\n",
	       jstr(p, "attach_type") ? "attach_type" : "tracepoint",
	       jstr(p, "attach_type") ? jstr(p, "attach_type") : jstr(p, "tracepoint"),
	       (long long)jint(p, "link_id"),
	       json_object_get_boolean(json_object_object_get(p, "attached")) ? "attached"
									      : "NOT attached",
	       jstr(p, "pinned"));
	printf("\trun_time_ns %lld  run_cnt %lld  verified_insns %lld\n",
	       (long long)jint(p, "run_time_ns"), (long long)jint(p, "run_cnt"),
	       (long long)jint(p, "verified_insns"));
}

static int prog_show(int argc, char **argv)
{
	struct json_object *arr = json_object_new_array();
	struct pin pins[MAX_PINS];
	size_t n;
	int rc, cg_fd;

	(void)argv;
	if (argc) {
		json_object_put(arr);
		return ctl_usage("prog show takes no arguments");
	}
	rc = pins_or_fail("links", pins, &n);
	if (rc) {
		json_object_put(arr);
		return rc;
	}
	cg_fd = open(ctl.cfg.cgroup_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = prog_of_link(&pins[i], cg_fd);

		if (p)
			json_object_array_add(arr, p);
	}
	if (cg_fd >= 0)
		close(cg_fd);
	if (!ctl.json && !bpfinfo_stats_enabled())
		printf("(kernel.bpf_stats_enabled is 0: run_time_ns and run_cnt are not "
		       "counted)\n");
	print_or_json(arr, prog_row);
	return 0;
}

int do_prog(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "show", prog_show },
		{ "list", prog_show },
		{ "help", NULL },
		{},
	};

	return ctl_object(cmds, prog_show, "prog { show | list | help }", argc, argv);
}

/* ---- map ---- */

static struct json_object *map_of_pin(const struct pin *pin)
{
	int fd = bpf_obj_get(pin->path);
	struct json_object *m;

	if (fd < 0)
		return NULL;
	m = bpfinfo_map(fd, true);
	close(fd);
	if (m)
		json_object_object_add(m, "pinned", json_object_new_string(pin->path));
	return m;
}

static void map_row(struct json_object *m)
{
	printf("%lld: %s  name %s  key %lldB  value %lldB  max_entries %lld",
	       (long long)jint(m, "id"), jstr(m, "type"), jstr(m, "name"),
	       (long long)jint(m, "key_size"), (long long)jint(m, "value_size"),
	       (long long)jint(m, "max_entries"));
	if (json_object_object_get_ex(m, "entries", NULL))
		printf("  entries %lld", (long long)jint(m, "entries"));
	printf("\n\tpinned %s%s\n", jstr(m, "pinned"),
	       json_object_get_boolean(json_object_object_get(m, "active"))
		       ? "  (active: in cm_port_outer[0])"
		       : "");
}

static int outer_fd(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/maps/cm_port_outer", ctl.cfg.bpffs);
	return bpf_obj_get(path);
}

static int map_show(int argc, char **argv)
{
	struct json_object *arr = json_object_new_array(), *m;
	struct pin pins[MAX_PINS];
	long long active_id;
	size_t n;
	int rc, ofd, ifd;

	(void)argv;
	if (argc) {
		json_object_put(arr);
		return ctl_usage("map show takes no arguments");
	}
	rc = pins_or_fail("maps", pins, &n);
	if (rc) {
		json_object_put(arr);
		return rc;
	}
	/* The port table in slot 0 of cm_port_outer is the one the programs use: "active". */
	ofd = outer_fd();
	ifd = ofd >= 0 ? bpfinfo_inner_map_fd(ofd) : -1;
	m = ifd >= 0 ? bpfinfo_map(ifd, false) : NULL;
	active_id = m ? jint(m, "id") : -1;
	json_object_put(m);
	if (ifd >= 0)
		close(ifd);
	if (ofd >= 0)
		close(ofd);
	for (size_t i = 0; i < n; i++) {
		if (!(m = map_of_pin(&pins[i])))
			continue;
		if (!strcmp(jstr(m, "name"), "cm_port_a") || !strcmp(jstr(m, "name"), "cm_port_b"))
			json_object_object_add(m, "active",
					       json_object_new_boolean(jint(m, "id") == active_id));
		json_object_array_add(arr, m);
	}
	print_or_json(arr, map_row);
	return 0;
}

/* Service names by cgroup id, found by walking <cgroup_root>/caelum/. */
static const char *svc_by_cgid(uint64_t cgid)
{
	static struct {
		uint64_t id;
		char name[64];
	} cache[1024];
	static size_t n = 0;
	static bool loaded;

	if (!loaded) {
		char base[PATH_MAX];
		struct dirent *de;
		DIR *d;

		loaded = true;
		snprintf(base, sizeof(base), "%s/%s", ctl.cfg.cgroup_root, SERVICES_SUBDIR);
		d = opendir(base);
		while (d && (de = readdir(d)) && n < 1024) {
			char path[PATH_MAX];

			if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
			if (cgroup_id(path, &cache[n].id))
				continue;
			snprintf(cache[n].name, sizeof(cache[n].name), "%s", de->d_name);
			n++;
		}
		if (d)
			closedir(d);
	}
	for (size_t i = 0; i < n; i++)
		if (cache[i].id == cgid && cgid)
			return cache[i].name;
	return NULL;
}

static struct json_object *name_json(uint64_t cgid)
{
	const char *s = svc_by_cgid(cgid);

	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *dump_rule(const struct caelum_port_key *k,
				     const struct caelum_port_rule *r)
{
	struct json_object *o = json_object_new_object(), *flags = json_object_new_array();

	json_object_object_add(o, "port", json_object_new_int(k->port));
	json_object_object_add(o, "proto", json_object_new_string(proto_name(k->proto)));
	if (r->flags & CAELUM_PORT_F_RESERVED)
		json_object_array_add(flags, json_object_new_string("reserved"));
	if (r->flags & CAELUM_PORT_F_MANAGED)
		json_object_array_add(flags, json_object_new_string("managed"));
	json_object_object_add(o, "flags", flags);
	json_object_object_add(o, "owner_cgroup_id", json_object_new_uint64(r->owner_cgid));
	json_object_object_add(o, "owner_level", json_object_new_int(r->owner_level));
	json_object_object_add(o, "service", name_json(r->owner_cgid));
	return o;
}

/* A port table (cm_port_a/b, or the one in cm_port_outer[0]): the slots with a rule, their
 * owner index resolved through cm_port_owners. */
static struct json_object *dump_port_table(int fd)
{
	struct json_object *arr = json_object_new_array();
	struct caelum_port_entry *ents = calloc(CAELUM_PORT_SLOTS, sizeof(*ents));
	__u32 *keys = calloc(CAELUM_PORT_SLOTS, sizeof(*keys));
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	char path[PATH_MAX];
	__u32 count = CAELUM_PORT_SLOTS, out;
	int ofd;

	snprintf(path, sizeof(path), "%s/maps/cm_port_owners", ctl.cfg.bpffs);
	ofd = bpf_obj_get(path);
	if (ents && keys && ofd >= 0 &&
	    (!bpf_map_lookup_batch(fd, NULL, &out, keys, ents, &count, &opts) || errno == ENOENT)) {
		for (__u32 i = 0; i < count; i++) {
			struct caelum_port_key k = { .port = (__u16)(keys[i] / 2),
						     .proto = keys[i] & 1 ? 17 : 6 };
			struct caelum_port_rule r = { .flags = ents[i].flags,
						      .owner_level = ents[i].level };

			if (!ents[i].flags)
				continue;
			if (ents[i].owner)
				bpf_map_lookup_elem(ofd, &ents[i].owner, &r.owner_cgid);
			json_object_array_add(arr, dump_rule(&k, &r));
		}
	}
	if (ofd >= 0)
		close(ofd);
	free(ents);
	free(keys);
	return arr;
}

static struct json_object *dump_service(const __u64 *k, const struct caelum_service *v)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "cgroup_id", json_object_new_uint64(*k));
	json_object_object_add(o, "service", name_json(*k));
	json_object_object_add(o, "internal",
			       json_object_new_boolean(v->flags & CAELUM_SVC_F_INTERNAL));
	json_object_object_add(o, "flags", json_object_new_int64(v->flags));
	return o;
}

static struct json_object *dump_agg(const struct caelum_agg_key *k, const struct caelum_agg_val *v)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "cgroup_id", json_object_new_uint64(k->cgroup_id));
	json_object_object_add(o, "type", json_object_new_string(event_type_name(k->type)));
	json_object_object_add(o, "subject", json_object_new_uint64(k->subject));
	json_object_object_add(o, "pending", json_object_new_uint64(v->count));
	json_object_object_add(o, "window_start_ns", json_object_new_uint64(v->start_ns));
	return o;
}

typedef struct json_object *(*dump_fn)(const void *k, const void *v);

static struct json_object *dump_hash(int fd, size_t ksz, size_t vsz, dump_fn fn)
{
	struct json_object *arr = json_object_new_array();
	char *key = calloc(2, ksz), *val = calloc(1, vsz);
	void *prev = NULL;

	while (key && val && !bpf_map_get_next_key(fd, prev, key + ksz)) {
		memcpy(key, key + ksz, ksz);
		prev = key;
		if (!bpf_map_lookup_elem(fd, key, val))
			json_object_array_add(arr, fn(key, val));
	}
	free(key);
	free(val);
	return arr;
}

static struct json_object *dump_config(int fd)
{
	struct json_object *o = json_object_new_object(), *modes = json_object_new_object();
	struct caelum_config c;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &c)) {
		json_object_put(modes);
		return o;
	}
	for (int i = 0; i < component_count(); i++)
		json_object_object_add(modes, component_name(i),
				       json_object_new_string(mode_name((int)c.mode[i])));
	json_object_object_add(o, "modes", modes);
	json_object_object_add(o, "svc_level", json_object_new_int64(c.svc_level));
	return o;
}

static struct json_object *dump_stats(int fd)
{
	static const char *const names[CAELUM_STAT_MAX] = {
		[CAELUM_STAT_DENIED] = "denied",
		[CAELUM_STAT_AUDITED] = "audited",
		[CAELUM_STAT_FOLDED] = "folded",
		[CAELUM_STAT_RB_LOST_FIRST] = "ringbuf_lost_first",
		[CAELUM_STAT_RB_LOST_FOLLOWUP] = "ringbuf_lost_followup",
		[CAELUM_STAT_AGG_FULL] = "unaggregated",
		[CAELUM_STAT_DB_UNCOUNTED] = "db_uncounted",
	};
	int ncpu = libbpf_num_possible_cpus();
	struct json_object *o = json_object_new_object();
	__u64 *vals = calloc(ncpu > 0 ? (size_t)ncpu : 1, sizeof(*vals));

	for (__u32 i = 0; vals && i < CAELUM_STAT_MAX; i++) {
		__u64 sum = 0;

		if (!names[i] || bpf_map_lookup_elem(fd, &i, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum += vals[c];
		json_object_object_add(o, names[i], json_object_new_uint64(sum));
	}
	free(vals);
	return o;
}

static struct json_object *map_dump_fd(const char *name, int fd, int *rc)
{
	*rc = 0;
	if (!strcmp(name, "cm_port_rules") || !strcmp(name, "cm_port_a") ||
	    !strcmp(name, "cm_port_b"))
		return dump_port_table(fd);
	if (!strcmp(name, "cm_services"))
		return dump_hash(fd, sizeof(__u64), sizeof(struct caelum_service),
				 (dump_fn)dump_service);
	if (!strcmp(name, "cm_agg"))
		return dump_hash(fd, sizeof(struct caelum_agg_key), sizeof(struct caelum_agg_val),
				 (dump_fn)dump_agg);
	if (!strcmp(name, "cm_config"))
		return dump_config(fd);
	if (!strcmp(name, "cm_stats"))
		return dump_stats(fd);
	*rc = ctl_error(EXIT_FAIL, "map '%s' cannot be dumped%s", name,
			!strcmp(name, "cm_events") ? ": it is a ring buffer (use caelumctl events)"
						   : "");
	return NULL;
}

static void dump_row(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int map_dump(int argc, char **argv)
{
	struct json_object *res;
	char path[PATH_MAX];
	const char *name;
	int fd, rc;

	if (argc != 1)
		return ctl_usage("usage: map dump NAME");
	ctl_config(true);
	if (geteuid() != 0)
		return ctl_error(EXIT_NOPERM, "reading pinned BPF objects needs root");
	name = argv[0];
	if (!strcmp(name, "cm_port_rules") || !strcmp(name, "cm_port_outer")) {
		int ofd = outer_fd();

		name = "cm_port_rules";
		fd = ofd >= 0 ? bpfinfo_inner_map_fd(ofd) : -ENOENT;
		if (ofd >= 0)
			close(ofd);
	} else {
		snprintf(path, sizeof(path), "%s/maps/%s", ctl.cfg.bpffs, name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			fd = -errno;
	}
	if (fd < 0)
		return ctl_error(EXIT_FAIL, "no pinned map '%s' under %s/maps: %s", argv[0],
				 ctl.cfg.bpffs, strerror(-fd));
	res = map_dump_fd(name, fd, &rc);
	close(fd);
	if (rc)
		return rc;
	if (json_object_is_type(res, json_type_array))
		print_or_json(res, dump_row);
	else if (ctl.json)
		ctl_json_print(res);
	else {
		dump_row(res);
		json_object_put(res);
	}
	return 0;
}

int do_map(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "show", map_show },
		{ "list", map_show },
		{ "dump", map_dump },
		{ "help", NULL },
		{},
	};

	return ctl_object(
		cmds, map_show,
		"map { show | list | dump NAME | help }\n"
		"NAME := { cm_port_rules | cm_port_a | cm_port_b | cm_services | cm_config "
		"| cm_stats | cm_agg }",
		argc, argv);
}

/* ---- link ---- */

static void link_row(struct json_object *l)
{
	printf("%lld: %s  prog %lld", (long long)jint(l, "id"), jstr(l, "type"),
	       (long long)jint(l, "prog_id"));
	if (jstr(l, "attach_type"))
		printf("  attach_type %s  cgroup_id %lld", jstr(l, "attach_type"),
		       (long long)jint(l, "cgroup_id"));
	if (jstr(l, "tracepoint"))
		printf("  tracepoint %s", jstr(l, "tracepoint"));
	printf("%s\n\tpinned %s\n",
	       json_object_get_boolean(json_object_object_get(l, "defunct")) ? "  DEFUNCT" : "",
	       jstr(l, "pinned"));
}

static int link_show(int argc, char **argv)
{
	struct json_object *arr = json_object_new_array();
	struct pin pins[MAX_PINS];
	size_t n;
	int rc;

	(void)argv;
	if (argc) {
		json_object_put(arr);
		return ctl_usage("link show takes no arguments");
	}
	rc = pins_or_fail("links", pins, &n);
	if (rc) {
		json_object_put(arr);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		int fd = bpf_obj_get(pins[i].path);
		struct json_object *l = fd >= 0 ? bpfinfo_link(fd) : NULL;

		if (fd >= 0)
			close(fd);
		if (!l)
			continue;
		json_object_object_add(l, "pinned", json_object_new_string(pins[i].path));
		json_object_array_add(arr, l);
	}
	print_or_json(arr, link_row);
	return 0;
}

int do_link(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "show", link_show },
		{ "list", link_show },
		{ "help", NULL },
		{},
	};

	return ctl_object(cmds, link_show, "link { show | list | help }", argc, argv);
}

/* ---- teardown ---- */

static bool daemon_alive(void)
{
	struct rpc_client *c;
	char sock[PATH_MAX];

	config_socket_path(&ctl.cfg, sock, sizeof(sock));
	if (rpc_client_open(&c, sock))
		return false;
	rpc_client_close(c);
	return true;
}

static void teardown_cgroups(struct json_object *removed, struct json_object *kept)
{
	char base[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(base, sizeof(base), "%s/%s", ctl.cfg.cgroup_root, SERVICES_SUBDIR);
	d = opendir(base);
	while (d && (de = readdir(d))) {
		char path[PATH_MAX];

		/* Caelum's own cgroups (".probe", ...) go too; only "." and ".." are skipped. */
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
		json_object_array_add(rmdir(path) ? kept : removed, json_object_new_string(path));
	}
	if (d) {
		closedir(d);
		if (!rmdir(base))
			json_object_array_add(removed, json_object_new_string(base));
	}
}

static void teardown_pins(const char *sub, bool detach, struct json_object *done)
{
	struct pin pins[MAX_PINS];
	size_t n;

	if (pins_list(sub, pins, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (detach) {
			int fd = bpf_obj_get(pins[i].path);

			/* Detach explicitly: another holder of the link fd must not keep it
			 * alive. */
			if (fd >= 0) {
				bpf_link_detach(fd);
				close(fd);
			}
		}
		if (!unlink(pins[i].path))
			json_object_array_add(done, json_object_new_string(pins[i].path));
	}
}

int do_teardown(int argc, char **argv)
{
	struct json_object *o, *links, *maps, *cg_rm, *cg_kept;
	char dir[PATH_MAX];
	int resv_err;

	(void)argv;
	if (argc)
		return ctl_usage("teardown takes no arguments");
	ctl_config(true);
	if (geteuid() != 0)
		return ctl_error(EXIT_NOPERM, "teardown needs root");
	if (daemon_alive())
		return ctl_error(EXIT_FAIL,
				 "caelumd is running; stop it first (it would re-attach)");
	links = json_object_new_array();
	maps = json_object_new_array();
	cg_rm = json_object_new_array();
	cg_kept = json_object_new_array();
	teardown_pins("links", true, links);
	teardown_pins("maps", false, maps);
	snprintf(dir, sizeof(dir), "%s/links", ctl.cfg.bpffs);
	rmdir(dir);
	snprintf(dir, sizeof(dir), "%s/maps", ctl.cfg.bpffs);
	rmdir(dir);
	rmdir(ctl.cfg.bpffs);
	teardown_cgroups(cg_rm, cg_kept);
	resv_err = reserved_ports_restore(ctl.cfg.state_dir);
	if (resv_err)
		p_warn("failed to restore ip_local_reserved_ports: %s%s", strerror(-resv_err),
		       resv_err == -EXDEV ? " (run teardown in caelumd's network namespace)" : "");
	o = json_object_new_object();
	json_object_object_add(o, "reserved_ports_restored", json_object_new_boolean(!resv_err));
	json_object_object_add(o, "links_detached", links);
	json_object_object_add(o, "maps_unpinned", maps);
	json_object_object_add(o, "cgroups_removed", cg_rm);
	json_object_object_add(o, "cgroups_kept", cg_kept);
	if (ctl.json) {
		ctl_json_print(o);
		return 0;
	}
	printf("detached %zu links, unpinned %zu maps, removed %zu cgroups",
	       json_object_array_length(links), json_object_array_length(maps),
	       json_object_array_length(cg_rm));
	if (json_object_array_length(cg_kept))
		printf(" (kept %zu still in use)", json_object_array_length(cg_kept));
	printf("\n");
	json_object_put(o);
	return 0;
}
