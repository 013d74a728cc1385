// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl resources: capacity, reservations and measured use per service. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "rpc.h"

static void num_or_dash(struct json_object *o, const char *key, int width)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) && v)
		printf("%-*s", width, json_object_get_string(v));
	else
		printf("%-*s", width, "-");
}

static void print_dims(struct json_object *dims)
{
	static const char *const names[] = { "cpus", "memory_mb", "gpus" };
	struct json_object *t;

	printf("%-10s %-9s %-9s %-10s %-9s %s\n", "DIMENSION", "CAPACITY", "RESERVED", "ALLOCATED",
	       "FREE", "ENFORCEMENT");
	for (size_t i = 0; i < 3; i++) {
		struct json_object *d = json_object_object_get(dims, names[i]);

		printf("%-10s ", names[i]);
		num_or_dash(d, "capacity", 10);
		num_or_dash(d, "reserved", 10);
		num_or_dash(d, "allocated", 11);
		num_or_dash(d, "free", 10);
		printf("%s\n", jstr(d, "enforcement"));
	}
	t = json_object_object_get(dims, "tasks");
	printf("%-10s %-41s %s\n", "tasks", "(budgets, not a capacity)", jstr(t, "enforcement"));
}

int do_resources(int argc, char **argv)
{
	struct json_object *res, *svcs;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("resources takes no arguments");
	rc = ctl_call_show("resources", NULL, &res);
	if (rc || !res)
		return rc;
	print_dims(json_object_object_get(res, "dimensions"));
	printf("\n%-20s %-6s %-8s %-7s %-7s %-10s %-14s %s\n", "SERVICE", "CPUS", "MEM_MB",
	       "BUDGET", "TASKS", "CPU_USAGE", "CPU_TIME_NS", "GPUS");
	json_object_object_get_ex(res, "services", &svcs);
	for (size_t i = 0; i < json_object_array_length(svcs); i++) {
		struct json_object *s = json_object_array_get_idx(svcs, i);
		struct json_object *r = json_object_object_get(s, "reservation");
		struct json_object *g = json_object_object_get(s, "gpus");

		printf("%-20s ", jstr(s, "name"));
		num_or_dash(r, "cpus", 7);
		num_or_dash(r, "memory_mb", 9);
		num_or_dash(r, "tasks", 8);
		num_or_dash(s, "live_tasks", 8);
		num_or_dash(s, "cpu_usage", 11);
		num_or_dash(s, "cpu_time_ns", 15);
		for (size_t k = 0; k < json_object_array_length(g); k++)
			printf("%s%s", k ? "," : "",
			       json_object_get_string(json_object_array_get_idx(g, k)));
		printf("%s\n", json_object_array_length(g) ? "" : "-");
	}
	json_object_put(res);
	return 0;
}
