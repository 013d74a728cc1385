// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl host { list | show NAME } and service where NAME: the machine registry. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char *jstr_or(struct json_object *o, const char *key, const char *dflt)
{
	const char *s = jstr(o, key);

	return s ? s : dflt;
}

static void print_host_row(struct json_object *h)
{
	struct json_object *cap = NULL, *usage = NULL, *addrs = NULL;
	char where[128] = "-";

	json_object_object_get_ex(h, "capacity", &cap);
	json_object_object_get_ex(h, "usage", &usage);
	json_object_object_get_ex(h, "addresses", &addrs);
	if (addrs && json_object_array_length(addrs))
		snprintf(where, sizeof(where), "%s",
			 json_object_get_string(json_object_array_get_idx(addrs, 0)));
	printf("%-20s %-5s %-24s %6.1f %9lld %8lld/%-8lld %s\n", jstr_or(h, "name", "?"),
	       jstr_or(h, "state", "?"), where,
	       cap ? json_object_get_double(json_object_object_get(cap, "cpus")) : 0.0,
	       (long long)jint(cap, "memory_mb"), (long long)jint(usage, "running"),
	       (long long)jint(usage, "services"), jstr_or(h, "last_seen", "-"));
}

static int host_list(int argc, char **argv)
{
	struct json_object *res;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("host list takes no arguments");
	rc = ctl_call_show("host.list", NULL, &res);
	if (rc || !res)
		return rc;
	printf("%-20s %-5s %-24s %6s %9s %17s %s\n", "NAME", "STATE", "ADDRESS", "CPUS",
	       "MEMORY_MB", "RUNNING/SERVICES", "LAST_SEEN");
	for (size_t i = 0; i < json_object_array_length(res); i++)
		print_host_row(json_object_array_get_idx(res, i));
	json_object_put(res);
	return 0;
}

static int host_show(int argc, char **argv)
{
	struct json_object *res, *p;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: host show NAME");
	p = ctl_name_param(argv[0]);
	rc = ctl_call_show("host.show", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("host %s: %s\n", jstr_or(res, "name", "?"), jstr_or(res, "state", "?"));
	json_object_object_foreach (res, k, v) {
		if (!strcmp(k, "name") || !strcmp(k, "state"))
			continue;
		printf("  %-18s %s\n", k,
		       v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE)
			 : "-");
	}
	json_object_put(res);
	return 0;
}

static int host_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "Usage: caelumctl host { list | show NAME | help }\n");
	return 0;
}

int do_host(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "list", host_list },
		{ "show", host_show },
		{ "help", host_help },
		{},
	};

	if (argc == 0)
		return host_list(0, argv);
	return cmd_select(cmds, argc, argv, host_help);
}

int ctl_service_where(int argc, char **argv)
{
	struct json_object *res, *p;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: service where NAME");
	p = ctl_name_param(argv[0]);
	rc = ctl_call_show("service.where", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("%-20s %-5s %-10s %s\n", "HOST", "STATE", "HEALTH", "PORTS");
	for (size_t i = 0; i < json_object_array_length(res); i++) {
		struct json_object *o = json_object_array_get_idx(res, i), *h = NULL, *ports = NULL;

		json_object_object_get_ex(o, "health", &h);
		json_object_object_get_ex(o, "ports", &ports);
		printf("%-20s %-5s %-10s %s\n", jstr_or(o, "host", "?"), jstr_or(o, "state", "?"),
		       jstr_or(h, "state", "-"),
		       ports ? json_object_to_json_string_ext(
				       ports,
				       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
			     : "[]");
	}
	json_object_put(res);
	return 0;
}
