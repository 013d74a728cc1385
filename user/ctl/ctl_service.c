// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl service ... (through caelumd; service where is ctl_hosts.c's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "jsonv.h"

static void print_ports_inline(struct json_object *ports)
{
	size_t n = ports ? json_object_array_length(ports) : 0;

	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? "," : "",
		       json_object_get_string(json_object_array_get_idx(ports, i)));
	if (!n)
		printf("-");
}

static void print_service_row(struct json_object *s)
{
	struct json_object *ports = NULL;

	json_object_object_get_ex(s, "ports", &ports);
	printf("%-24s %-8s %-6s ", jstr(s, "name"), jstr(s, "state"), jstr(s, "origin"));
	print_ports_inline(ports);
	printf("\n");
}

static int service_list(int argc, char **argv)
{
	struct json_object *res;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("service list takes no arguments");
	rc = ctl_call_show("service.list", NULL, &res);
	if (rc || !res)
		return rc;
	printf("%-24s %-8s %-6s %s\n", "NAME", "STATE", "ORIGIN", "PORTS");
	for (size_t i = 0; i < json_object_array_length(res); i++)
		print_service_row(json_object_array_get_idx(res, i));
	json_object_put(res);
	return 0;
}

static int service_show(int argc, char **argv)
{
	struct json_object *res, *p, *v;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: service show NAME");
	p = ctl_name_param(argv[0]);
	rc = ctl_call_show("service.show", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("service %s\n", jstr(res, "name"));
	printf("  state:      %s (%lld processes)\n", jstr(res, "state"),
	       (long long)jint(res, "processes"));
	printf("  origin:     %s%s%s\n", jstr(res, "origin"), jstr(res, "source") ? " " : "",
	       jstr(res, "source") ? jstr(res, "source") : "");
	printf("  cgroup:     %s (id %lld)\n", jstr(res, "cgroup"),
	       (long long)jint(res, "cgroup_id"));
	printf("  ports:      ");
	json_object_object_get_ex(res, "ports", &v);
	print_ports_inline(v);
	printf("\n");
	if (json_object_object_get_ex(res, "recent_denials", &v))
		printf("  denials:    %lld by it, %lld against it (recent events)\n",
		       (long long)jint(v, "by_service"), (long long)jint(v, "against_service"));
	json_object_put(res);
	return 0;
}

static int service_apply(int argc, char **argv)
{
	struct json_object *spec, *p, *res;
	struct verr e = {};
	int rc;

	if (argc != 1)
		return ctl_usage("usage: service apply FILE");
	if (jv_parse_file(argv[0], &spec, &e)) {
		rc = ctl_error(EXIT_CONFIG, "%s", e.n ? e.msgs[0] : argv[0]);
		verr_free(&e);
		return rc;
	}
	p = json_object_new_object();
	json_object_object_add(p, "spec", spec);
	json_object_object_add(p, "file", json_object_new_string(argv[0]));
	rc = ctl_call_show("service.apply", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("applied service %s\n", jstr(res, "name"));
	json_object_put(res);
	return 0;
}

static int service_delete(int argc, char **argv)
{
	struct json_object *p, *res;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: service delete NAME");
	p = ctl_name_param(argv[0]);
	rc = ctl_call_show("service.delete", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("deleted service %s\n", argv[0]);
	json_object_put(res);
	return 0;
}

int do_service(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "list", service_list },
		{ "show", service_show },
		{ "apply", service_apply },
		{ "delete", service_delete },
		{ "where", ctl_service_where },
		{ "help", NULL },
		{},
	};

	return ctl_object(
		cmds, service_list,
		"service { list | show NAME | apply FILE | delete NAME | where NAME | help }", argc,
		argv);
}
