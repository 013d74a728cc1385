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
#include "spec.h"

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

static int run_place(struct rpc_client *c, const char *name, struct json_object *prep,
		     char **cmd)
{
	struct json_object *p = json_object_new_object(), *res = NULL;
	struct json_object *argv = json_object_new_array();
	const char *cg = jstr(prep, "cgroup");
	int err, rc;

	err = cgroup_move(cg, 0);
	if (err) {
		json_object_put(p);
		json_object_put(argv);
		return ctl_error(EXIT_FAIL, "failed to move into cgroup '%s': %s", cg, strerror(-err));
	}
	json_object_object_add(p, "name", json_object_new_string(name));
	json_object_object_add(p, "pid", json_object_new_int(getpid()));
	for (; *cmd; cmd++)
		json_object_array_add(argv, json_object_new_string(*cmd));
	json_object_object_add(p, "command", argv);
	rc = ctl_call_on(c, "run.started", p, &res);
	json_object_put(p);
	json_object_put(res);
	return rc;
}

int do_run(int argc, char **argv)
{
	struct json_object *p, *prep = NULL, *ports;
	struct rpc_client *c = NULL;
	const char *name;
	char *env_ports;
	int rc;

	if (argc >= 2 && !strcmp(argv[1], "--")) {
		name = argv[0];
		argc -= 2;
		argv += 2;
	} else {
		return ctl_usage("usage: run SERVICE -- CMD [ARG...]");
	}
	if (argc < 1)
		return ctl_usage("usage: run SERVICE -- CMD [ARG...]: no command given");
	if (!service_name_valid(name))
		return ctl_usage("invalid service name '%s'", name);
	rc = ctl_connect(&c);
	if (rc)
		return rc;
	p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	rc = ctl_call_on(c, "run.prepare", p, &prep);
	json_object_put(p);
	if (!rc)
		rc = run_place(c, name, prep, argv);
	rpc_client_close(c);
	if (rc) {
		json_object_put(prep);
		return rc;
	}
	json_object_object_get_ex(prep, "ports", &ports);
	env_ports = join_ports(ports);
	setenv("CAELUM_SERVICE", name, 1);
	setenv("CAELUM_PORTS", env_ports ? env_ports : "", 1);
	free(env_ports);
	json_object_put(prep);
	execvp(argv[0], argv);
	rc = errno == ENOENT ? 127 : 126;
	ctl_error(rc, "failed to execute '%s': %s", argv[0], strerror(errno));
	return rc;
}

int do_check(int argc, char **argv)
{
	struct service_spec *specs = NULL;
	struct json_object *o;
	struct verr e = {};
	size_t n = 0, ports = 0;
	int err;

	(void)argv;
	if (argc)
		return ctl_usage("check takes no arguments");
	ctl_config(true);
	err = spec_load_dir(ctl.cfg.services_dir, &specs, &n, &e);
	if (err)
		return ctl_verr(EXIT_CONFIG, &e);
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
