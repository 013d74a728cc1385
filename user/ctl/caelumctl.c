// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl [OPTIONS] OBJECT { COMMAND | help } — the bpftool grammar. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "portrange.h"
#include "rpc.h"
#include "version.h"

struct ctl ctl;

bool is_prefix(const char *arg, const char *word)
{
	size_t len = strlen(arg);

	return len && len <= strlen(word) && !strncmp(arg, word, len);
}

/* The entry word names: exact, else the one entry (or entries of one fn) it is a prefix of.
 * 0 and *hit, or the usage exit code (message printed). */
static int cmd_find(const struct cmd *cmds, const char *word, const struct cmd **hit)
{
	*hit = NULL;
	for (const struct cmd *c = cmds; c->name; c++) {
		if (!strcmp(word, c->name)) {
			*hit = c;
			return 0;
		}
		if (is_prefix(word, c->name)) {
			if (*hit && (*hit)->fn != c->fn)
				return ctl_usage("'%s' is ambiguous", word);
			*hit = c;
		}
	}
	return *hit ? 0 : ctl_usage("unknown command '%s'", word);
}

int cmd_select(const struct cmd *cmds, int argc, char **argv, int (*help)(int, char **))
{
	const struct cmd *hit;
	int rc;

	if (argc < 1)
		return help(argc, argv);
	if (!strcmp(argv[0], "help"))
		return help(argc - 1, argv + 1);
	rc = cmd_find(cmds, argv[0], &hit);
	return rc ? rc : hit->fn(argc - 1, argv + 1);
}

int ctl_object(const struct cmd *cmds, int (*dflt)(int, char **), const char *usage, int argc,
	       char **argv)
{
	const struct cmd *hit = NULL;
	int rc;

	if (!argc && dflt)
		return dflt(0, argv);
	if (argc && strcmp(argv[0], "help")) {
		rc = cmd_find(cmds, argv[0], &hit);
		if (rc)
			return rc;
	}
	if (!hit || !hit->fn) {
		/* -j: still one JSON document on stdout (bpftool prints null for help too) */
		if (ctl.json)
			ctl_json_print(NULL);
		fprintf(stderr, "Usage: caelumctl %s\n", usage);
		return 0;
	}
	return hit->fn(argc - 1, argv + 1);
}

void ctl_json_print(struct json_object *o)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
		    (ctl.pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
				: JSON_C_TO_STRING_PLAIN);

	printf("%s\n", json_object_to_json_string_ext(o, flags));
	json_object_put(o);
}

static int error_out(int exit_code, const char *msg, struct json_object *errors)
{
	size_t n = errors ? json_object_array_length(errors) : 0;

	if (ctl.json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(msg));
		if (n)
			json_object_object_add(o, "errors", json_object_get(errors));
		json_object_object_add(o, "exit", json_object_new_int(exit_code));
		ctl_json_print(o);
		return exit_code;
	}
	if (n <= 1) {
		fprintf(stderr, "caelumctl: error: %s\n", msg);
		return exit_code;
	}
	fprintf(stderr, "caelumctl: error: %zu problems:\n", n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "  %s\n",
			json_object_get_string(json_object_array_get_idx(errors, i)));
	return exit_code;
}

int ctl_error(int exit_code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return error_out(exit_code, msg, NULL);
}

int ctl_usage(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	error_out(EXIT_USAGE, msg, NULL);
	if (!ctl.json)
		fprintf(stderr, "Try 'caelumctl help'.\n");
	return EXIT_USAGE;
}

int ctl_rpc_error(struct json_object *error)
{
	struct json_object *data = NULL, *errors = NULL, *v;
	const char *msg = jstr(error, "message");
	int exit_code = EXIT_FAIL;

	if (json_object_object_get_ex(error, "data", &data) && data) {
		if (json_object_object_get_ex(data, "exit", &v))
			exit_code = json_object_get_int(v);
		json_object_object_get_ex(data, "errors", &errors);
	} else if (json_object_object_get_ex(error, "code", &v)) {
		exit_code = herr_exit_from_rpc(json_object_get_int(v));
	}
	return error_out(exit_code, msg ? msg : "request failed", errors);
}

int ctl_verr(int exit_code, struct verr *e)
{
	struct json_object *errs = verr_to_json(e);
	int rc = error_out(exit_code, e->n ? e->msgs[0] : "invalid", errs);

	json_object_put(errs);
	verr_free(e);
	return rc;
}

int ctl_config(bool resolve)
{
	struct verr e = {};
	int err;

	if (ctl.cfg_loaded)
		return 0;
	err = config_load(config_path(ctl.config_path), &ctl.cfg, &e);
	if (!err && resolve)
		err = config_resolve(&ctl.cfg, &e);
	if (err)
		exit(ctl_verr(EXIT_CONFIG, &e));
	ctl.cfg_loaded = true;
	return 0;
}

int ctl_connect(struct rpc_client **c)
{
	char sock[PATH_MAX];
	int err;

	ctl_config(false);
	config_socket_path(&ctl.cfg, sock, sizeof(sock));
	err = rpc_client_open(c, sock);
	if (err == -EACCES || err == -EPERM)
		return ctl_error(EXIT_NOPERM, "permission denied on '%s' (run as root)", sock);
	if (err)
		return ctl_error(EXIT_UNAVAILABLE,
				 "caelumd is not running (cannot connect to '%s': %s)", sock,
				 strerror(-err));
	return 0;
}

int ctl_call_on(struct rpc_client *c, const char *method, struct json_object *params,
		struct json_object **result)
{
	struct json_object *error = NULL;
	int err, rc;

	err = rpc_client_call(c, method, params, result, &error);
	if (err < 0)
		return ctl_error(EXIT_UNAVAILABLE, "lost connection to caelumd: %s",
				 strerror(-err));
	if (err > 0) {
		rc = ctl_rpc_error(error);
		json_object_put(error);
		return rc;
	}
	return 0;
}

int ctl_call(const char *method, struct json_object *params, struct json_object **result)
{
	struct rpc_client *c;
	int rc;

	rc = ctl_connect(&c);
	if (rc)
		return rc;
	rc = ctl_call_on(c, method, params, result);
	rpc_client_close(c);
	return rc;
}

int ctl_call_show(const char *method, struct json_object *params, struct json_object **result)
{
	int rc = ctl_call(method, params, result);

	if (!rc && ctl.json) {
		ctl_json_print(*result);
		*result = NULL;
	}
	return rc;
}

struct json_object *ctl_name_param(const char *name)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "name", json_object_new_string(name));
	return p;
}

int ctl_parse_port(const char *s, uint16_t *port, uint8_t *proto)
{
	struct port_range r;
	char why[128];

	if (port_range_parse(s, IPPROTO_TCP, false, &r, why, sizeof(why)))
		return ctl_usage("%s", why);
	*port = r.lo;
	*proto = r.proto;
	return 0;
}

const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	return json_object_get_int64(v);
}

static int do_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (ctl.json) {
		ctl_json_print(NULL);
		return 0;
	}
	fprintf(stderr,
		"Usage: caelumctl [OPTIONS] OBJECT { COMMAND | help }\n"
		"       caelumctl run SERVICE -- CMD [ARG...]\n"
		"\n"
		"OBJECT := { check | status | reload | teardown | service | port | events |\n"
		"            db | resources | verify | token | mcp | host | run | prog | map | "
		"link }\n"
		"OPTIONS := { -c FILE | -j | -p | -v | -V }\n"
		"  -c, --config FILE  configuration (default: $CAELUM_CONFIG or %s)\n"
		"  -j, --json         JSON output\n"
		"  -p, --pretty       pretty JSON output (implies -j)\n"
		"  -v, --verbose      debug messages\n"
		"  -V, --version      print the version\n"
		"\n"
		"Exit codes: 0 ok, 1 failure, 64 usage, 69 caelumd unavailable, 77 not permitted,\n"
		"            78 invalid configuration or refused.\n",
		CONFIG_DEFAULT_PATH);
	return 0;
}

static const struct cmd objects[] = {
	{ "check", do_check },
	{ "status", do_status },
	{ "reload", do_reload },
	{ "teardown", do_teardown },
	{ "service", do_service },
	{ "port", do_port },
	{ "db", do_db },
	{ "verify", do_verify },
	{ "events", do_events },
	{ "run", do_run },
	{ "prog", do_prog },
	{ "map", do_map },
	{ "link", do_link },
	{ "resources", do_resources },
	{ "token", do_token },
	{ "mcp", do_mcp },
	{ "host", do_host },
	{ "help", do_help },
	{},
};

static int parse_opts(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt;

	/* '+': stop at the first non-option, so that "run NAME -- CMD -x" keeps its -x. */
	while ((opt = getopt_long(argc, argv, "+c:jpvVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'p':
			ctl.json = ctl.pretty = true;
			break;
		case 'v':
			log_init("caelumctl", true, false);
			break;
		case 'V':
			printf("caelumctl %s\n", CAELUM_VERSION);
			exit(0);
		case 'h':
			exit(do_help(0, NULL));
		default:
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	log_init("caelumctl", false, false);
	log_libbpf_init();
	if (parse_opts(argc, argv))
		return ctl_usage("invalid option");
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		do_help(0, NULL);
		return EXIT_USAGE;
	}
	return cmd_select(objects, argc, argv, do_help);
}
