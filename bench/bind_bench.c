// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bind_bench: what Caelum's bind hook costs, and how long a full-range policy takes to apply.
 *
 * 1. socket() + bind(127.0.0.1:PORT) + close() in a loop, in three cgroups of our own subtree
 *    <cgroup2>/caelum-bench-<pid>/{none,allow,ports}/svc0:
 *      none   no program on the path from our subtree down to the loop
 *      allow  bench/allow.bpf.c (returns 1), attached by bpf_link: the price of any bind hook
 *      ports  bpf/ports.bpf.c loaded by user/enforce/ports.c, 10,000 reservations over 8 service
 *             cgroups and 100 managed ranges, mode enforce
 *    once on a port with no entry (the common path), once on a port the loop's own cgroup
 *    reserved (the owner path, with its ancestor lookup). Each round runs every config in
 *    slices interleaved in rotating order so that drift on a small VM hits all of them
 *    alike; medians over the rounds are reported, and ratios both of the medians and paired
 *    (median of the per-round ratios). A stats pass then checks that each config's loop ran
 *    exactly its own program and reads the programs' run time per bind.
 *    "none" is not a host without BPF: while any bind program is attached anywhere the
 *    kernel checks each cgroup's (here empty) program array, as on every Caelum host.
 * 2. Applying one service that reserves all 65,535 tcp ports: registry (file backend, commit
 *    to disk included), claims -> policy, and the table swap of the live program.
 *
 * Everything it creates (cgroups, pins under /sys/fs/bpf/caelum-bench-<pid>, temporary
 * registries) is removed at exit, on failure too, and checked gone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "allow.skel.h"
#include "bench.h"
#include "cgroup.h"
#include "log.h"
#include "ports_user.h"
#include "registry.h"
#include "spec.h"

#define EXIT_NOPERM 77 /* sysexits EX_NOPERM */
#define EXIT_USAGE  2

#define ITERS_DEFAULT  200000
#define ROUNDS_DEFAULT 7
#define ROUNDS_MAX     31
#define CHUNKS	       20 /* slices of one run, see bind_round() */
#define APPLY_REPS     3
#define MAX_DIRS       16

/* The policy of config "ports". */
#define N_SVCS	     8
#define N_RESV	     10000 /* reservation i: RESV_BASE + 2i/tcp, owned by svc(i % N_SVCS) */
#define RESV_BASE    24000 /* away from the 8100-9999 the tests use, below ephemeral ports */
#define N_MANAGED    100   /* managed range i: MANAGED_BASE + 200i + [0, 99], tcp and udp */
#define MANAGED_BASE 24000
#define MANAGED_STEP 200
#define MANAGED_LEN  100

#define PORT_FREE    23999	     /* no entry: below every range and reservation */
#define PORT_OWNED   RESV_BASE	     /* reservation 0: svc0, where the loop runs */
#define PORT_FOREIGN (RESV_BASE + 2) /* reservation 1: svc1 */
#define PORT_SQUAT   (RESV_BASE + 1) /* managed, reserved by nobody */

#define FULL_PORTS 65535
#define FULL_ITEMS 4096 /* SPEC_MAX_PORT_ITEMS ranges of 16 ports */

enum cfg_id { CFG_NONE, CFG_ALLOW, CFG_PORTS, CFG_MAX };
enum var_id { VAR_FREE, VAR_OWNED, VAR_MAX };
enum step_id { STEP_REGISTRY, STEP_BUILD, STEP_INSTALL, STEP_TOTAL, STEP_MAX };
enum spec_id { SPEC_ONE_RANGE, SPEC_ITEMS, SPEC_MAX };

static const char *const cfg_name[CFG_MAX] = { "none", "allow", "ports" };
static const char *const var_name[VAR_MAX] = { "free_port", "owned_port" };
static const uint16_t var_port[VAR_MAX] = { PORT_FREE, PORT_OWNED };
static const char *const step_name[STEP_MAX] = { "registry_apply_ms", "policy_build_ms",
						 "ports_install_ms", "total_ms" };
static const char *const spec_label[SPEC_MAX] = { "one_range", "ranges_4096" };
static const char *const svc_name[N_SVCS] = { "svc0", "svc1", "svc2", "svc3",
					      "svc4", "svc5", "svc6", "svc7" };

struct bench {
	long iters;
	int rounds;
	int cpu;
	char cg2[PATH_MAX];	       /* cgroup2 mount */
	char home[PATH_MAX];	       /* the cgroup we came from */
	char top[PATH_MAX];	       /* <cg2>/caelum-bench-<pid> */
	char dirs[MAX_DIRS][PATH_MAX]; /* cgroups we made, parents first */
	uint64_t dir_id[MAX_DIRS];
	int n_dirs;
	bool away;			/* moved out of home */
	char cfg_cg[CFG_MAX][PATH_MAX]; /* <top>/<cfg> */
	char run_cg[CFG_MAX][PATH_MAX]; /* <top>/<cfg>/svc0: where the loop runs */
	uint64_t svc_id[N_SVCS];	/* <top>/ports/svcN */
	uint16_t svc_level;
	char bpffs[PATH_MAX];
	bool bpffs_made;
	struct bpf_env env;
	struct allow_bpf *allow;
	struct bpf_link *allow_link[2];
	struct ports *ports;
	double ns[CFG_MAX][VAR_MAX][ROUNDS_MAX]; /* ns per bind+close */
	bool have_stats;
	double run_ns[CFG_MAX][VAR_MAX]; /* BPF run time per bind (stats pass) */
	double apply_ms[SPEC_MAX][STEP_MAX][APPLY_REPS];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* (max - min) / median over the rounds, in percent: how much one run can be trusted. */
static double spread_pct(const double *v, int n)
{
	double lo = v[0], hi = v[0];

	for (int i = 1; i < n; i++) {
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	return 100.0 * (hi - lo) / bench_median(v, (size_t)n);
}

/* Remove every entry of a flat directory, then the directory. */
static int rm_flat_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int err = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    unlinkat(dirfd(d), de->d_name, 0))
			err = -errno;
	closedir(d);
	if (rmdir(path) && !err)
		err = -errno;
	if (err)
		p_warn("failed to remove '%s': %s", path, strerror(-err));
	return err;
}

/* ---- cgroups ---- */

static int cg_make(struct bench *b, const char *path, uint64_t *id)
{
	int err;

	if (b->n_dirs == MAX_DIRS)
		return -E2BIG;
	if (mkdir(path, 0755)) {
		err = -errno;
		p_err("failed to create cgroup '%s': %s", path, strerror(errno));
		return err;
	}
	snprintf(b->dirs[b->n_dirs], PATH_MAX, "%s", path);
	err = cgroup_id(path, &b->dir_id[b->n_dirs]);
	if (id)
		*id = b->dir_id[b->n_dirs];
	b->n_dirs++;
	if (err)
		p_err("failed to get id of cgroup '%s': %s", path, strerror(-err));
	return err;
}

/* <top>/<cfg>, its svc0 (where the loop runs), and for "ports" svc1..svc7 too. */
static int cg_make_cfg(struct bench *b, int cfg)
{
	int n_svcs = cfg == CFG_PORTS ? N_SVCS : 1;
	char path[PATH_MAX];
	int err;

	snprintf(b->cfg_cg[cfg], PATH_MAX, "%s/%s", b->top, cfg_name[cfg]);
	err = cg_make(b, b->cfg_cg[cfg], NULL);
	for (int s = 0; s < n_svcs && !err; s++) {
		snprintf(path, sizeof(path), "%s/%s", b->cfg_cg[cfg], svc_name[s]);
		err = cg_make(b, path, cfg == CFG_PORTS ? &b->svc_id[s] : NULL);
	}
	snprintf(b->run_cg[cfg], PATH_MAX, "%s/%s", b->cfg_cg[cfg], svc_name[0]);
	return err;
}

static int cgroups_make(struct bench *b)
{
	char rel[PATH_MAX];
	int err, level;

	err = cgroup2_mount_find(b->cg2, sizeof(b->cg2));
	if (err) {
		p_err("failed to find a cgroup2 mount in /proc/self/mountinfo: %s", strerror(-err));
		return err;
	}
	err = cgroup_of_pid(0, rel, sizeof(rel));
	if (err) {
		p_err("failed to read our cgroup2 path from /proc/self/cgroup: %s", strerror(-err));
		return err;
	}
	snprintf(b->home, sizeof(b->home), "%s%s", b->cg2, rel);
	snprintf(b->top, sizeof(b->top), "%s/caelum-bench-%d", b->cg2, (int)getpid());
	err = cg_make(b, b->top, NULL);
	for (int cfg = 0; cfg < CFG_MAX && !err; cfg++)
		err = cg_make_cfg(b, cfg);
	if (err)
		return err;
	level = cgroup_level(b->cg2, b->run_cg[CFG_PORTS]);
	if (level < 0)
		return level;
	b->svc_level = (uint16_t)level;
	return 0;
}

static int cg_enter(struct bench *b, const char *path)
{
	int err = cgroup_move(path, 0);

	if (err) {
		p_err("failed to move into cgroup '%s': %s", path, strerror(-err));
		return err;
	}
	b->away = true;
	return 0;
}

static void cgroups_remove(struct bench *b)
{
	int err;

	if (b->away) {
		err = cgroup_move(b->home, 0);
		if (err)
			p_err("failed to move back into cgroup '%s': %s", b->home, strerror(-err));
		else
			b->away = false;
	}
	for (int i = b->n_dirs - 1; i >= 0; i--)
		if (rmdir(b->dirs[i]))
			p_err("failed to remove cgroup '%s': %s", b->dirs[i], strerror(errno));
}

/* ---- programs ---- */

static int allow_attach(struct bench *b)
{
	int cg_fd = open(b->cfg_cg[CFG_ALLOW], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (cg_fd < 0) {
		err = -errno;
		p_err("failed to open cgroup '%s': %s", b->cfg_cg[CFG_ALLOW], strerror(errno));
		return err;
	}
	b->allow = allow_bpf__open_and_load();
	if (!b->allow) {
		err = -errno;
		p_err("failed to load BPF object 'allow': %s", strerror(errno));
		goto cleanup;
	}
	b->allow_link[0] = bpf_program__attach_cgroup(b->allow->progs.cm_bench_allow4, cg_fd);
	if (b->allow_link[0])
		b->allow_link[1] =
			bpf_program__attach_cgroup(b->allow->progs.cm_bench_allow6, cg_fd);
	if (!b->allow_link[0] || !b->allow_link[1]) {
		err = -errno;
		p_err("failed to attach 'allow' at cgroup '%s': %s", b->cfg_cg[CFG_ALLOW],
		      strerror(errno));
	}
cleanup:
	close(cg_fd);
	return err;
}

static void allow_detach(struct bench *b)
{
	for (int i = 0; i < 2; i++)
		bpf_link__destroy(b->allow_link[i]); /* last reference: detaches at once */
	allow_bpf__destroy(b->allow);
}

static int svc_ident(void *ctx, const char *service, uint64_t *cgid, uint16_t *level)
{
	const struct bench *b = ctx;

	*cgid = CAELUM_CGID_NONE;
	*level = 0;
	for (int s = 0; s < N_SVCS; s++) {
		if (strcmp(service, svc_name[s]))
			continue;
		*cgid = b->svc_id[s];
		*level = b->svc_level;
	}
	return 0;
}

static void managed_ranges(struct port_range *r)
{
	for (int i = 0; i < N_MANAGED; i++) {
		r[i].lo = (uint16_t)(MANAGED_BASE + MANAGED_STEP * i);
		r[i].hi = (uint16_t)(r[i].lo + MANAGED_LEN - 1);
		r[i].proto = PROTO_BOTH;
	}
}

static int policy_make(struct bench *b, struct port_policy *pol)
{
	struct reg_claim *claims = calloc(N_RESV, sizeof(*claims));
	struct port_range managed[N_MANAGED];
	int err;

	if (!claims)
		return -ENOMEM;
	for (int i = 0; i < N_RESV; i++)
		claims[i] = (struct reg_claim){ (uint16_t)(RESV_BASE + 2 * i), IPPROTO_TCP,
						ORIGIN_API, svc_name[i % N_SVCS], NULL };
	managed_ranges(managed);
	err = port_policy_build(pol, claims, N_RESV, managed, N_MANAGED, svc_ident, b);
	free(claims);
	if (err) {
		p_err("failed to build the port policy: %s", strerror(-err));
	} else if (pol->n_reserved != N_RESV) {
		p_err("policy has %zu reservations, expected %d", pol->n_reserved, N_RESV);
		err = -EIO;
	}
	return err;
}

/* What caelumd writes: ports enforced, services at the level of <root>/<svc>. */
static int config_write(struct bench *b)
{
	struct caelum_config c = { .svc_level = b->svc_level };
	struct caelum_service svc = { .flags = CAELUM_SVC_F_REGISTERED };
	__u32 zero = 0;
	int err;

	c.mode[CAELUM_COMP_PORTS] = CAELUM_MODE_ENFORCE;
	if (bpf_map_update_elem(ports_map_fd(b->ports, "cm_config"), &zero, &c, BPF_ANY)) {
		err = -errno;
		p_err("failed to update cm_config: %s", strerror(errno));
		return err;
	}
	for (int s = 0; s < N_SVCS; s++) {
		if (bpf_map_update_elem(ports_map_fd(b->ports, "cm_services"), &b->svc_id[s], &svc,
					BPF_ANY)) {
			err = -errno;
			p_err("failed to add service '%s' to cm_services: %s", svc_name[s],
			      strerror(errno));
			return err;
		}
	}
	return 0;
}

/* The daemon's order: load, configure, fill the table, attach (at <top>/ports). */
static int ports_setup(struct bench *b)
{
	struct port_policy pol = {};
	int err;

	snprintf(b->bpffs, sizeof(b->bpffs), "/sys/fs/bpf/caelum-bench-%d", (int)getpid());
	if (!access(b->bpffs, F_OK)) {
		p_err("'%s' already exists (left by an earlier run?)", b->bpffs);
		return -EEXIST;
	}
	b->bpffs_made = true;
	err = bpf_env_open(&b->env, b->bpffs, b->cfg_cg[CFG_PORTS], CAELUM_RINGBUF_BYTES);
	if (!err)
		err = ports_load(&b->env, &b->ports);
	if (!err)
		err = config_write(b);
	if (err)
		return err;
	err = policy_make(b, &pol);
	if (!err)
		err = ports_install(b->ports, &pol);
	port_policy_free(&pol);
	if (!err)
		err = ports_attach(b->ports, &b->env);
	return err;
}

static void ports_teardown(struct bench *b)
{
	char path[PATH_MAX];

	if (b->ports) {
		/* Detach now: the pins below would otherwise keep the links alive. */
		for (int i = 0; i < PORTS_NPROGS; i++)
			if (ports_link_fd(b->ports, i) >= 0)
				bpf_link_detach(ports_link_fd(b->ports, i));
		ports_close(b->ports);
		b->ports = NULL;
	}
	bpf_env_close(&b->env);
	if (!b->bpffs_made)
		return;
	snprintf(path, sizeof(path), "%s/links", b->bpffs);
	rm_flat_dir(path);
	snprintf(path, sizeof(path), "%s/maps", b->bpffs);
	rm_flat_dir(path);
	if (rmdir(b->bpffs) && errno != ENOENT)
		p_err("failed to remove '%s': %s", b->bpffs, strerror(errno));
}

static int cpu_pin(struct bench *b)
{
	cpu_set_t set;
	int err;

	if (sched_getaffinity(0, sizeof(set), &set)) {
		err = -errno;
		p_err("failed to get CPU affinity: %s", strerror(errno));
		return err;
	}
	for (b->cpu = CPU_SETSIZE - 1; b->cpu > 0 && !CPU_ISSET(b->cpu, &set); b->cpu--)
		;
	CPU_ZERO(&set);
	CPU_SET(b->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		err = -errno;
		p_err("failed to pin to CPU %d: %s", b->cpu, strerror(errno));
		return err;
	}
	return 0;
}

/* ---- bind loop ---- */

static int bind_once(uint16_t port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		err = -errno;
	close(fd);
	return err;
}

static int bind_loop(uint16_t port, long iters, double *ns_per_op)
{
	uint64_t t0 = bench_now_ns();
	int err;

	for (long i = 0; i < iters; i++) {
		err = bind_once(port);
		if (err) {
			p_err("failed to bind a socket to 127.0.0.1:%u: %s%s", port, strerror(-err),
			      err == -EADDRINUSE ? " (another process holds it: ss -tulpn)" : "");
			return err;
		}
		if (stop)
			return -EINTR;
	}
	*ns_per_op = (double)(bench_now_ns() - t0) / (double)iters;
	return 0;
}

static int measure(struct bench *b, int cfg, int var, long iters, double *ns_per_op)
{
	int err = cg_enter(b, b->run_cg[cfg]);

	return err ? err : bind_loop(var_port[var], iters, ns_per_op);
}

/* A benchmark of a program that does not run, or does not enforce, measures nothing. */
static int expect_bind(struct bench *b, int cfg, uint16_t port, int want)
{
	int err = cg_enter(b, b->run_cg[cfg]);

	if (err)
		return err;
	err = bind_once(port);
	if (err == want)
		return 0;
	p_err("sanity check: bind to port %u in config '%s' returned '%s', expected '%s'", port,
	      cfg_name[cfg], strerror(-err), strerror(-want));
	return -EPROTO;
}

static int sanity_check(struct bench *b)
{
	int err = 0;

	for (int cfg = 0; cfg < CFG_MAX && !err; cfg++) {
		int deny = cfg == CFG_PORTS ? -EPERM : 0;

		err = expect_bind(b, cfg, PORT_FREE, 0);
		if (!err)
			err = expect_bind(b, cfg, PORT_OWNED, 0);
		if (!err)
			err = expect_bind(b, cfg, PORT_FOREIGN, deny);
		if (!err)
			err = expect_bind(b, cfg, PORT_SQUAT, deny);
	}
	return err;
}

/*
 * One round: every (config, port) gets b->iters binds, in CHUNKS slices interleaved with the
 * others in rotating order, so that drift within the round (the host's other tenants) is
 * shared by all configs instead of landing on whichever ran at the time.
 */
static int bind_round(struct bench *b, int r)
{
	double sum[CFG_MAX][VAR_MAX] = {}, ns;
	int err = 0;

	for (int c = 0; c < CHUNKS && !err; c++)
		for (int k = 0; k < CFG_MAX * VAR_MAX && !err; k++) {
			int slot = (r + c + k) % (CFG_MAX * VAR_MAX);
			int cfg = slot / VAR_MAX, var = slot % VAR_MAX;

			err = measure(b, cfg, var, b->iters / CHUNKS, &ns);
			if (!err)
				sum[cfg][var] += ns;
		}
	for (int cfg = 0; cfg < CFG_MAX; cfg++)
		for (int var = 0; var < VAR_MAX; var++)
			b->ns[cfg][var][r] = sum[cfg][var] / CHUNKS;
	return err;
}

static int bind_rounds(struct bench *b)
{
	double warm;
	int err = 0;

	/* Warm-up, not reported: code paths and socket slabs. */
	for (int cfg = 0; cfg < CFG_MAX && !err; cfg++)
		for (int var = 0; var < VAR_MAX && !err; var++)
			err = measure(b, cfg, var, b->iters / 10, &warm);
	for (int r = 0; r < b->rounds && !err; r++) {
		err = bind_round(b, r);
		p_info("round %d/%d done", r + 1, b->rounds);
	}
	return err;
}

/* ---- BPF run-time stats: which program ran, how often, for how long ---- */

struct prog_stats {
	__u64 cnt;
	__u64 ns;
};

static int prog_stats_read(int fd, struct prog_stats *s)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	s->cnt = info.run_cnt;
	s->ns = info.run_time_ns;
	return 0;
}

/* Index 0 is the program of config "allow", 1 that of config "ports". */
static int stats_read(struct bench *b, struct prog_stats s[2])
{
	const char *name;
	int type, err;

	err = prog_stats_read(bpf_program__fd(b->allow->progs.cm_bench_allow4), &s[0]);
	if (!err)
		err = prog_stats_read(ports_prog_fd(b->ports, 0, &name, &type), &s[1]);
	if (err)
		p_err("failed to read BPF program info: %s", strerror(-err));
	return err;
}

/* Each bind in config cfg runs exactly cfg's program, once; the others not at all. */
static int stats_measure(struct bench *b, int cfg, int var)
{
	struct prog_stats s0[2], s1[2];
	long n = b->iters / 4;
	double ns;
	int err;

	err = stats_read(b, s0);
	if (!err)
		err = measure(b, cfg, var, n, &ns);
	if (!err)
		err = stats_read(b, s1);
	for (int p = 0; p < 2 && !err; p++) {
		__u64 runs = s1[p].cnt - s0[p].cnt, want = p + 1 == cfg ? (__u64)n : 0;

		if (runs != want) {
			p_err("coverage check: program of config '%s' ran %llu times in config "
			      "'%s', expected %llu",
			      cfg_name[p + 1], runs, cfg_name[cfg], want);
			return -EPROTO;
		}
		if (runs)
			b->run_ns[cfg][var] = (double)(s1[p].ns - s0[p].ns) / (double)runs;
	}
	return err;
}

static int stats_pass(struct bench *b)
{
	int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	int err = 0;

	if (fd < 0) {
		p_warn("failed to enable BPF run-time stats: %s; coverage check and run times "
		       "skipped",
		       strerror(-fd));
		return 0;
	}
	for (int cfg = 0; cfg < CFG_MAX && !err; cfg++)
		for (int var = 0; var < VAR_MAX && !err; var++)
			err = stats_measure(b, cfg, var);
	close(fd);
	b->have_stats = !err;
	return err;
}

/* ---- applying 65,535 reservations ---- */

static void full_spec(struct service_spec *s, struct port_range *items, int which)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", svc_name[0]);
	s->ports = items;
	if (which == SPEC_ONE_RANGE) {
		items[0] = (struct port_range){ 1, FULL_PORTS, IPPROTO_TCP };
		s->n_ports = 1;
		return;
	}
	for (int i = 0; i < FULL_ITEMS; i++) {
		uint32_t lo = 1 + (uint32_t)i * 16,
			 hi = lo + 15 > FULL_PORTS ? FULL_PORTS : lo + 15;

		items[i] = (struct port_range){ (uint16_t)lo, (uint16_t)hi, IPPROTO_TCP };
	}
	s->n_ports = FULL_ITEMS;
}

static int registry_make(char *dir, struct registry **reg)
{
	struct registry_backend *be;
	struct verr e = {};
	char *msg;
	int err;

	if (!mkdtemp(dir)) {
		err = -errno;
		p_err("failed to create temporary directory '%s': %s", dir, strerror(errno));
		dir[0] = '\0'; /* nothing to remove */
		return err;
	}
	err = registry_file_open(dir, &be);
	if (err)
		return err;
	err = registry_open(be, reg, &e);
	if (err) {
		msg = verr_join(&e);
		p_err("failed to open registry '%s': %s", dir, msg ? msg : strerror(-err));
		free(msg);
		be->ops->free(be);
	}
	verr_free(&e);
	return err;
}

static int registry_step(struct registry *reg, const struct service_spec *s)
{
	struct verr e = {};
	char *msg;
	int err;

	err = registry_service_apply(reg, s, ORIGIN_API, &e);
	if (err) {
		msg = verr_join(&e);
		p_err("failed to apply service '%s': %s", s->name, msg ? msg : strerror(-err));
		free(msg);
	}
	verr_free(&e);
	return err;
}

static int build_step(struct bench *b, struct registry *reg, struct port_policy *pol)
{
	struct port_range managed[N_MANAGED];
	struct reg_claim *claims;
	size_t n;
	int err;

	err = registry_claims(registry_state(reg), &claims, &n);
	if (err)
		return err;
	managed_ranges(managed);
	err = port_policy_build(pol, claims, n, managed, N_MANAGED, svc_ident, b);
	free(claims);
	if (!err && pol->n_reserved != FULL_PORTS) {
		p_err("policy has %zu reservations, expected %d", pol->n_reserved, FULL_PORTS);
		err = -EIO;
	}
	return err;
}

static int apply_once(struct bench *b, const struct service_spec *s, int which, int rep)
{
	char dir[] = "/tmp/caelum-bench-XXXXXX";
	struct registry *reg = NULL;
	struct port_policy pol = {};
	uint64_t t[STEP_MAX];
	int err;

	err = registry_make(dir, &reg);
	if (err)
		goto cleanup;
	t[0] = bench_now_ns();
	err = registry_step(reg, s);
	t[1] = bench_now_ns();
	if (!err)
		err = build_step(b, reg, &pol);
	t[2] = bench_now_ns();
	if (!err)
		err = ports_install(b->ports, &pol);
	t[3] = bench_now_ns();
	for (int i = 0; i < STEP_TOTAL; i++)
		b->apply_ms[which][i][rep] = (double)(t[i + 1] - t[i]) / 1e6;
	b->apply_ms[which][STEP_TOTAL][rep] = (double)(t[3] - t[0]) / 1e6;
cleanup:
	port_policy_free(&pol);
	registry_close(reg);
	if (dir[0])
		rm_flat_dir(dir);
	return err;
}

static int apply_bench(struct bench *b)
{
	static struct port_range items[FULL_ITEMS];
	struct service_spec s;
	int err = 0;

	for (int rep = 0; rep < APPLY_REPS && !err; rep++)
		for (int which = 0; which < SPEC_MAX && !err; which++) {
			full_spec(&s, items, which);
			err = apply_once(b, &s, which, rep);
		}
	return err;
}

/* ---- cleanup check ---- */

static bool cg_is_ours(const struct bench *b, uint64_t id)
{
	for (int i = 0; i < b->n_dirs; i++)
		if (id && b->dir_id[i] == id)
			return true;
	return false;
}

static int links_left(const struct bench *b)
{
	__u32 id = 0;
	int left = 0;

	while (!bpf_link_get_next_id(id, &id)) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_link_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == BPF_LINK_TYPE_CGROUP &&
		    cg_is_ours(b, info.cgroup.cgroup_id)) {
			p_err("cleanup: link %u is still attached to cgroup id %llu", id,
			      (unsigned long long)info.cgroup.cgroup_id);
			left++;
		}
		close(fd);
	}
	return left;
}

static int verify_clean(const struct bench *b)
{
	int left = links_left(b);

	if (b->n_dirs && !access(b->top, F_OK)) {
		p_err("cleanup: cgroup '%s' is still there", b->top);
		left++;
	}
	if (b->bpffs_made && !access(b->bpffs, F_OK)) {
		p_err("cleanup: bpffs directory '%s' is still there", b->bpffs);
		left++;
	}
	if (left)
		return -EBUSY;
	p_info("cleanup: no cgroup, pin or link of this run is left");
	return 0;
}

static void teardown(struct bench *b)
{
	ports_teardown(b);
	allow_detach(b);
	cgroups_remove(b);
}

/* ---- report ---- */

static double cfg_median(const struct bench *b, int cfg, int var)
{
	return bench_median(b->ns[cfg][var], (size_t)b->rounds);
}

/* Median over rounds of num/den measured in the same round: drift between rounds cancels. */
static double paired_ratio(const struct bench *b, int num, int den, int var)
{
	double r[ROUNDS_MAX];

	for (int i = 0; i < b->rounds; i++)
		r[i] = b->ns[num][var][i] / b->ns[den][var][i];
	return bench_median(r, (size_t)b->rounds);
}

static const int ratio_pair[3][2] = { { CFG_PORTS, CFG_ALLOW },
				      { CFG_ALLOW, CFG_NONE },
				      { CFG_PORTS, CFG_NONE } };

static void print_ratios(const struct bench *b)
{
	printf("  ratios of medians (paired: median of per-round ratios)\n");
	for (int var = 0; var < VAR_MAX; var++) {
		printf("  %-10s", var_name[var]);
		for (int i = 0; i < 3; i++) {
			int num = ratio_pair[i][0], den = ratio_pair[i][1];

			printf("  %s/%s %.4f (%.4f)", cfg_name[num], cfg_name[den],
			       cfg_median(b, num, var) / cfg_median(b, den, var),
			       paired_ratio(b, num, den, var));
		}
		printf("\n");
	}
}

static void print_table(const struct bench *b)
{
	static const char *const label[CFG_MAX] = { "none (no program)", "allow (allow-all)",
						    "ports (caelum)" };

	printf("bind()+close() on 127.0.0.1, %ld binds x %d rounds per config, CPU %d: median "
	       "ns/op (spread of rounds)\n",
	       b->iters, b->rounds, b->cpu);
	printf("  %-20s %22s %22s\n", "config", "free port", "owned port");
	for (int cfg = 0; cfg < CFG_MAX; cfg++) {
		printf("  %-20s", label[cfg]);
		for (int var = 0; var < VAR_MAX; var++)
			printf(" %13.1f (%5.1f%%)", cfg_median(b, cfg, var),
			       spread_pct(b->ns[cfg][var], b->rounds));
		printf("\n");
	}
	print_ratios(b);
	if (b->have_stats)
		printf("  BPF run time per bind: allow %.1f ns, ports %.1f ns (free), %.1f ns "
		       "(owned)\n",
		       b->run_ns[CFG_ALLOW][VAR_FREE], b->run_ns[CFG_PORTS][VAR_FREE],
		       b->run_ns[CFG_PORTS][VAR_OWNED]);
	printf("\napply 65535 tcp reservations, median of %d (ms)\n", APPLY_REPS);
	printf("  %-14s", "spec");
	for (int st = 0; st < STEP_MAX; st++)
		printf(" %18s", step_name[st]);
	printf("\n");
	for (int which = 0; which < SPEC_MAX; which++) {
		printf("  %-14s", spec_label[which]);
		for (int st = 0; st < STEP_MAX; st++)
			printf(" %18.2f", bench_median(b->apply_ms[which][st], APPLY_REPS));
		printf("\n");
	}
}

static struct json_object *jnum(double v, const char *fmt)
{
	char buf[64];

	snprintf(buf, sizeof(buf), fmt, v);
	return json_object_new_double_s(v, buf);
}

static struct json_object *json_binds(const struct bench *b)
{
	struct json_object *o = json_object_new_object();
	char key[64];

	for (int cfg = 0; cfg < CFG_MAX; cfg++) {
		struct json_object *c = json_object_new_object();

		for (int var = 0; var < VAR_MAX; var++) {
			snprintf(key, sizeof(key), "%s_ns_per_op", var_name[var]);
			json_object_object_add(c, key, jnum(cfg_median(b, cfg, var), "%.1f"));
			snprintf(key, sizeof(key), "%s_spread_pct", var_name[var]);
			json_object_object_add(
				c, key, jnum(spread_pct(b->ns[cfg][var], b->rounds), "%.2f"));
		}
		json_object_object_add(o, cfg_name[cfg], c);
	}
	return o;
}

static struct json_object *json_ratios(const struct bench *b, bool paired)
{
	struct json_object *o = json_object_new_object();
	char key[96];

	for (int i = 0; i < 3; i++)
		for (int var = 0; var < VAR_MAX; var++) {
			int num = ratio_pair[i][0], den = ratio_pair[i][1];
			double v = paired ? paired_ratio(b, num, den, var)
					  : cfg_median(b, num, var) / cfg_median(b, den, var);

			snprintf(key, sizeof(key), "%s_over_%s_%s", cfg_name[num], cfg_name[den],
				 var_name[var]);
			json_object_object_add(o, key, jnum(v, "%.4f"));
		}
	return o;
}

static struct json_object *json_run_time(const struct bench *b)
{
	struct json_object *o;

	if (!b->have_stats)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "allow_ns", jnum(b->run_ns[CFG_ALLOW][VAR_FREE], "%.1f"));
	json_object_object_add(o, "ports_free_port_ns",
			       jnum(b->run_ns[CFG_PORTS][VAR_FREE], "%.1f"));
	json_object_object_add(o, "ports_owned_port_ns",
			       jnum(b->run_ns[CFG_PORTS][VAR_OWNED], "%.1f"));
	return o;
}

static struct json_object *json_apply(const struct bench *b)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "repetitions", json_object_new_int(APPLY_REPS));
	for (int which = 0; which < SPEC_MAX; which++) {
		struct json_object *s = json_object_new_object();

		for (int st = 0; st < STEP_MAX; st++)
			json_object_object_add(
				s, step_name[st],
				jnum(bench_median(b->apply_ms[which][st], APPLY_REPS), "%.3f"));
		json_object_object_add(o, spec_label[which], s);
	}
	return o;
}

static void print_json(const struct bench *b)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "iterations", json_object_new_int64(b->iters));
	json_object_object_add(o, "rounds", json_object_new_int(b->rounds));
	json_object_object_add(o, "cpu", json_object_new_int(b->cpu));
	json_object_object_add(o, "reservations", json_object_new_int(N_RESV));
	json_object_object_add(o, "managed_ranges", json_object_new_int(N_MANAGED));
	json_object_object_add(o, "bind_close", json_binds(b));
	json_object_object_add(o, "ratios", json_ratios(b, false));
	json_object_object_add(o, "paired_ratios", json_ratios(b, true));
	json_object_object_add(o, "bpf_run_time_per_bind", json_run_time(b));
	json_object_object_add(o, "apply_65535_reservations", json_apply(b));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* ---- main ---- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno || end == s || *end || *out < lo || *out > hi)
		return -EINVAL;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: bind_bench [-n ITERATIONS] [-r ROUNDS] [-v]\n"
		"  -n  binds per config and round (default %d, at least 1000)\n"
		"  -r  rounds of all configs (default %d, 1..%d)\n"
		"  -v  debug output, libbpf's included\n",
		ITERS_DEFAULT, ROUNDS_DEFAULT, ROUNDS_MAX);
}

static int parse_args(int argc, char **argv, struct bench *b)
{
	long v;
	int c;

	b->iters = ITERS_DEFAULT;
	b->rounds = ROUNDS_DEFAULT;
	while ((c = getopt(argc, argv, "n:r:vh")) != -1) {
		if (c == 'n' && !parse_long(optarg, 1000, 100000000, &v)) {
			b->iters = (v + CHUNKS - 1) / CHUNKS * CHUNKS;
		} else if (c == 'r' && !parse_long(optarg, 1, ROUNDS_MAX, &v)) {
			b->rounds = (int)v;
		} else if (c == 'v') {
			log_init("bind_bench", true, false);
		} else {
			usage();
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage();
		return -EINVAL;
	}
	return 0;
}

static void signals_init(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int setup(struct bench *b)
{
	int err = cgroups_make(b);

	if (!err)
		err = allow_attach(b);
	if (!err)
		err = ports_setup(b);
	if (!err)
		err = cpu_pin(b);
	return err;
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	int err;

	log_init("bind_bench", false, false);
	log_libbpf_init();
	if (!b)
		return 1;
	b->env.cg_fd = -1;
	if (parse_args(argc, argv, b)) {
		free(b);
		return EXIT_USAGE;
	}
	if (geteuid()) {
		p_err("bind_bench needs root (cgroups, BPF programs, bpffs)");
		free(b);
		return EXIT_NOPERM;
	}
	signals_init();
	err = setup(b);
	if (!err)
		err = sanity_check(b);
	if (!err)
		err = bind_rounds(b);
	if (!err)
		err = stats_pass(b);
	if (!err)
		err = apply_bench(b);
	if (err == -EINTR)
		p_err("interrupted; cleaning up");
	teardown(b);
	if (verify_clean(b) && !err)
		err = -EBUSY;
	if (!err) {
		print_table(b);
		print_json(b);
	}
	free(b);
	return err ? 1 : 0;
}
