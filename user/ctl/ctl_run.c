// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumctl run SERVICE -- CMD: mandatory startup validation (by caelumd), then cgroup
 * placement, then exec. And caelumctl check: validation without a daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "ctl.h"
#include "rpc.h"
#include "dbspec.h"
#include "spec.h"
#include "validate.h"

static char *join_ports(struct json_object *ports)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < json_object_array_length(ports); i++)
		len += strlen(json_object_get_string(json_object_array_get_idx(ports, i))) + 1;
	s = calloc(1, len);
	for (size_t i = 0; s && i < json_object_array_length(ports); i++) {
		if (i)
			strcat(s, ",");
		strcat(s, json_object_get_string(json_object_array_get_idx(ports, i)));
	}
	return s;
}

static int run_place(struct rpc_client *c, const char *name, const struct validation *v, char **cmd)
{
	struct json_object *p = json_object_new_object(), *res = NULL;
	struct json_object *argv = json_object_new_array();
	const char *cg = jstr(v->check, "cgroup");
	int err, rc;

	/* Its manager (systemd, a container runtime) starts it and owns its cgroup: moving this
	 * process in would take it out of the manager's sight and control. */
	if (json_object_get_boolean(json_object_object_get(v->check, "cgroup_followed"))) {
		json_object_put(p);
		json_object_put(argv);
		return ctl_error(EXIT_CONFIG,
				 "service '%s' is identified by the existing cgroup '%s' (spec key "
				 "\"cgroup\"): start it with its manager (e.g. systemctl start), "
				 "caelumctl run never moves a process into it",
				 name, cg);
	}

	err = cgroup_move(cg, 0);
	if (err) {
		json_object_put(p);
		json_object_put(argv);
		return ctl_error(EXIT_FAIL, "failed to move into cgroup '%s': %s", cg,
				 strerror(-err));
	}
	json_object_object_add(p, "name", json_object_new_string(name));
	json_object_object_add(p, "pid", json_object_new_int(getpid()));
	for (; *cmd; cmd++)
		json_object_array_add(argv, json_object_new_string(*cmd));
	json_object_object_add(p, "command", argv);
	json_object_object_add(p, "credentials", json_object_get(v->fingerprints));
	rc = ctl_call_on(c, "run.started", p, &res);
	json_object_put(p);
	json_object_put(res);
	return rc;
}

/* "--wait SECONDS" or "wait SECONDS" before the service name. */
static int parse_wait(int *argc, char ***argv, unsigned int *wait_s)
{
	char *end;
	long w;

	*wait_s = 0;
	if (*argc < 2 || (strcmp((*argv)[0], "--wait") && strcmp((*argv)[0], "wait")))
		return 0;
	w = strtol((*argv)[1], &end, 10);
	if (*end || w < 0 || w > 3600)
		return ctl_usage("--wait: '%s' is not a number of seconds in 0-3600", (*argv)[1]);
	*wait_s = (unsigned int)w;
	*argc -= 2;
	*argv += 2;
	return 0;
}

static void exec_service(const char *name, struct validation *v, char **argv)
{
	char *env_ports = join_ports(json_object_object_get(v->check, "ports"));
	int rc;

	setenv("CAELUM_SERVICE", name, 1);
	setenv("CAELUM_PORTS", env_ports ? env_ports : "", 1);
	free(env_ports);
	validation_free(v);
	execvp(argv[0], argv);
	rc = errno == ENOENT ? 127 : 126;
	ctl_error(rc, "failed to execute '%s': %s", argv[0], strerror(errno));
	exit(rc);
}

int do_run(int argc, char **argv)
{
	struct rpc_client *c = NULL;
	struct validation v;
	unsigned int wait_s;
	const char *name;
	int rc;

	if (parse_wait(&argc, &argv, &wait_s))
		return EXIT_USAGE;
	if (argc < 2 || strcmp(argv[1], "--"))
		return ctl_usage("usage: run [--wait SECONDS] SERVICE -- CMD [ARG...]");
	name = argv[0];
	argc -= 2;
	argv += 2;
	if (argc < 1)
		return ctl_usage("usage: run SERVICE -- CMD [ARG...]: no command given");
	if (!service_name_valid(name))
		return ctl_usage("invalid service name '%s'", name);
	rc = ctl_connect(&c);
	if (rc)
		return rc;
	rc = validate_service(c, name, wait_s, &v);
	if (!rc && v.fails.n)
		rc = ctl_verr(EXIT_CONFIG, &v.fails);
	/* Say it before it happens: on hosts without a delegated pids controller the budget is
	 * only the kernel's SIGKILL, and a thread past it takes the whole process down. */
	if (!rc && json_object_get_boolean(json_object_object_get(v.check, "tasks_budget_kills")))
		fprintf(stderr, "caelumctl: note: tasks of '%s': %s\n", name,
			jstr(v.check, "tasks_budget"));
	if (!rc)
		rc = run_place(c, name, &v, argv);
	rpc_client_close(c);
	if (rc) {
		validation_free(&v);
		return rc;
	}
	exec_service(name, &v, argv);
	return EXIT_FAIL;
}

/* caelumctl check service NAME [wait S]: the run validation, nothing started. */
static int check_service(int argc, char **argv)
{
	struct json_object *o;
	struct rpc_client *c = NULL;
	struct validation v;
	unsigned int wait_s = 0;
	int rc;

	if (argc == 3) {
		int rest = 2;
		char **wargv = argv + 1;

		if (parse_wait(&rest, &wargv, &wait_s))
			return EXIT_USAGE;
		if (rest)
			return ctl_usage("usage: check service NAME [wait SECONDS]");
	} else if (argc != 1) {
		return ctl_usage("usage: check service NAME [wait SECONDS]");
	}
	rc = ctl_connect(&c);
	if (!rc)
		rc = validate_service(c, argv[0], wait_s, &v);
	rpc_client_close(c);
	if (rc)
		return rc;
	if (v.fails.n) {
		rc = ctl_verr(EXIT_CONFIG, &v.fails);
		validation_free(&v);
		return rc;
	}
	o = json_object_new_object();
	json_object_object_add(o, "service", json_object_new_string(argv[0]));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "credentials",
			       json_object_get(json_object_object_get(v.check, "credentials")));
	json_object_object_add(o, "environment", json_object_get(v.fingerprints));
	json_object_object_add(o, "databases", json_object_get(v.databases));
	validation_free(&v);
	if (ctl.json) {
		ctl_json_print(o);
		return 0;
	}
	printf("service %s: every startup check passed\n", argv[0]);
	json_object_put(o);
	return 0;
}

/* databases_dir parses, and every database a service declares is in it. */
static int check_databases(const struct service_spec *specs, size_t n, struct verr *e)
{
	struct db_spec *dbs = NULL;
	size_t n_dbs = 0;
	int err = dbspec_load_dir(ctl.cfg.databases_dir, &dbs, &n_dbs, e);

	for (size_t i = 0; !err && i < n; i++) {
		for (size_t j = 0; j < specs[i].n_dbs; j++) {
			bool found = false;
			char p[64];

			for (size_t k = 0; k < n_dbs && !found; k++)
				found = !strcmp(dbs[k].name, specs[i].dbs[j].name);
			if (found)
				continue;
			snprintf(p, sizeof(p), "databases[%zu].name", j);
			verr_add(e, specs[i].source, p, "unknown database '%s'",
				 specs[i].dbs[j].name);
			err = -EINVAL;
		}
	}
	dbspecs_free(dbs, n_dbs);
	return err;
}

int do_check(int argc, char **argv)
{
	struct service_spec *specs = NULL;
	struct json_object *o;
	struct verr e = {};
	size_t n = 0, ports = 0;
	int err;

	if (argc && is_prefix(argv[0], "service"))
		return check_service(argc - 1, argv + 1);
	if (argc)
		return ctl_usage("usage: check [service NAME [wait SECONDS]]");
	ctl_config(true);
	err = spec_load_dir(ctl.cfg.services_dir, &specs, &n, &e);
	if (!err)
		err = check_databases(specs, n, &e);
	if (err) {
		specs_free(specs, n);
		return ctl_verr(EXIT_CONFIG, &e);
	}
	for (size_t i = 0; i < n; i++)
		ports += spec_port_count(&specs[i]);
	o = json_object_new_object();
	json_object_object_add(o, "config", json_object_new_string(ctl.cfg.path));
	json_object_object_add(o, "valid", json_object_new_boolean(1));
	json_object_object_add(o, "services", json_object_new_int64((int64_t)n));
	json_object_object_add(o, "reservations", json_object_new_int64((int64_t)ports));
	json_object_object_add(o, "cgroup_root", json_object_new_string(ctl.cfg.cgroup_root));
	specs_free(specs, n);
	if (ctl.json) {
		ctl_json_print(o);
		return 0;
	}
	printf("%s: valid; %zu services, %zu port reservations, cgroup_root %s\n", ctl.cfg.path, n,
	       ports, ctl.cfg.cgroup_root);
	json_object_put(o);
	return 0;
}
