// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl status, reload: the daemon's state and a reload of its configuration. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "rpc.h"

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

		if (!json_object_object_get_ex(json_object_array_get_idx(comps, i), "programs",
					       &progs))
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
		       ? "attached (kernel-verified)"
		       : "NOT ATTACHED");
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
	printf("policy: %lld entries (%lld reserved, %lld managed), registry revision %lld "
	       "applied, %lld table flips, %lld entry writes\n",
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
	printf("events: %lld emitted, %lld denied, %lld audited, %lld folded; lost: ringbuf "
	       "%lld+%lld, journal %lld, subscribers %lld\n",
	       (long long)jint(ev, "emitted"), (long long)jint(ev, "denied"),
	       (long long)jint(ev, "audited"), (long long)jint(ev, "folded"),
	       (long long)jint(lost, "kernel_ringbuf_first"),
	       (long long)jint(lost, "kernel_ringbuf_followup"), (long long)jint(lost, "journal"),
	       (long long)jint(lost, "subscribers"));
	json_object_object_get_ex(s, "registry", &reg);
	printf("registry: %s backend, revision %lld, %lld services, %lld reservations\n",
	       jstr(reg, "backend"), (long long)jint(reg, "revision"),
	       (long long)jint(reg, "services"), (long long)jint(reg, "reservations"));
	if (json_object_object_get_ex(reg, "endpoints", NULL))
		printf("  etcd %s (prefix %s)%s; watch restarts %lld, compactions %lld, leader "
		       "changes %lld\n",
		       jstr(reg, "endpoint"), jstr(reg, "prefix"),
		       json_object_get_boolean(json_object_object_get(reg, "stale"))
			       ? ", STALE: enforcing the last revision received"
			       : "",
		       (long long)jint(reg, "watch_restarts"), (long long)jint(reg, "compactions"),
		       (long long)jint(reg, "leader_changes"));
	if (jint(reg, "rejected_now")) {
		struct json_object *rej = json_object_object_get(reg, "rejected");

		printf("  %lld entries cannot be read and are not applied:\n",
		       (long long)jint(reg, "rejected_now"));
		for (size_t i = 0; i < json_object_array_length(rej); i++) {
			struct json_object *o = json_object_array_get_idx(rej, i);

			printf("    %s (revision %lld): %s\n", jstr(o, "key"),
			       (long long)jint(o, "mod_revision"), jstr(o, "reason"));
		}
	}
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
	rc = ctl_call_show("status", NULL, &res);
	if (rc || !res)
		return rc;
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
	rc = ctl_call_show("reload", NULL, &res);
	if (rc || !res)
		return rc;
	printf("reloaded: %lld services, %lld port entries, registry revision %lld\n",
	       (long long)jint(res, "services"), (long long)jint(res, "port_entries"),
	       (long long)jint(res, "registry_revision"));
	json_object_put(res);
	return 0;
}
