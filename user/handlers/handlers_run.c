// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Mandatory startup validation, daemon side (run.check), and the start report
 * (run.started). caelumctl adds what only it can see (the environment it will exec, the
 * database handshakes from the probe cgroup) and reports every failure at once.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "credentials.h"
#include "databases.h"
#include "dbprobe.h"
#include "handlers_int.h"
#include "log.h"

static struct json_object *check_ports(struct hcall *c, const char *name, struct verr *e)
{
	struct json_object *ports = json_object_new_array();
	struct reg_claim *cl;
	size_t n;

	if (registry_claims(registry_state(c->x->reg), &cl, &n))
		return ports;
	for (size_t i = 0; i < n; i++) {
		char buf[32];

		if (strcmp(cl[i].service, name))
			continue;
		hc_fmt_port(buf, sizeof(buf), cl[i].port, cl[i].proto);
		json_object_array_add(ports, json_object_new_string(buf));
		hc_foreign_holders(c->x, name, cl[i].port, cl[i].proto, false, e, name);
	}
	free(cl);
	return ports;
}

static struct json_object *addrs_json(const struct db_rt *rt)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; rt && i < rt->n_addrs; i++) {
		char buf[64];

		db_addr_fmt(&rt->addrs[i], buf, sizeof(buf));
		json_object_array_add(arr, json_object_new_string(buf));
	}
	return arr;
}

/* What caelumctl must check itself: the env credentials and the databases to reach. */
static struct json_object *db_targets(struct hcall *c, const struct service_spec *s)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->n_dbs; i++) {
		const struct reg_db *rd = registry_db(c->x->reg, s->dbs[i].name);
		const struct handler_ops *ops = c->x->ops;
		const struct db_rt *rt = ops && ops->database_rt
						 ? ops->database_rt(c->x->owner, s->dbs[i].name)
						 : NULL;
		struct json_object *o;
		char target[DB_HOST_MAX + 16];

		if (!rd)
			continue;
		o = json_object_new_object();
		snprintf(target, sizeof(target), strchr(rd->spec.host, ':') ? "[%s]:%u" : "%s:%u",
			 rd->spec.host, rd->spec.port);
		json_object_object_add(o, "name", json_object_new_string(rd->spec.name));
		json_object_object_add(o, "kind",
				       json_object_new_string(db_kind_name(rd->spec.kind)));
		json_object_object_add(o, "target", json_object_new_string(target));
		json_object_object_add(o, "addresses", addrs_json(rt));
		json_object_array_add(arr, o);
	}
	return arr;
}

int h_run_check(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	const struct reg_service *s;
	struct json_object *ports, *creds;
	struct verr e = {};
	struct svc_rt *rt;
	const char *name;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	s = registry_service(c->x->reg, name);
	rt = svcs_find(c->x->svcs, name);
	if (!s || !rt || (!rt->followed && rt->cgid == CAELUM_CGID_NONE))
		return hc_fail(c, EXIT_CONFIG, "unknown service '%s' (caelumctl service list)",
			       name);
	/* Capacity may have shrunk since the service was admitted (a smaller host, a reload). */
	registry_admit_service(c->x->reg, name, &e);
	ports = check_ports(c, name, &e);
	creds = credentials_check(&s->spec, &e);
	c->result = json_object_new_object();
	json_object_object_add(c->result, "name", json_object_new_string(name));
	json_object_object_add(c->result, "cgroup", json_object_new_string(rt->cgroup));
	json_object_object_add(c->result, "cgroup_followed", json_object_new_boolean(rt->followed));
	json_object_object_add(
		c->result, "probe_cgroup",
		json_object_new_string(c->x->probe_cgroup ? c->x->probe_cgroup : ""));
	json_object_object_add(c->result, "ports", ports);
	json_object_object_add(c->result, "credentials", creds);
	json_object_object_add(c->result, "databases", db_targets(c, &s->spec));
	if (s->spec.res.tasks) {
		bool kills;
		const char *note = c->x->ops && c->x->ops->tasks_note
					   ? c->x->ops->tasks_note(c->x->owner, &kills)
					   : (kills = false, "not enforced here");

		json_object_object_add(c->result, "tasks_budget", json_object_new_string(note));
		json_object_object_add(c->result, "tasks_budget_kills",
				       json_object_new_boolean(kills));
	}
	json_object_object_add(c->result, "failures", verr_to_json(&e));
	verr_free(&e);
	return 0;
}

static void read_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	buf[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* The command caelumctl run is about to exec: its comm-to-be and its text. */
static int param_command(struct hcall *c, char *comm, size_t clen, char *text, size_t tlen)
{
	struct json_object *v = hc_param(c, "command");
	size_t off = 0;
	char repr[64];

	comm[0] = text[0] = '\0';
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array) || !json_object_array_length(v))
		return hc_fail(c, EXIT_USAGE,
			       "params: command: expected a non-empty array of strings, got %s",
			       json_object_is_type(v, json_type_array)
				       ? "[]"
				       : jv_repr(v, repr, sizeof(repr)));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *a = json_object_array_get_idx(v, i);
		const char *s = json_object_get_string(a);

		if (!json_object_is_type(a, json_type_string))
			return hc_fail(c, EXIT_USAGE,
				       "params: command[%zu]: expected string, got %s %s", i,
				       jv_type_name(json_object_get_type(a)),
				       jv_repr(a, repr, sizeof(repr)));
		if (i == 0) {
			const char *base = strrchr(s, '/');

			snprintf(comm, clen, "%.15s", base ? base + 1 : s);
		}
		off += (size_t)snprintf(text + off, off < tlen ? tlen - off : 0, "%s%s",
					i ? " " : "", s);
	}
	return 0;
}

int h_run_started(struct hcall *c)
{
	static const char *const keys[] = { "name", "pid", "command", "credentials", NULL };
	struct json_object *e;
	struct verr ve = {};
	struct svc_rt *rt;
	const char *name;
	char comm[32], command[1024];
	int64_t pid;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	if (!hc_param(c, "pid") ||
	    !jv_get_int(hc_param(c, "pid"), 1, INT32_MAX, P, "pid", &pid, &ve))
		return ve.n ? hc_fail_verr(c, EXIT_USAGE, &ve)
			    : hc_fail(c, EXIT_USAGE, "params: pid: missing required key");
	if (param_command(c, comm, sizeof(comm), command, sizeof(command)))
		return -1;
	rt = svcs_find(c->x->svcs, name);
	if (!rt)
		return hc_fail(c, EXIT_CONFIG, "unknown service '%s'", name);
	rt->main_pid = (pid_t)pid;
	rt->started_ns = time_now_ns();
	rt->running = true;
	/* The first health check comes one interval after the start, not before it listens. */
	rt->health_last_ns = time_now_ns();
	if (!comm[0])
		read_comm((pid_t)pid, comm, sizeof(comm));
	e = event_new(c->x->ev, "service_started", "changed");
	json_object_object_add(e, "service", json_object_new_string(name));
	json_object_object_add(e, "pid", json_object_new_int((int)pid));
	json_object_object_add(e, "comm", json_object_new_string(comm));
	json_object_object_add(e, "cgroup_id", json_object_new_uint64(rt->cgid));
	if (command[0])
		json_object_object_add(e, "command", json_object_new_string(command));
	/* Fingerprints of the environment credentials it was given (never values). */
	if (hc_param(c, "credentials") &&
	    json_object_is_type(hc_param(c, "credentials"), json_type_array))
		json_object_object_add(e, "credentials",
				       json_object_get(hc_param(c, "credentials")));
	events_emit(c->x->ev, e);
	c->result = json_object_new_object();
	json_object_object_add(c->result, "cgroup", json_object_new_string(rt->cgroup));
	return 0;
}
