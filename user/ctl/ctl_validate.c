// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Mandatory startup validation, caelumctl's half: caelumd checks ports, admission and
 * credential files (run.check); here the environment that will be exec'd is checked and
 * the service's databases are asked for a real protocol handshake, from Caelum's probe
 * cgroup. Every failure of both halves is collected; values of secrets are never shown,
 * only their SHA-256 fingerprints.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "ctl.h"
#include "dbprobe.h"
#include "fingerprint.h"
#include "probe.h"
#include "rpc.h"
#include "validate.h"

#define DB_TIMEOUT_MS  2000
#define BACKOFF_MAX_MS 2000

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Environment credentials: set, non-empty; their fingerprints for the start report. */
static void check_env(struct json_object *creds, const char *name, struct validation *v)
{
	for (size_t i = 0; i < json_object_array_length(creds); i++) {
		const char *env = jstr(json_object_array_get_idx(creds, i), "env"), *val;
		struct json_object *o;
		char hex[FINGERPRINT_HEX], p[64];

		if (!env)
			continue;
		val = getenv(env);
		snprintf(p, sizeof(p), "credentials[%zu]", i);
		if (!val || !*val) {
			verr_add(&v->fails, name, p,
				 "environment variable %s is not set or is empty", env);
			continue;
		}
		fingerprint_data(val, strlen(val), hex);
		o = json_object_new_object();
		json_object_object_add(o, "env", json_object_new_string(env));
		json_object_object_add(o, "sha256", json_object_new_string(hex));
		json_object_array_add(v->fingerprints, o);
	}
}

/* One database, retried with backoff until it answers or the deadline passes. */
static void probe_db(struct json_object *db, uint64_t deadline_ms, struct probe_result *r)
{
	struct probe_spec ps = { .kind = PROBE_DB, .timeout_ms = DB_TIMEOUT_MS };
	unsigned int backoff = 100;

	ps.db_kind = db_kind_parse(jstr(db, "kind"));
	snprintf(ps.target, sizeof(ps.target), "%s", jstr(db, "target"));
	for (;;) {
		if (probe_run(&ps, r) < 0 || r->ok || mono_ms() + backoff >= deadline_ms)
			return;
		usleep(backoff * 1000);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* In a child placed in the probe cgroup (a database may refuse unmanaged processes). */
static void probe_child(int wfd, const char *cg, struct json_object *dbs, unsigned int wait_s)
{
	uint64_t deadline = mono_ms() + (uint64_t)wait_s * 1000;
	struct json_object *out = json_object_new_array();
	const char *s;

	if (cgroup_move(cg, 0))
		_exit(3);
	for (size_t i = 0; i < json_object_array_length(dbs); i++) {
		struct probe_result r = { 0 };
		struct json_object *o = json_object_new_object();

		probe_db(json_object_array_get_idx(dbs, i), deadline, &r);
		json_object_object_add(o, "ok", json_object_new_boolean(r.ok));
		json_object_object_add(o, "detail", json_object_new_string(r.detail));
		json_object_array_add(out, o);
	}
	s = json_object_to_json_string(out);
	if (write(wfd, s, strlen(s)) < 0)
		_exit(2);
	_exit(0);
}

static struct json_object *probe_all(const char *cg, struct json_object *dbs, unsigned int wait_s)
{
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	int fds[2], status;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		probe_child(fds[1], cg, dbs, wait_s);
	}
	close(fds[1]);
	while (pid > 0 && len < sizeof(buf) - 1 &&
	       (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	buf[len] = '\0';
	return len ? json_tokener_parse(buf) : NULL;
}

static void check_dbs(struct json_object *dbs, const char *cg, const char *name,
		      unsigned int wait_s, struct validation *v)
{
	struct json_object *res = json_object_array_length(dbs) ? probe_all(cg, dbs, wait_s) : NULL;

	for (size_t i = 0; i < json_object_array_length(dbs); i++) {
		struct json_object *db = json_object_array_get_idx(dbs, i);
		struct json_object *r = res ? json_object_array_get_idx(res, i) : NULL;
		struct json_object *o = json_object_new_object();
		bool ok = r && json_object_get_boolean(json_object_object_get(r, "ok"));
		const char *detail = r ? jstr(r, "detail") : "could not run the probe";
		char p[64];

		json_object_object_add(o, "name", json_object_new_string(jstr(db, "name")));
		json_object_object_add(o, "ok", json_object_new_boolean(ok));
		json_object_object_add(o, "detail", json_object_new_string(detail));
		json_object_array_add(v->databases, o);
		if (ok)
			continue;
		snprintf(p, sizeof(p), "databases[%zu]", i);
		verr_add(&v->fails, name, p, "%s (%s at %s) is not reachable: %s", jstr(db, "name"),
			 jstr(db, "kind"), jstr(db, "target"), detail);
	}
	json_object_put(res);
}

int validate_service(struct rpc_client *c, const char *name, unsigned int wait_s,
		     struct validation *v)
{
	struct json_object *p = json_object_new_object(), *arr;
	int rc;

	memset(v, 0, sizeof(*v));
	v->fingerprints = json_object_new_array();
	v->databases = json_object_new_array();
	json_object_object_add(p, "name", json_object_new_string(name));
	rc = ctl_call_on(c, "run.check", p, &v->check);
	json_object_put(p);
	if (rc)
		return rc;
	json_object_object_get_ex(v->check, "failures", &arr);
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
		verr_add_raw(&v->fails, json_object_get_string(json_object_array_get_idx(arr, i)));
	check_env(json_object_object_get(v->check, "credentials"), name, v);
	check_dbs(json_object_object_get(v->check, "databases"), jstr(v->check, "probe_cgroup"),
		  name, wait_s, v);
	return 0;
}

void validation_free(struct validation *v)
{
	json_object_put(v->check);
	json_object_put(v->fingerprints);
	json_object_put(v->databases);
	verr_free(&v->fails);
}
