/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Health and reachability probes, run out of caelumd's process so that a slow DNS server, a
 * SYN nobody answers or a hung health command never blocks the event loop.
 *
 * probe_start() forks a child that does the blocking work under the deadline and writes one
 * line back through a pipe; the loop watches that pipe and a timerfd. The parent keeps the
 * deadline too: a child that has not answered by timeout_ms (+ PROBE_GRACE_MS) is killed with
 * its whole process group and the probe reports "timed out after N ms".
 *
 *   PROBE_TCP   "10.0.0.5:8100", "[::1]:8100", "db.internal:5432": every resolved address
 *               in turn until one accepts. ok: "connected to 10.0.0.5:8100".
 *   PROBE_HTTP  GET http:// or https:// URL, redirects not followed: 2xx/3xx ok ("HTTP 200"),
 *               anything else not ok ("HTTP 503"), or curl's reason ("Could not resolve
 *               host: x"). The URL (which may hold credentials) never appears in a detail.
 *   PROBE_EXEC  argv, stdin /dev/null, stdout and stderr captured, environment just
 *               PATH=/usr/sbin:/usr/bin:/sbin:/bin. Exit 0 ok; else "exit status 3: <first
 *               line of its output>". What it leaves running is killed with it.
 *   PROBE_DB    db_probe() (user/daemon/dbprobe.h) on every resolved address until one answers.
 *
 * Details are printable ASCII, at most 255 bytes; a timeout's starts with "timed out after".
 */
#ifndef CAELUM_PROBE_H
#define CAELUM_PROBE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"

#define PROBE_TIMEOUT_MAX_MS 600000
#define PROBE_TARGET_MAX     512
/* The parent's deadline is the child's plus this: the child's own message wins a tie. */
#define PROBE_GRACE_MS 250
/* EXEC: the first line of the command's output kept in the detail. */
#define PROBE_OUTPUT_LINE_MAX 200
/* EXEC: the PATH a bare argv[0] is looked up in, and the command's whole environment. */
#define PROBE_EXEC_PATH "/usr/sbin:/usr/bin:/sbin:/bin"

enum probe_kind { PROBE_TCP, PROBE_HTTP, PROBE_EXEC, PROBE_DB };

struct probe_spec {
	enum probe_kind kind;
	/*
	 * TCP, DB: "host:port" ("[::1]:8100" for IPv6), host names resolved in the child.
	 * HTTP: a http:// or https:// URL.
	 */
	char target[PROBE_TARGET_MAX];
	/* EXEC: NULL-terminated; argv[0] an absolute path or a name looked up in PROBE_EXEC_PATH */
	char *const *argv;
	/*
	 * EXEC: run_as set: the command runs as uid:gid with no supplementary groups, and so
	 * with no capabilities (setuid(2) from root clears them), and with no_new_privs (no
	 * set-user-ID program gets them back). A health check is the spec author's code, not
	 * root's: caelumd always sets it (the spec's health.user, default "nobody").
	 */
	bool run_as;
	uid_t uid;
	gid_t gid;
	int db_kind;		 /* DB: enum db_kind */
	unsigned int timeout_ms; /* the whole probe, 1..PROBE_TIMEOUT_MAX_MS */
	/*
	 * probe_start() only, optional: a cgroup v2 directory the child joins before any work,
	 * so that policy sees the probe's connections as that cgroup's, not caelumd's. Failing
	 * to join is a not-ok result. "" stays in caelumd's cgroup; probe_run() ignores it.
	 */
	char cgroup[PATH_MAX];
};

struct probe_result {
	int ok;
	char detail[256];
	uint64_t elapsed_ms;
};

typedef void (*probe_done_fn)(void *ctx, const struct probe_result *r);
struct probe;

/*
 * Start asynchronously; fn is called exactly once from the loop (never from inside
 * probe_start), unless probe_cancel() is called first. The probe frees itself after fn
 * returns. 0, or -errno: -EINVAL for a spec that cannot be probed (bad target, timeout,
 * kind, argv), -ENOMEM, -EMFILE, -EAGAIN (fork)...
 */
int probe_start(struct loop *l, const struct probe_spec *s, probe_done_fn fn, void *ctx,
		struct probe **out);
/* Kill the child and what it started, reap it, free; fn is not called. NULL ok. */
void probe_cancel(struct probe *p);
/*
 * The same work synchronously in this process (caelumctl): 0 when the probe ran (the verdict
 * is r->ok), or -errno for local errors and invalid specs (r->detail says which).
 */
int probe_run(const struct probe_spec *s, struct probe_result *r);
/*
 * Reap probe children that had not exited yet when their probe ended; call from caelumd's
 * tick (SIGCHLD is not used). Only those pids are waited for, never other children.
 */
void probe_reap(void);

#endif /* CAELUM_PROBE_H */
