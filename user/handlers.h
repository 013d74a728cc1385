/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one set of request handlers. Every transport (the control socket today, the HTTP
 * API and MCP next) parses its framing, calls handlers_call(), and renders the result or
 * the error; no transport holds logic of its own.
 */
#ifndef CAELUM_HANDLERS_H
#define CAELUM_HANDLERS_H

#include <stdbool.h>
#include <json-c/json.h>
#include <sys/types.h>

#include "events.h"

struct daemon;

/* sysexits-style outcome codes, shared with caelumctl. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_UNAVAILABLE 69
#define EXIT_NOPERM 77
#define EXIT_CONFIG 78

struct herr {
	int exit; /* EXIT_* */
	char message[512];
	struct json_object *errors; /* array of strings, or NULL */
	bool unknown_method; /* JSON-RPC -32601 */
	bool not_found; /* the named object does not exist (HTTP 404) */
};

/* What a streaming method (events.follow) asks the transport to deliver after the reply. */
struct hstream {
	bool follow;
	char type[64];
	char service[64];
	char host[256];
	struct event_filter filter; /* points into type/service above */
};

struct caller {
	uid_t uid;
	pid_t pid;
	const char *transport; /* "socket", ... */
};

/* 0: *result set. Otherwise -1 and err filled (err->errors owned by the caller). */
int handlers_call(struct daemon *d, const char *method, struct json_object *params,
		  const struct caller *who, struct json_object **result, struct herr *err,
		  struct hstream *stream);

#endif /* CAELUM_HANDLERS_H */
