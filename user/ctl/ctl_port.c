// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl port ... (through caelumd). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static struct json_object *port_params(const char *spec, int *rc)
{
	struct json_object *p;
	uint16_t port;
	uint8_t proto;

	*rc = ctl_parse_port(spec, &port, &proto);
	if (*rc)
		return NULL;
	p = json_object_new_object();
	json_object_object_add(p, "port", json_object_new_int(port));
	json_object_object_add(p, "proto", json_object_new_string(proto_name(proto)));
	return p;
}

static int port_list(int argc, char **argv)
{
	struct json_object *res;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("port list takes no arguments");
	rc = ctl_call_show("port.list", NULL, &res);
	if (rc || !res)
		return rc;
	printf("%-6s %-5s %-24s %-8s %-7s %s\n", "PORT", "PROTO", "SERVICE", "ORIGIN", "MANAGED",
	       "HOST");
	for (size_t i = 0; i < json_object_array_length(res); i++) {
		struct json_object *o = json_object_array_get_idx(res, i), *m;

		json_object_object_get_ex(o, "managed", &m);
		printf("%-6lld %-5s %-24s %-8s %-7s %s\n", (long long)jint(o, "port"),
		       jstr(o, "proto"), jstr(o, "service"), jstr(o, "origin"),
		       json_object_get_boolean(m) ? "yes" : "no",
		       jstr(o, "host") ? jstr(o, "host") : "*");
	}
	json_object_put(res);
	return 0;
}

static int print_port_result(int rc, struct json_object *res, const char *verb)
{
	if (rc)
		return rc;
	if (ctl.json) {
		ctl_json_print(res);
		return 0;
	}
	printf("%s %lld/%s %s %s%s%s\n", verb, (long long)jint(res, "port"), jstr(res, "proto"),
	       strcmp(verb, "released") ? "for" : "from", jstr(res, "service"),
	       jstr(res, "host") ? " on host " : "", jstr(res, "host") ? jstr(res, "host") : "");
	json_object_put(res);
	return 0;
}

/* KEYWORD VALUE pairs after PORT[/PROTO] (each of allowed at most once) into p. */
static int port_keywords(struct json_object *p, int argc, char **argv, const char *const *allowed,
			 const char *usage)
{
	for (; argc; argc -= 2, argv += 2) {
		const char *const *k = allowed;

		while (*k && !is_prefix(argv[0], *k))
			k++;
		if (argc < 2 || !*k || json_object_object_get_ex(p, *k, NULL))
			return ctl_usage("%s", usage);
		json_object_object_add(p, *k, json_object_new_string(argv[1]));
	}
	return 0;
}

static int port_reserve(int argc, char **argv)
{
	static const char *const keys[] = { "service", "host", NULL };
	static const char usage[] = "usage: port reserve PORT[/PROTO] service NAME [host HOST]";
	struct json_object *p, *res = NULL;
	int rc;

	if (argc < 1)
		return ctl_usage("%s", usage);
	p = port_params(argv[0], &rc);
	if (!p)
		return rc;
	rc = port_keywords(p, argc - 1, argv + 1, keys, usage);
	if (!rc && !json_object_object_get_ex(p, "service", NULL))
		rc = ctl_usage("%s", usage);
	if (!rc)
		rc = ctl_call("port.reserve", p, &res);
	json_object_put(p);
	return print_port_result(rc, res, "reserved");
}

static int port_release(int argc, char **argv)
{
	static const char *const keys[] = { "host", NULL };
	static const char usage[] = "usage: port release PORT[/PROTO] [host HOST]";
	struct json_object *p, *res = NULL;
	int rc;

	if (argc < 1)
		return ctl_usage("%s", usage);
	p = port_params(argv[0], &rc);
	if (!p)
		return rc;
	rc = port_keywords(p, argc - 1, argv + 1, keys, usage);
	if (!rc)
		rc = ctl_call("port.release", p, &res);
	json_object_put(p);
	return print_port_result(rc, res, "released");
}

static int port_alloc(int argc, char **argv)
{
	struct json_object *p = json_object_new_object(), *res = NULL;
	int rc;

	for (; argc; NEXT_ARG()) {
		if (argc < 2) {
			json_object_put(p);
			return ctl_usage("usage: port alloc service NAME [proto tcp|udp]");
		}
		if (is_prefix(argv[0], "service")) {
			json_object_object_add(p, "service", json_object_new_string(argv[1]));
		} else if (is_prefix(argv[0], "proto")) {
			json_object_object_add(p, "proto", json_object_new_string(argv[1]));
		} else {
			json_object_put(p);
			return ctl_usage("unknown keyword '%s' (expected service or proto)",
					 argv[0]);
		}
		NEXT_ARG();
	}
	if (!json_object_object_get_ex(p, "service", NULL)) {
		json_object_put(p);
		return ctl_usage("usage: port alloc service NAME [proto tcp|udp]");
	}
	rc = ctl_call("port.alloc", p, &res);
	json_object_put(p);
	return print_port_result(rc, res, "allocated");
}

static int port_who(int argc, char **argv)
{
	struct json_object *p, *res, *ls;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: port who PORT[/PROTO]");
	p = port_params(argv[0], &rc);
	if (!p)
		return rc;
	rc = ctl_call_show("port.who", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("%lld/%s: owner %s%s\n", (long long)jint(res, "port"), jstr(res, "proto"),
	       jstr(res, "owner") ? jstr(res, "owner") : "none",
	       json_object_get_boolean(json_object_object_get(res, "managed")) ? " (managed range)"
									       : "");
	json_object_object_get_ex(res, "listeners", &ls);
	for (size_t i = 0; i < json_object_array_length(ls); i++) {
		struct json_object *l = json_object_array_get_idx(ls, i);

		printf("  pid %-7lld %-16s %-22s %-11s %s%s\n", (long long)jint(l, "pid"),
		       jstr(l, "comm"), jstr(l, "addr"), jstr(l, "state"), jstr(l, "cgroup"),
		       json_object_get_boolean(json_object_object_get(l, "in_owner")) ? " (owner)"
										      : "");
	}
	if (!json_object_array_length(ls))
		printf("  no process holds it\n");
	json_object_put(res);
	return 0;
}

int do_port(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "list", port_list },
		{ "show", port_list },
		{ "reserve", port_reserve },
		{ "release", port_release },
		{ "alloc", port_alloc },
		{ "who", port_who },
		{ "help", NULL },
		{},
	};

	return ctl_object(cmds, port_list,
			  "port { list | reserve PORT[/PROTO] service NAME [host HOST] |\n"
			  "                        release PORT[/PROTO] [host HOST] |\n"
			  "                        alloc service NAME [proto P] |\n"
			  "                        who PORT[/PROTO] | help }",
			  argc, argv);
}
