// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl db { list | show NAME | apply FILE | delete NAME | resolve NAME } */
#include <stdio.h>
#include <time.h>
#include <string.h>

#include "ctl.h"
#include "jsonv.h"

static void db_row(struct json_object *d)
{
	struct json_object *addrs = json_object_object_get(d, "addresses"), *r;

	printf("%-20s %-10s %-28s %-6s ", jstr(d, "name"), jstr(d, "kind"), jstr(d, "address"),
	       jstr(d, "unmanaged"));
	r = json_object_object_get(d, "reachable");
	printf("%-11s ", !r ? "unknown" : json_object_get_boolean(r) ? "reachable" : "UNREACHABLE");
	for (size_t i = 0; i < json_object_array_length(addrs); i++)
		printf("%s%s", i ? "," : "",
		       json_object_get_string(json_object_array_get_idx(addrs, i)));
	if (jstr(d, "host"))
		printf(" (host %s only)", jstr(d, "host"));
	printf("\n");
}

/* What db show adds to the row: past addresses, shadowing, a failing lookup. */
static void db_extra(struct json_object *d)
{
	struct json_object *prev = json_object_object_get(d, "previous_addresses");

	if (prev && json_object_array_length(prev)) {
		printf("  previous addresses ");
		for (size_t i = 0; i < json_object_array_length(prev); i++)
			printf("%s%s", i ? "," : "",
			       json_object_get_string(json_object_array_get_idx(prev, i)));
		printf(" (changed %s)\n", jstr(d, "addresses_changed_at"));
	}
	if (jstr(d, "shadowed_by"))
		printf("  same local destination as %s, whose rules apply\n",
		       jstr(d, "shadowed_by"));
	if (jstr(d, "resolve_error"))
		printf("  %s (keeping the last known addresses)\n", jstr(d, "resolve_error"));
}

static int db_list(int argc, char **argv)
{
	struct json_object *res;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("db list takes no arguments");
	rc = ctl_call_show("db.list", NULL, &res);
	if (rc || !res)
		return rc;
	printf("%-20s %-10s %-28s %-6s %-11s %s\n", "NAME", "KIND", "ADDRESS", "UNMGD", "STATE",
	       "RESOLVED");
	for (size_t i = 0; i < json_object_array_length(res); i++)
		db_row(json_object_array_get_idx(res, i));
	json_object_put(res);
	return 0;
}

static int db_named(const char *method, int argc, char **argv, const char *usage)
{
	struct json_object *p, *res, *users;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: %s", usage);
	p = ctl_name_param(argv[0]);
	rc = ctl_call_show(method, p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	users = json_object_object_get(res, "services");
	db_row(res);
	db_extra(res);
	for (size_t i = 0; i < json_object_array_length(users); i++) {
		struct json_object *u = json_object_array_get_idx(users, i);

		printf("  service %-20s connections %lld, max %s\n", jstr(u, "service"),
		       (long long)jint(u, "connections"),
		       jstr(u, "max_connections") ? jstr(u, "max_connections") : "none");
	}
	json_object_put(res);
	return 0;
}

static int db_show(int argc, char **argv)
{
	return db_named("db.show", argc, argv, "db show NAME");
}

/* "host H" after the positional argument: *host H, or NULL when absent; 0 or a usage exit. */
static int db_host_arg(int argc, char **argv, const char **host, const char *usage)
{
	*host = NULL;
	if (argc == 1)
		return 0;
	if (argc == 3 && !strcmp(argv[1], "host")) {
		*host = argv[2];
		return 0;
	}
	return ctl_usage("usage: %s", usage);
}

/* caelumctl db delete NAME [host HOST]: the cluster-wide definition, or HOST's. */
static int db_delete(int argc, char **argv)
{
	static const char usage[] = "db delete NAME [host HOST]";
	struct json_object *p, *res;
	const char *host;
	int rc;

	if (argc < 1 || (rc = db_host_arg(argc, argv, &host, usage)))
		return argc < 1 ? ctl_usage("usage: %s", usage) : rc;
	p = ctl_name_param(argv[0]);
	if (host)
		json_object_object_add(p, "host", json_object_new_string(host));
	rc = ctl_call_show("db.delete", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("deleted database %s%s%s\n", argv[0], host ? " on host " : "", host ? host : "");
	json_object_put(res);
	return 0;
}

/* caelumctl db apply FILE [host HOST]: on every host, or on HOST only. */
static int db_apply(int argc, char **argv)
{
	static const char usage[] = "db apply FILE [host HOST]";
	struct json_object *spec, *p, *res;
	struct verr e = {};
	const char *host;
	int rc;

	if (argc < 1 || (rc = db_host_arg(argc, argv, &host, usage)))
		return argc < 1 ? ctl_usage("usage: %s", usage) : rc;
	if (jv_parse_file(argv[0], &spec, &e))
		return ctl_verr(EXIT_CONFIG, &e);
	p = json_object_new_object();
	json_object_object_add(p, "spec", spec);
	json_object_object_add(p, "file", json_object_new_string(argv[0]));
	if (host)
		json_object_object_add(p, "host", json_object_new_string(host));
	rc = ctl_call_show("db.apply", p, &res);
	json_object_put(p);
	if (rc || !res)
		return rc;
	printf("applied database %s%s%s\n", jstr(res, "name"), host ? " on host " : "",
	       host ? host : "");
	json_object_put(res);
	return 0;
}

#define RESOLVE_WAIT_MS 30000 /* getaddrinfo's own retries against silent servers */

static struct json_object *db_show_now(const char *name, int *rc)
{
	struct json_object *p = ctl_name_param(name), *res = NULL;

	*rc = ctl_call("db.show", p, &res);
	json_object_put(p);
	return res;
}

/* Ask for a lookup now, then wait until db.show's "resolutions" passes the one returned. */
static int db_resolve(int argc, char **argv)
{
	struct json_object *p, *res, *show = NULL;
	int64_t before;
	int rc;

	if (argc != 1)
		return ctl_usage("usage: db resolve NAME");
	p = ctl_name_param(argv[0]);
	rc = ctl_call("db.resolve", p, &res);
	json_object_put(p);
	if (rc)
		return rc;
	before = jint(res, "resolutions");
	json_object_put(res);
	for (int waited = 0; waited <= RESOLVE_WAIT_MS; waited += 50) {
		show = db_show_now(argv[0], &rc);
		if (rc)
			return rc;
		if (jint(show, "resolutions") > before)
			break;
		json_object_put(show);
		show = NULL;
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000L }, NULL);
	}
	if (!show)
		return ctl_error(EXIT_FAIL,
				 "the lookup of database '%s' is still running after %d s", argv[0],
				 RESOLVE_WAIT_MS / 1000);
	if (ctl.json) {
		ctl_json_print(show);
		return 0;
	}
	db_row(show);
	db_extra(show);
	json_object_put(show);
	return 0;
}

int do_db(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "list", db_list },
		{ "show", db_show },
		{ "apply", db_apply },
		{ "delete", db_delete },
		{ "resolve", db_resolve },
		{ "help", NULL },
		{},
	};

	return ctl_object(
		cmds, db_list,
		"db { list | show NAME | apply FILE [host HOST] | delete NAME [host HOST] |\n"
		"                        resolve NAME | help }",
		argc, argv);
}
