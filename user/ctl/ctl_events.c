// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl events [follow] [filters]: the event journal (through caelumd). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "rpc.h"

static void print_kv(struct json_object *e, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(e, key, &v) || !v)
		return;
	printf(" %s=%s", key, json_object_get_string(v));
}

static void print_event(struct json_object *e)
{
	static const char *const keys[] = { "service", "port", "proto", "owner", "reason",
					    "pid",     "comm", "count", NULL };

	if (ctl.json) {
		ctl_json_print(json_object_get(e));
		fflush(stdout);
		return;
	}
	printf("%s %-16s %-8s", jstr(e, "time"), jstr(e, "type"), jstr(e, "action"));
	for (size_t i = 0; keys[i]; i++)
		print_kv(e, keys[i]);
	if (json_object_get_boolean(json_object_object_get(e, "followup")))
		printf(" (folded follow-up)");
	printf("\n");
	fflush(stdout);
}

static int events_args(int argc, char **argv, struct json_object *p, bool *follow)
{
	for (; argc; NEXT_ARG()) {
		if (is_prefix(argv[0], "follow")) {
			*follow = true;
			continue;
		}
		if (argc < 2)
			return ctl_usage("'%s' needs a value", argv[0]);
		if (is_prefix(argv[0], "service")) {
			json_object_object_add(p, "service", json_object_new_string(argv[1]));
		} else if (is_prefix(argv[0], "host")) {
			json_object_object_add(p, "host", json_object_new_string(argv[1]));
		} else if (is_prefix(argv[0], "type")) {
			json_object_object_add(p, "type", json_object_new_string(argv[1]));
		} else if (is_prefix(argv[0], "limit")) {
			char *end;
			long n = strtol(argv[1], &end, 10);

			if (*end || n < 1 || n > 16384)
				return ctl_usage("limit: '%s' is not a number in 1-16384", argv[1]);
			json_object_object_add(p, "limit", json_object_new_int((int)n));
		} else {
			return ctl_usage("unknown keyword '%s' (expected follow, service, host, "
					 "type, limit)",
					 argv[0]);
		}
		NEXT_ARG();
	}
	return 0;
}

static int events_follow(struct json_object *p)
{
	struct json_object *res = NULL, *ev;
	struct rpc_client *c = NULL;
	int rc;

	rc = ctl_connect(&c);
	if (!rc)
		rc = ctl_call_on(c, "events.follow", p, &res);
	if (rc) {
		rpc_client_close(c);
		return rc;
	}
	for (size_t i = 0; i < json_object_array_length(res); i++)
		print_event(json_object_array_get_idx(res, i));
	json_object_put(res);
	while (!rpc_client_next(c, &ev)) {
		print_event(ev);
		json_object_put(ev);
	}
	rpc_client_close(c);
	return ctl_error(EXIT_UNAVAILABLE, "caelumd closed the event stream");
}

int do_events(int argc, char **argv)
{
	struct json_object *p = json_object_new_object(), *res;
	bool follow = false;
	int rc;

	rc = events_args(argc, argv, p, &follow);
	if (!rc && follow)
		rc = events_follow(p);
	else if (!rc)
		rc = ctl_call_show("events.list", p, &res);
	json_object_put(p);
	if (rc || follow || !res)
		return rc;
	for (size_t i = 0; i < json_object_array_length(res); i++)
		print_event(json_object_array_get_idx(res, i));
	json_object_put(res);
	return 0;
}
