// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Caelum checks itself.
 *
 * Integrity (every few seconds): each expected link is pinned, holds the program caelumd
 * loaded, and (cgroup links) the kernel lists that program at cgroup_root; each pinned map
 * is still pinned. What is missing is put back and reported (integrity_repaired).
 *
 * Self-verification (every verify.interval_s, and on caelumctl verify): each enabled
 * enforcement path is exercised for real, from throwaway processes, against canary rules
 * that no service can collide with (owners are Caelum's internal cgroups, whose names
 * start with a dot):
 *   ports      bind 127.0.0.1:<verify.port>/tcp, reserved to ".verify-owner"  -> EPERM
 *   databases  connect 127.0.0.1:<verify.port>, a database nobody declared     -> EPERM
 *   devices    mknod of char <1:250>, assigned to ".verify-owner"             -> EPERM
 *   tasks      a fork in ".verify-tasks" (budget 1)                           -> SIGKILL
 *   cpu        30 ms of spinning in ".verify-tasks"                           -> counted
 *   bandwidth  64 UDP datagrams of 1000 B over loopback from ".verify-tasks",
 *              limited to 1 Mbit/s egress for the probe only                 -> held:
 *              ~13 pass (the queue's burst + mark), the rest dropped and counted
 * The unmanaged probes run in <cgroup_root>/.caelum-verify. The kernel records their
 * denials like any other; caelumd counts them (verification_records) instead of emitting
 * them: the result of the verification is the event.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agg.h"
#include "bandwidth_user.h"
#include "bpfinfo.h"
#include "caelum/connect.h"
#include "caelum/devices.h"
#include "cgroup.h"
#include "connect_user.h"
#include "cpu_user.h"
#include "daemon.h"
#include "devices_user.h"
#include "log.h"
#include "tasks_user.h"
#include "verify.h"

#define VERIFY_OWNER	 ".verify-owner"
#define VERIFY_TASKS	 ".verify-tasks"
#define VERIFY_PROBE	 ".caelum-verify"
#define VERIFY_DB_NAME	 ".verify"
#define SPIN_NS		 30000000ULL
#define CHILD_TIMEOUT_MS 3000
/* The bandwidth canary: at 1 Mbit/s (125,000 B/s) an idle queue passes burst + mark =
 * 105 ms of it, 13,125 B: 13 of the 64 datagrams, whatever the host's speed (the whole
 * burst takes well under a millisecond; the queue drains 125 B of it per ms). */
#define VERIFY_BW_KBIT	      1000
#define VERIFY_BW_DGRAMS      64
#define VERIFY_BW_DGRAM_BYTES 1000

/* ---- integrity ---- */

struct expected_link {
	int comp;
	const char *name;
	int prog_fd;
	int attach_type; /* cgroup links; 0 for tracing links */
};

struct link_list {
	struct expected_link v[CAELUM_COMP_MAX * COMP_MAX_PROGS];
	size_t n;
};

static void add_link(void *ctx, int id, const struct comp_prog *p, struct bpf_object *obj)
{
	struct link_list *l = ctx;

	(void)obj;
	if (p && l->n < sizeof(l->v) / sizeof(l->v[0]))
		l->v[l->n++] = (struct expected_link){ id, p->name, p->prog_fd,
						       p->cgroup ? p->attach_type : 0 };
}

/* "" when fine, else what is wrong. */
static void link_problem(struct daemon *d, const struct expected_link *l, char *buf, size_t len)
{
	struct bpf_link_info info = {};
	__u32 ilen = sizeof(info);
	uint32_t id = bpfinfo_prog_id(l->prog_fd);
	char path[PATH_MAX];
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", d->env.links, l->name);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		snprintf(buf, len, "pin %s missing", path);
		return;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen) || info.prog_id != id)
		snprintf(buf, len, "link %s does not hold program %u (holds %u)", path, id,
			 info.prog_id);
	else if (l->attach_type && !bpfinfo_attached(d->env.cg_fd, l->attach_type, id))
		snprintf(buf, len, "program %u is not attached at %s", id, d->cfg.cgroup_root);
	close(fd);
}

static void emit_repaired(struct daemon *d, const char *what, const char *problem, int err)
{
	struct json_object *e = event_new(d->ev, "integrity_repaired", err ? "failed" : "repaired");

	json_object_object_add(e, "object", json_object_new_string(what));
	json_object_object_add(e, "problem", json_object_new_string(problem));
	if (err)
		json_object_object_add(e, "error", json_object_new_string(strerror(-err)));
	events_emit(d->ev, e);
	if (err)
		p_err("integrity: %s: %s; repair failed: %s", what, problem, strerror(-err));
	else
		p_warn("integrity: %s: %s; repaired", what, problem);
}

static void check_links(struct daemon *d)
{
	static struct link_list l; /* the loop's thread only */
	struct expected_link *links = l.v;
	bool redone[CAELUM_COMP_MAX] = { 0 };
	struct comp_env env;

	l.n = 0;
	components_visit(&d->comps, add_link, &l);
	daemon_comp_env(d, &env);
	for (size_t i = 0; i < l.n; i++) {
		char problem[PATH_MAX + 64];
		int err;

		link_problem(d, &links[i], problem, sizeof(problem));
		if (!problem[0] || redone[links[i].comp])
			continue;
		/* Re-attaching the component puts back every link of it. */
		redone[links[i].comp] = true;
		err = components_attach(&d->comps, &env, links[i].comp);
		emit_repaired(d, links[i].name, problem, err);
	}
}

static void check_obj_maps(void *ctx, int id, const struct comp_prog *p, struct bpf_object *obj)
{
	struct daemon *d = ctx;
	struct bpf_map *m;

	(void)id;
	if (p || !obj)
		return;
	bpf_object__for_each_map(m, obj)
	{
		const char *path = bpf_map__pin_path(m);
		char problem[PATH_MAX + 32];
		int err = 0;

		if (!path || !access(path, F_OK))
			continue;
		snprintf(problem, sizeof(problem), "pin %s missing", path);
		if (bpf_obj_pin(bpf_map__fd(m), path))
			err = -errno;
		emit_repaired(d, bpf_map__name(m), problem, err);
	}
}

/* The repair of a foreign write to the policy maps: the daemon's full apply (d->apply). */
static int reapply(void *ctx, const char *why)
{
	struct daemon *d = ctx;

	return d->apply(d, why);
}

void integrity_check(struct daemon *d)
{
	check_links(d);
	policyguard_check(&d->guard, d->ports, d->ev, reapply, d);
	components_visit(&d->comps, check_obj_maps, d);
	check_obj_maps(d, -1, NULL, agg_obj(d->agg));
}

/* ---- canaries ---- */

int verify_setup(struct daemon *d)
{
	const char *path;
	uint64_t cgid;
	int err;

	snprintf(d->verify_probe_cgroup, sizeof(d->verify_probe_cgroup), "%s/%s",
		 d->cfg.cgroup_root, VERIFY_PROBE);
	err = cgroup_mkdir(d->verify_probe_cgroup);
	if (!err)
		err = cgroup_id(d->verify_probe_cgroup, &d->verify_probe_cgid);
	if (!err)
		err = svcs_internal(&d->svcs, VERIFY_OWNER, &cgid, &path);
	if (!err)
		err = svcs_internal(&d->svcs, VERIFY_TASKS, &d->verify_tasks_cgid, &path);
	if (err) {
		p_err("failed to set up self-verification cgroups: %s", strerror(-err));
		return err;
	}
	snprintf(d->verify_tasks_cgroup, sizeof(d->verify_tasks_cgroup), "%s", path);
	events_set_canaries(d->ev, d->verify_probe_cgid, d->verify_tasks_cgid);
	verify_port_claim(d, &d->canary); /* the ports component enforces it from now on */
	return verify_canaries(d);
}

bool verify_port_claim(struct daemon *d, struct reg_claim *claim)
{
	if (!d->verify_probe_cgid)
		return false;
	*claim = (struct reg_claim){ .port = d->cfg.verify_port,
				     .proto = IPPROTO_TCP,
				     .origin = ORIGIN_RUNTIME,
				     .service = VERIFY_OWNER };
	return true;
}

int verify_canaries(struct daemon *d)
{
	struct caelum_dev_key dk = { VERIFY_DEV_MAJOR, VERIFY_DEV_MINOR, CAELUM_DEV_CHAR, 0 };
	struct caelum_dev_rule dr = { .flags = CAELUM_DEV_F_ASSIGNED };
	struct caelum_db_addr_key ak;
	struct caelum_db_addr av = { .db_id = db_id_of(VERIFY_DB_NAME) };
	uint64_t budget = 1, owner;
	uint16_t level;

	if (!d->verify_probe_cgid)
		return 0;
	svcs_ident(&d->svcs, VERIFY_OWNER, &owner, &level);
	dr.owner_cgid = owner;
	dr.owner_level = level;
	connect_local_key(d->cfg.verify_port, &ak); /* 127.0.0.1 is LOCAL (caelum/connect.h) */
	if (daemon_devices(d) &&
	    bpf_map_update_elem(devices_map_fd(daemon_devices(d)), &dk, &dr, BPF_ANY))
		return -errno;
	if (daemon_tasks(d) && bpf_map_update_elem(tasks_budget_fd(daemon_tasks(d)),
						   &d->verify_tasks_cgid, &budget, BPF_ANY))
		return -errno;
	if (daemon_connect(d) &&
	    bpf_map_update_elem(connect_addrs_fd(daemon_connect(d)), &ak, &av, BPF_ANY))
		return -errno;
	return 0;
}

/* ---- self-verification ---- */

/* A probe child: join cg, run fn, exit 0 when the expected refusal happened. */
static int run_child(const char *cg, int (*fn)(struct daemon *d), struct daemon *d, char *detail,
		     size_t len)
{
	int status = 0;
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		snprintf(detail, len, "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		if (cgroup_move(cg, 0))
			_exit(90);
		_exit(fn(d));
	}
	for (int i = 0; i < CHILD_TIMEOUT_MS / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	snprintf(detail, len, "probe did not finish within %d ms", CHILD_TIMEOUT_MS);
	return 98;
}

static int probe_bind(struct daemon *d)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(d->cfg.verify_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	rc = bind(fd, (struct sockaddr *)&a, sizeof(a)) ? errno : 0;
	return rc == EPERM ? 0 : rc ? 2 : 1;
}

static int probe_connect(struct daemon *d)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(d->cfg.verify_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), rc;

	rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) ? errno : 0;
	return rc == EPERM ? 0 : 1;
}

static int probe_mknod(struct daemon *d)
{
	char path[] = "/tmp/caelum-verify-XXXXXX";
	char node[sizeof(path) + 8];
	int rc;

	(void)d;
	if (!mkdtemp(path))
		return 3;
	snprintf(node, sizeof(node), "%s/dev", path);
	rc = mknod(node, S_IFCHR | 0600, makedev(VERIFY_DEV_MAJOR, VERIFY_DEV_MINOR)) ? errno : 0;
	unlink(node);
	rmdir(path);
	return rc == EPERM ? 0 : 1;
}

/* Spin (for the CPU accountant), then fork past the budget of 1: the new task must die. */
static int probe_fork(struct daemon *d)
{
	struct timespec t0, t;
	int status;
	pid_t pid;

	(void)d;
	/* SPIN_NS of this thread's own CPU time, however busy the host is: the accountant must
	 * see what the task really ran, not what the wall clock says. */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	while ((uint64_t)(t.tv_sec - t0.tv_sec) * 1000000000ULL + (uint64_t)t.tv_nsec -
		       (uint64_t)t0.tv_nsec <
	       SPIN_NS);
	pid = fork();
	if (pid == 0) {
		sleep(2);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 3;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : 1;
}

/* A burst over loopback to a socket of our own: exit 0 when some but not all of it arrived
 * (held and still flowing), 1 when all of it did (not held), 2 when none did, 3 on errors.
 * A datagram dropped at egress fails sendto() with EPERM. */
static int probe_udp_burst(struct daemon *d)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	char buf[VERIFY_BW_DGRAM_BYTES] = { 0 };
	int rx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0),
	    tx = socket(AF_INET, SOCK_DGRAM, 0);
	int got = 0;

	(void)d;
	if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(rx, (struct sockaddr *)&a, &alen))
		return 3;
	for (int i = 0; i < VERIFY_BW_DGRAMS; i++)
		if (sendto(tx, buf, sizeof(buf), 0, (struct sockaddr *)&a, sizeof(a)) < 0 &&
		    errno != EPERM)
			return 3;
	/* Loopback usually delivers before sendto() returns; give softirq work that was
	 * deferred (ksoftirqd on a busy host) 20 ms of quiet before counting it done. */
	for (struct pollfd p = { .fd = rx, .events = POLLIN }; poll(&p, 1, 20) > 0;)
		while (recv(rx, buf, sizeof(buf), 0) > 0)
			got++;
	return got == VERIFY_BW_DGRAMS ? 1 : got == 0 ? 2 : 0;
}

struct vstep {
	int comp;
	bool loaded;
	const char *cg;
	int (*fn)(struct daemon *d);
	const char *ok_text;
	const char *fail_text;
	/* The refusal is the component's program's: it counts CAELUM_STAT_DENIED. A refusal
	 * with no denial counted came from elsewhere (a missing capability, another LSM). */
	bool counted;
};

static void record(struct json_object *comps, const char *name, bool ok, const char *detail,
		   bool *all)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "detail", json_object_new_string(detail));
	json_object_object_add(comps, name, o);
	if (!ok)
		*all = false;
}

static void step(struct daemon *d, const struct vstep *s, struct json_object *comps, bool *all)
{
	char detail[256] = "";
	int mode = d->cfg.comp_mode[s->comp], rc;
	uint64_t denied;

	if (mode != CAELUM_MODE_ENFORCE) {
		snprintf(detail, sizeof(detail), "skipped: component is in %s mode",
			 mode_name(mode));
		json_object_object_add(comps, component_name(s->comp),
				       json_object_new_string(detail));
		return;
	}
	if (!s->loaded) {
		record(comps, component_name(s->comp), false, components_error(&d->comps, s->comp),
		       all);
		return;
	}
	denied = daemon_kstat(d, CAELUM_STAT_DENIED);
	rc = run_child(s->cg, s->fn, d, detail, sizeof(detail));
	if (!rc && s->counted && daemon_kstat(d, CAELUM_STAT_DENIED) == denied) {
		snprintf(detail, sizeof(detail),
			 "refused, but not by the %s program: it counted no denial (the kernel "
			 "refuses a mknod without CAP_MKNOD, a bind below 1024 without "
			 "CAP_NET_BIND_SERVICE, before any program runs)",
			 component_name(s->comp));
		rc = 1;
	}
	if (!detail[0])
		snprintf(detail, sizeof(detail), "%s", rc ? s->fail_text : s->ok_text);
	record(comps, component_name(s->comp), rc == 0, detail, all);
}

static void step_cpu(struct daemon *d, uint64_t before, struct json_object *comps, bool *all)
{
	char detail[160];
	uint64_t got;

	if (d->cfg.comp_mode[CAELUM_COMP_CPU] == CAELUM_MODE_OFF || !daemon_cpu(d)) {
		json_object_object_add(
			comps, "cpu",
			json_object_new_string(
				daemon_cpu(d) ? "skipped: component is off"
					      : components_error(&d->comps, CAELUM_COMP_CPU)));
		return;
	}
	got = cpu_time_ns(daemon_cpu(d), d->verify_tasks_cgid) - before;
	snprintf(detail, sizeof(detail), "%llu ns of a %llu ns spin were accounted",
		 (unsigned long long)got, (unsigned long long)SPIN_NS);
	record(comps, "cpu", got >= SPIN_NS / 2, detail, all);
}

/* The canary limit on .verify-tasks for the probe only, then what the kernel counted. */
static void step_bandwidth(struct daemon *d, struct json_object *comps, bool *all)
{
	struct caelum_bw_dir_count c[CAELUM_BW_DIRS];
	void *bw = daemon_bandwidth(d);
	int mode = d->cfg.comp_mode[CAELUM_COMP_BANDWIDTH], rc, err;
	char detail[256] = "";

	if (mode != CAELUM_MODE_ENFORCE) {
		snprintf(detail, sizeof(detail), "skipped: component is in %s mode",
			 mode_name(mode));
		json_object_object_add(comps, "bandwidth", json_object_new_string(detail));
		return;
	}
	if (!bw) {
		record(comps, "bandwidth", false,
		       components_error(&d->comps, CAELUM_COMP_BANDWIDTH), all);
		return;
	}
	err = bandwidth_canary_set(bw, d->verify_tasks_cgid, VERIFY_BW_KBIT);
	if (err) {
		snprintf(detail, sizeof(detail), "failed to set the canary limit: %s",
			 strerror(-err));
		record(comps, "bandwidth", false, detail, all);
		return;
	}
	rc = run_child(d->verify_tasks_cgroup, probe_udp_burst, d, detail, sizeof(detail));
	err = bandwidth_counts(bw, d->verify_tasks_cgid, c);
	bandwidth_canary_clear(bw, d->verify_tasks_cgid);
	if (!detail[0] && err)
		snprintf(detail, sizeof(detail), "failed to read the canary's counts: %s",
			 strerror(-err));
	else if (!detail[0])
		snprintf(detail, sizeof(detail),
			 "%d datagrams at the %d kbit/s canary limit: %llu passed, %llu dropped%s",
			 VERIFY_BW_DGRAMS, VERIFY_BW_KBIT,
			 (unsigned long long)c[CAELUM_BW_EGRESS].packets,
			 (unsigned long long)c[CAELUM_BW_EGRESS].dropped,
			 rc == 1   ? ": NOT held"
			 : rc == 2 ? ": nothing passed"
				   : "");
	record(comps, "bandwidth", !rc && !err && c[CAELUM_BW_EGRESS].dropped > 0, detail, all);
}

struct json_object *verify_run(struct daemon *d)
{
	const struct vstep steps[] = {
		{ CAELUM_COMP_PORTS, true, d->verify_probe_cgroup, probe_bind,
		  "bind to the canary port from an unmanaged cgroup: EPERM",
		  "bind to the canary port was NOT refused", true },
		{ CAELUM_COMP_DATABASES, daemon_connect(d) != NULL, d->verify_probe_cgroup,
		  probe_connect, "connect to the canary database from an unmanaged cgroup: EPERM",
		  "connect to the canary database was NOT refused", true },
		{ CAELUM_COMP_DEVICES, daemon_devices(d) != NULL, d->verify_probe_cgroup,
		  probe_mknod, "mknod of the canary device by another cgroup: EPERM",
		  "mknod of the canary device was NOT refused", true },
		{ CAELUM_COMP_TASKS, daemon_tasks(d) != NULL, d->verify_tasks_cgroup, probe_fork,
		  "a fork past the canary budget was killed",
		  "a fork past the canary budget survived", false },
	};
	struct json_object *o = json_object_new_object(), *comps = json_object_new_object();
	uint64_t cpu_before = daemon_cpu(d) ? cpu_time_ns(daemon_cpu(d), d->verify_tasks_cgid) : 0;
	bool all = true;
	char ts[64];

	verify_canaries(d);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		step(d, &steps[i], comps, &all);
	step_cpu(d, cpu_before, comps, &all);
	step_bandwidth(d, comps, &all);
	time_format_rfc3339(time_now_ns(), ts, sizeof(ts));
	json_object_object_add(o, "time", json_object_new_string(ts));
	json_object_object_add(o, "ok", json_object_new_boolean(all));
	json_object_object_add(o, "components", comps);
	return o;
}

static void emit_result(struct daemon *d, struct json_object *res, bool was_ok)
{
	bool ok = json_object_get_boolean(json_object_object_get(res, "ok"));
	struct json_object *e;

	if (ok && was_ok)
		return; /* all fine, as before: nothing to say */
	e = event_new(d->ev, ok ? "verification_passed" : "verification_failed", "verified");
	json_object_object_add(e, "components",
			       json_object_get(json_object_object_get(res, "components")));
	events_emit(d->ev, e);
}

struct json_object *verify_now(struct daemon *d)
{
	struct json_object *res = verify_run(d);
	bool was_ok = !d->last_verify ||
		      json_object_get_boolean(json_object_object_get(d->last_verify, "ok"));

	emit_result(d, res, was_ok);
	json_object_put(d->last_verify);
	d->last_verify = json_object_get(res);
	d->last_verify_ns = time_now_ns();
	return res;
}

void verify_tick(struct daemon *d, uint64_t now)
{
	if (now - d->last_integrity_ns >= INTEGRITY_INTERVAL_NS) {
		d->last_integrity_ns = now;
		integrity_check(d);
	}
	if (!d->cfg.verify_interval_s ||
	    now - d->last_verify_ns < (uint64_t)d->cfg.verify_interval_s * 1000000000ULL)
		return;
	json_object_put(verify_now(d));
}

void verify_close(struct daemon *d)
{
	json_object_put(d->last_verify);
	d->last_verify = NULL;
	rmdir(d->verify_probe_cgroup);
}
