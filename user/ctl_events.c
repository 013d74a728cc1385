// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl events, status, reload (through caelumd). */
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
					    "pid", "comm", "count", NULL };

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
			return ctl_usage("unknown keyword '%s' (expected follow, service, host, type, limit)",
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
		rc = ctl_call("events.list", p, &res);
	json_object_put(p);
	if (rc || follow)
		return rc;
	if (ctl.json) {
		ctl_json_print(res);
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(res); i++)
		print_event(json_object_array_get_idx(res, i));
	json_object_put(res);
	return 0;
}

/* Where a program hooks in: its tracepoint (from its link), else its attach type, else
 * its program type. */
static const char *prog_hook(struct json_object *p)
{
	struct json_object *link;

	if (json_object_object_get_ex(p, "link", &link) && jstr(link, "tracepoint"))
		return jstr(link, "tracepoint");
	if (jstr(p, "attach_type"))
		return jstr(p, "attach_type");
	return jstr(p, "type") ? jstr(p, "type") : "-";
}

/* Column widths from the data, so that no name breaks the table. */
static void prog_widths(struct json_object *comps, int *w_name, int *w_hook)
{
	*w_name = 10;
	*w_hook = 20;
	for (size_t i = 0; i < json_object_array_length(comps); i++) {
		struct json_object *progs;

		if (!json_object_object_get_ex(json_object_array_get_idx(comps, i), "programs", &progs))
			continue;
		for (size_t j = 0; j < json_object_array_length(progs); j++) {
			struct json_object *p = json_object_array_get_idx(progs, j);
			int n = (int)strlen(jstr(p, "name") ? jstr(p, "name") : "-");
			int h = (int)strlen(prog_hook(p));

			*w_name = n > *w_name ? n : *w_name;
			*w_hook = h > *w_hook ? h : *w_hook;
		}
	}
}

static void print_component(struct json_object *c, int w_name, int w_hook)
{
	struct json_object *progs;

	printf("  %-8s mode %-8s %s\n", jstr(c, "name"), jstr(c, "mode"),
	       json_object_get_boolean(json_object_object_get(c, "attached"))
		       ? "attached (kernel-verified)" : "NOT ATTACHED");
	json_object_object_get_ex(c, "programs", &progs);
	for (size_t i = 0; i < json_object_array_length(progs); i++) {
		struct json_object *p = json_object_array_get_idx(progs, i);

		printf("    %-*s id %-6lld %-*s %s run_cnt %lld run_time_ns %lld\n", w_name,
		       jstr(p, "name") ? jstr(p, "name") : "-", (long long)jint(p, "id"), w_hook,
		       prog_hook(p),
		       json_object_get_boolean(json_object_object_get(p, "attached")) ? "attached"
											: "detached",
		       (long long)jint(p, "run_cnt"), (long long)jint(p, "run_time_ns"));
	}
}

static void print_status(struct json_object *s)
{
	struct json_object *comps, *maps, *ev, *lost, *reg, *pol;
	int w_name, w_hook;

	printf("caelumd %s on %s, pid %lld, up %llds\n", jstr(s, "version"), jstr(s, "host"),
	       (long long)jint(s, "pid"), (long long)jint(s, "uptime_s"));
	printf("config %s, cgroup_root %s, bpffs %s\n", jstr(s, "config"), jstr(s, "cgroup_root"),
	       jstr(s, "bpffs"));
	printf("components:\n");
	json_object_object_get_ex(s, "components", &comps);
	prog_widths(comps, &w_name, &w_hook);
	for (size_t i = 0; i < json_object_array_length(comps); i++)
		print_component(json_object_array_get_idx(comps, i), w_name, w_hook);
	json_object_object_get_ex(s, "policy", &pol);
	printf("policy: %lld entries (%lld reserved, %lld managed), registry revision %lld applied, %lld table flips, %lld entry writes\n",
	       (long long)jint(pol, "entries"), (long long)jint(pol, "reserved"),
	       (long long)jint(pol, "managed"), (long long)jint(pol, "applied_revision"),
	       (long long)jint(pol, "table_flips"), (long long)jint(pol, "entry_writes"));
	printf("maps:\n");
	json_object_object_get_ex(s, "maps", &maps);
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		struct json_object *m = json_object_array_get_idx(maps, i);

		printf("  %-14s %-14s %lld/%lld\n", jstr(m, "name"), jstr(m, "type"),
		       (long long)jint(m, "entries"), (long long)jint(m, "max_entries"));
	}
	json_object_object_get_ex(s, "events", &ev);
	json_object_object_get_ex(ev, "lost", &lost);
	printf("events: %lld emitted, %lld denied, %lld audited, %lld folded; lost: ringbuf %lld+%lld, journal %lld, subscribers %lld\n",
	       (long long)jint(ev, "emitted"), (long long)jint(ev, "denied"),
	       (long long)jint(ev, "audited"), (long long)jint(ev, "folded"),
	       (long long)jint(lost, "kernel_ringbuf_first"),
	       (long long)jint(lost, "kernel_ringbuf_followup"), (long long)jint(lost, "journal"),
	       (long long)jint(lost, "subscribers"));
	json_object_object_get_ex(s, "registry", &reg);
	printf("registry: %s backend, revision %lld, %lld services, %lld reservations\n",
	       jstr(reg, "backend"), (long long)jint(reg, "revision"), (long long)jint(reg, "services"),
	       (long long)jint(reg, "reservations"));
	if (json_object_object_get_ex(reg, "endpoints", NULL))
		printf("  etcd %s (prefix %s)%s; watch restarts %lld, compactions %lld, leader changes %lld\n",
		       jstr(reg, "endpoint"), jstr(reg, "prefix"),
		       json_object_get_boolean(json_object_object_get(reg, "stale")) ?
			       ", STALE: enforcing the last revision received" : "",
		       (long long)jint(reg, "watch_restarts"), (long long)jint(reg, "compactions"),
		       (long long)jint(reg, "leader_changes"));
	json_object_object_get_ex(s, "resources", &reg);
	printf("resources: cpus %s; memory_mb %s; tasks %s; gpus %s\n", jstr(reg, "cpus"),
	       jstr(reg, "memory_mb"), jstr(reg, "tasks"), jstr(reg, "gpus"));
}

int do_status(int argc, char **argv)
{
	struct json_object *res;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("status takes no arguments");
	rc = ctl_call("status", NULL, &res);
	if (rc)
		return rc;
	if (ctl.json) {
		ctl_json_print(res);
		return 0;
	}
	print_status(res);
	json_object_put(res);
	return 0;
}

int do_reload(int argc, char **argv)
{
	struct json_object *res;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("reload takes no arguments");
	rc = ctl_call("reload", NULL, &res);
	if (rc)
		return rc;
	if (ctl.json) {
		ctl_json_print(res);
		return 0;
	}
	printf("reloaded: %lld services, %lld port entries, registry revision %lld\n",
	       (long long)jint(res, "services"), (long long)jint(res, "port_entries"),
	       (long long)jint(res, "registry_revision"));
	json_object_put(res);
	return 0;
}

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
	rc = ctl_call("resources", NULL, &res);
	if (rc)
		return rc;
	if (ctl.json) {
		ctl_json_print(res);
		return 0;
	}
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
			printf("%s%s", k ? "," : "", json_object_get_string(json_object_array_get_idx(g, k)));
		printf("%s\n", json_object_array_length(g) ? "" : "-");
	}
	json_object_put(res);
	return 0;
}

/* caelumctl verify: exit 0 only if every enabled component proved itself. */
int do_verify(int argc, char **argv)
{
	struct json_object *res, *comps;
	bool ok;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("verify takes no arguments");
	rc = ctl_call("verify", NULL, &res);
	if (rc)
		return rc;
	ok = json_object_get_boolean(json_object_object_get(res, "ok"));
	if (ctl.json) {
		ctl_json_print(res);
		return ok ? EXIT_OK : EXIT_FAIL;
	}
	comps = json_object_object_get(res, "components");
	json_object_object_foreach(comps, name, v)
	{
		if (json_object_is_type(v, json_type_string))
			printf("  %-10s %s\n", name, json_object_get_string(v));
		else
			printf("  %-10s %-6s %s\n", name,
			       json_object_get_boolean(json_object_object_get(v, "ok")) ? "ok" : "FAILED",
			       jstr(v, "detail"));
	}
	printf("%s\n", ok ? "verified: every enabled component denied what it must"
			  : "verification FAILED");
	json_object_put(res);
	return ok ? EXIT_OK : EXIT_FAIL;
}

/* caelumctl token { show | rotate }: the API token (HTTP mutations, MCP). */
static int token_cmd(const char *method, int argc)
{
	struct json_object *res;
	int rc;

	if (argc)
		return ctl_usage("token %s takes no arguments", method + 6);
	rc = ctl_call(method, NULL, &res);
	if (rc)
		return rc;
	if (ctl.json) {
		ctl_json_print(res);
		return 0;
	}
	printf("%s\n", jstr(res, "token"));
	json_object_put(res);
	return 0;
}

static int do_token_show(int argc, char **argv)
{
	(void)argv;
	return token_cmd("token.show", argc);
}

static int do_token_rotate(int argc, char **argv)
{
	(void)argv;
	return token_cmd("token.rotate", argc);
}

static int do_token_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "Usage: caelumctl token { show | rotate }\n"
			"  show    print the API token (Authorization: Bearer TOKEN)\n"
			"  rotate  replace it; the old one stops working at once\n");
	return 0;
}

int do_token(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "show", do_token_show },
		{ "rotate", do_token_rotate },
		{ "help", do_token_help },
		{},
	};

	return cmd_select(cmds, argc, argv, do_token_help);
}
