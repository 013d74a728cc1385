// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer: the control socket's framing and dispatch (user/transport/rpc.c) over a real unix
 * socket and the real event loop, with a client that writes the input, reads or does not,
 * and goes away at a point the input chooses. The handlers are stand-ins (below, linked
 * instead of handlers.c/events.c/mcp.c) that do what the real ones do to a connection:
 * answer, fail, stream events (events.follow) and emit events to every follower, the
 * caller included, from inside a request (the path of issue 13's use-after-free), and an
 * MCP session that notifies from inside a request.
 * Input: one mode byte (bits 0-2 loop turns before the client leaves, bit 3 the client
 * reads its replies, bit 4 shutdown(SHUT_WR) instead of close, bit 5 the client stays until
 * the end, bit 6 the client stops reading (shutdown(SHUT_RD)) before caelumd reads: every
 * write to it fails from then on), then the bytes the client writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "events.h"
#include "handlers.h"
#include "loop.h"
#include "log.h"
#include "mcp.h"
#include "rpc.h"

/* ---- stand-ins: events ---- */

#define SUBS 8
static struct {
	int id;
	events_sub_fn fn;
	void *ctx;
} subs[SUBS];
static int next_sub;

int events_subscribe(struct events *ev, events_sub_fn fn, void *ctx)
{
	(void)ev;
	for (int i = 0; i < SUBS; i++)
		if (!subs[i].id) {
			subs[i].id = ++next_sub;
			subs[i].fn = fn;
			subs[i].ctx = ctx;
			return subs[i].id;
		}
	return -ENOSPC;
}

void events_unsubscribe(struct events *ev, int id)
{
	(void)ev;
	for (int i = 0; i < SUBS; i++)
		if (subs[i].id == id)
			memset(&subs[i], 0, sizeof(subs[i]));
}

bool event_matches(struct json_object *e, const struct event_filter *f)
{
	(void)f;
	return e != NULL;
}

void events_count_drop(struct events *ev, uint64_t n)
{
	(void)ev;
	(void)n;
}

static void emit(int n)
{
	for (int k = 0; k < n; k++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "id", json_object_new_int(k));
		for (int i = 0; i < SUBS; i++)
			if (subs[i].id)
				subs[i].fn(subs[i].ctx, e);
		json_object_put(e);
	}
}

static int int_param(struct json_object *params, const char *key, int dflt, int max)
{
	struct json_object *v;
	int n;

	if (!params || !json_object_object_get_ex(params, key, &v))
		return dflt;
	n = json_object_get_int(v);
	return n < 0 ? 0 : n > max ? max : n;
}

/* ---- stand-ins: handlers ---- */

int handlers_call(const struct handler_ctx *hx, const char *method, struct json_object *params,
		  const struct caller *who, struct json_object **result, struct herr *err,
		  struct hstream *stream)
{
	(void)hx;
	(void)who;
	memset(err, 0, sizeof(*err));
	*result = NULL;
	if (!strcmp(method, "events.follow")) {
		if (!stream) {
			err->exit = EXIT_USAGE;
			snprintf(err->message, sizeof(err->message), "not on this transport");
			return -1;
		}
		stream->follow = true;
		*result = json_object_new_array();
		return 0;
	}
	if (!strcmp(method, "emit")) {
		emit(int_param(params, "n", 3, 64));
	} else if (!strcmp(method, "big")) {
		size_t n = (size_t)int_param(params, "kib", 64, 4096) * 1024;
		char *s = malloc(n + 1);

		memset(s, 'x', n);
		s[n] = '\0';
		*result = json_object_new_string(s);
		free(s);
		return 0;
	} else if (!strcmp(method, "fail")) {
		err->exit = EXIT_CONFIG;
		err->errors = json_object_new_array();
		json_object_array_add(err->errors, json_object_new_string("refused"));
		snprintf(err->message, sizeof(err->message), "refused");
		return -1;
	} else if (strcmp(method, "ping")) {
		err->exit = EXIT_USAGE;
		err->unknown_method = true;
		snprintf(err->message, sizeof(err->message), "unknown method '%s'", method);
		return -1;
	}
	*result = params ? json_object_get(params) : json_object_new_object();
	return 0;
}

/* ---- stand-ins: MCP ---- */

struct mcp_session {
	mcp_send_fn send;
	void *ctx;
};

struct mcp_session *mcp_session_new(struct mcp *m, const char *transport, mcp_send_fn send,
				    void *ctx)
{
	struct mcp_session *s = calloc(1, sizeof(*s));

	(void)m;
	(void)transport;
	s->send = send;
	s->ctx = ctx;
	return s;
}

void mcp_session_free(struct mcp *m, struct mcp_session *s)
{
	(void)m;
	free(s);
}

struct json_object *mcp_error(struct json_object *id, int code, const char *message)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "error", e);
	return o;
}

struct json_object *mcp_handle(struct mcp *m, struct mcp_session *s, struct json_object *msg)
{
	struct json_object *note = json_object_new_object(), *id = NULL;

	(void)m;
	json_object_object_add(note, "method", json_object_new_string("notifications/message"));
	s->send(s->ctx, note);
	json_object_put(note);
	emit(1);
	if (!json_object_is_type(msg, json_type_object) ||
	    !json_object_object_get_ex(msg, "id", &id))
		return NULL;
	return mcp_error(id, -32601, "stand-in");
}

/* ---- the run ---- */

static int turns_left;

static void tick(void *ctx)
{
	if (--turns_left <= 0)
		loop_stop(ctx);
}

static void run(struct loop *l, int turns)
{
	turns_left = turns;
	loop_run(l, 0, tick, l);
}

static void drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct transport_env env;
	static char path[108];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rpc_server *srv;
	uint8_t mode;
	int fd;

	if (size < 1 || size > 1 << 16)
		return 0;
	mode = data[0];
	log_init("fuzz", false, true);
	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/caelum-fuzz-rpc-%d.sock", (int)getpid());
	env.mcp = (struct mcp *)&env; /* any non-NULL: mcp.connect is offered */
	if (loop_new(&env.loop))
		return 0;
	if (rpc_server_open(&srv, &env, path)) {
		loop_free(env.loop);
		return 0;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fcntl(fd, F_SETFL, O_NONBLOCK);
		run(env.loop, 1); /* accept */
		if (send(fd, data + 1, size - 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
			p_debug("fuzz: send: %s", strerror(errno));
		if (mode & 64)
			shutdown(fd, SHUT_RD);
		for (int t = 0; t < (mode & 7); t++) {
			run(env.loop, 1);
			if (mode & 8)
				drain(fd);
		}
		if (!(mode & 32)) {
			if (mode & 16)
				shutdown(fd, SHUT_WR);
			else
				close(fd), fd = -1;
		}
		/* Followers get events after the client has gone. */
		emit(2);
		run(env.loop, 4);
	}
	if (fd >= 0)
		close(fd);
	rpc_server_close(srv);
	loop_free(env.loop);
	env.loop = NULL;
	memset(subs, 0, sizeof(subs));
	return 0;
}
