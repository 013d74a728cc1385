/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelumctl: shared state and helpers of the per-object command files (ctl_*.c). */
#ifndef CAELUM_CTL_H
#define CAELUM_CTL_H

#include <stdbool.h>
#include <json-c/json.h>

#include "config.h"
#include "handlers.h"

struct ctl {
	const char *config_path;
	bool json;
	bool pretty;
	struct config cfg;
	bool cfg_loaded;
};

extern struct ctl ctl;

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
};

/* bpftool-style: "serv" selects "service" when unambiguous. */
bool is_prefix(const char *arg, const char *word);
int cmd_select(const struct cmd *cmds, int argc, char **argv, int (*help)(int, char **));
/*
 * One object's command line (bpftool's do_<object>): no argument runs dflt (NULL: prints the
 * usage); "help", or an entry whose fn is NULL, prints "Usage: caelumctl <usage>" on stderr
 * and returns 0; otherwise the entry cmd_select would pick. Returns its exit code.
 */
int ctl_object(const struct cmd *cmds, int (*dflt)(int, char **), const char *usage, int argc,
	       char **argv);
#define NEXT_ARG() (argc--, argv++)

/* Load the configuration (needed for the socket and pin paths); exits 78 on errors. */
int ctl_config(bool resolve);

/* Errors: "caelumctl: error: ..." on stderr, or {"error": ...} on stdout in JSON mode. */
int ctl_error(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every message of e (then freed). */
struct verr;
int ctl_verr(int exit_code, struct verr *e);
/* An error object from the daemon (message, data.exit, data.errors). */
int ctl_rpc_error(struct json_object *error);
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a JSON document (consumed) honouring -p. */
void ctl_json_print(struct json_object *o);

struct rpc_client;
/* Connect to caelumd: 0, or the exit code (error already printed). */
int ctl_connect(struct rpc_client **c);
/* One call on an open connection: 0 and *result, or the exit code (error printed). */
int ctl_call_on(struct rpc_client *c, const char *method, struct json_object *params,
		struct json_object **result);
/* Connect, call once, disconnect. */
int ctl_call(const char *method, struct json_object *params, struct json_object **result);
/* ctl_call, then with -j the result printed (honouring -p) and *result NULL: the caller
 * renders *result for people only when it is set. 0 or the exit code (error printed). */
int ctl_call_show(const char *method, struct json_object *params, struct json_object **result);

/* {"name": name}: the params of every call that names one object (new reference). */
struct json_object *ctl_name_param(const char *name);

/* Parsing helpers for arguments. */
int ctl_parse_port(const char *s, uint16_t *port, uint8_t *proto);

const char *jstr(struct json_object *o, const char *key);
int64_t jint(struct json_object *o, const char *key);

int do_service(int argc, char **argv);
int do_host(int argc, char **argv);
/* service where NAME (ctl_hosts.c) */
int ctl_service_where(int argc, char **argv);
int do_db(int argc, char **argv);
int do_port(int argc, char **argv);
int do_events(int argc, char **argv);
int do_status(int argc, char **argv);
int do_resources(int argc, char **argv);
int do_verify(int argc, char **argv);
int do_reload(int argc, char **argv);
int do_run(int argc, char **argv);
int do_check(int argc, char **argv);
int do_prog(int argc, char **argv);
int do_map(int argc, char **argv);
int do_link(int argc, char **argv);
int do_teardown(int argc, char **argv);
int do_token(int argc, char **argv);
int do_mcp(int argc, char **argv);

#endif /* CAELUM_CTL_H */
