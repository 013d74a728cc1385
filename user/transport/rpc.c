// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>

#include "config.h"
#include "events.h"
#include "handlers.h"
#include "jsonv.h"
#include "log.h"
#include "loop.h"
#include "mcp.h"
#include "rpc.h"

#define OUT_MAX	  (16U << 20) /* a follower this far behind loses events (counted) */
#define MAX_CONNS 256

struct conn {
	struct rpc_server *srv;
	int fd;
	uid_t uid;
	pid_t pid;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	int sub_id; /* events subscription, 0 when not following */
	struct hstream stream;
	struct mcp_session *mcp; /* after mcp.connect: every line is an MCP message */
	bool closing;		 /* close once the output is flushed (peer shut down its side) */
	/* Freed only from its own I/O callback: while a line of it is being handled (which can
	 * broadcast events, to it too) a close only marks it, and conn_io closes it after. */
	bool in_io, dead;
	/* A request waiting for its commit: its reply comes from the registry's continuation;
	 * the lines after it wait (replies keep the order of the requests). */
	struct hcall *pending;
	struct json_object *pending_id; /* its id (a reference) */
	bool pending_notification;
	unsigned int mcp_waiting; /* MCP tools/calls answered later (mcp_later) */
	struct conn *next;
};

struct rpc_server {
	const struct handler_ctx *hx;
	struct events *ev;
	struct loop *loop;
	struct mcp *mcp; /* the MCP dispatcher of mcp.connect, or NULL */
	int fd;
	char path[108];
	int spare; /* a descriptor kept for answering when the process has none left */
	uint64_t fd_refusals;
	struct conn *conns;
	size_t n_conns;
};

static void conn_close(struct conn *c);
static void conn_free(struct conn *c);

static int out_append(struct conn *c, const char *s, size_t len)
{
	if (c->out_len + len + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *tmp;

		while (cap < c->out_len + len + 1)
			cap *= 2;
		tmp = realloc(c->out, cap);
		if (!tmp)
			return -ENOMEM;
		c->out = tmp;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, len);
	c->out_len += len;
	c->out[c->out_len++] = '\n';
	return 0;
}

/* A request of it waits for its commit: a peer that shut its side still gets the answer. */
static bool conn_waiting(const struct conn *c)
{
	return c->pending || c->mcp_waiting;
}

/* Read while nothing waits: a request waiting for its commit holds the lines behind it. */
static uint32_t conn_in(const struct conn *c)
{
	return c->closing || c->pending ? 0 : EPOLLIN;
}

static void conn_want_write(struct conn *c)
{
	if (!c->dead)
		loop_mod(c->srv->loop, c->fd, conn_in(c) | EPOLLOUT);
}

/* Returns false when the connection was closed (freed unless in its own I/O callback). */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			conn_close(c);
			return false;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->closing && !c->out_len && !conn_waiting(c)) {
		conn_close(c);
		return false;
	}
	loop_mod(c->srv->loop, c->fd, conn_in(c) | (c->out_len ? EPOLLOUT : 0));
	return true;
}

static void send_msg(struct conn *c, struct json_object *msg)
{
	const char *s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN |
								    JSON_C_TO_STRING_NOSLASHESCAPE);

	if (out_append(c, s, strlen(s)))
		p_warn("dropping reply to pid %d: out of memory", c->pid);
}

static struct json_object *rpc_error(struct json_object *id, int code, const char *msg,
				     int exit_code, struct json_object *errors)
{
	struct json_object *r = json_object_new_object(), *e = json_object_new_object();
	struct json_object *data = json_object_new_object();

	json_object_object_add(r, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(r, "id", json_object_get(id));
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(data, "exit", json_object_new_int(exit_code));
	if (errors)
		json_object_object_add(data, "errors", errors);
	json_object_object_add(e, "data", data);
	json_object_object_add(r, "error", e);
	return r;
}

static void on_event(void *ctx, struct json_object *ev)
{
	struct conn *c = ctx;
	struct json_object *n;

	if (c->dead || !event_matches(ev, &c->stream.filter))
		return;
	if (c->out_len > OUT_MAX) {
		events_count_drop(c->srv->ev, 1);
		return;
	}
	n = json_object_new_object();
	json_object_object_add(n, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(n, "method", json_object_new_string("event"));
	json_object_object_add(n, "params", json_object_get(ev));
	send_msg(c, n);
	json_object_put(n);
	/* Never written from here: a failed write would free c under the broadcast and under
	 * whatever request emitted the event. The loop writes it (EPOLLOUT). */
	conn_want_write(c);
}

/* Validate the envelope; on error return a ready reply. */
static struct json_object *check_request(struct json_object *req, struct json_object **id,
					 const char **method, struct json_object **params)
{
	struct json_object *v;

	*id = NULL;
	if (!json_object_is_type(req, json_type_object))
		return rpc_error(NULL, -32600, "invalid request: not an object", EXIT_USAGE, NULL);
	json_object_object_get_ex(req, "id", id);
	if (!json_object_object_get_ex(req, "jsonrpc", &v) ||
	    strcmp(json_object_get_string(v), "2.0"))
		return rpc_error(*id, -32600, "invalid request: jsonrpc must be \"2.0\"",
				 EXIT_USAGE, NULL);
	if (!json_object_object_get_ex(req, "method", &v) ||
	    !json_object_is_type(v, json_type_string))
		return rpc_error(*id, -32600, "invalid request: method must be a string",
				 EXIT_USAGE, NULL);
	*method = json_object_get_string(v);
	*params = NULL;
	if (json_object_object_get_ex(req, "params", params) && *params &&
	    !json_object_is_type(*params, json_type_object))
		return rpc_error(*id, -32602, "invalid params: must be an object", EXIT_USAGE,
				 NULL);
	return NULL;
}

/* MCP messages to a stdio bridge: queued here, written by the loop (never flushed from
 * inside a broadcast, which must not see the connection go away under it). */
static bool mcp_send(void *ctx, struct json_object *msg)
{
	struct conn *c = ctx;

	if (c->dead || c->out_len > OUT_MAX)
		return false;
	send_msg(c, msg);
	conn_want_write(c);
	return true;
}

/* A tools/call that waited for its commit: its response, in turn with the notifications. */
static void mcp_later(void *ctx, uint64_t conn, struct json_object *response)
{
	struct conn *c = ctx;

	(void)conn;
	c->mcp_waiting--;
	mcp_send(c, response);
}

static struct json_object *mcp_connect(struct conn *c, struct json_object *id)
{
	struct json_object *r;

	if (!c->srv->mcp || c->sub_id)
		return rpc_error(id, -32600, "mcp.connect: not available on this connection",
				 EXIT_USAGE, NULL);
	c->mcp = mcp_session_new(c->srv->mcp, "stdio", mcp_send, c);
	if (!c->mcp)
		return rpc_error(id, herr_rpc_code(EXIT_UNAVAILABLE), "too many MCP sessions",
				 EXIT_UNAVAILABLE, NULL);
	r = json_object_new_object();
	json_object_object_add(r, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(r, "id", json_object_get(id));
	json_object_object_add(r, "result", json_object_new_object());
	return r;
}

static struct json_object *call_reply(struct json_object *id, int rc, struct json_object *result,
				      struct herr *err)
{
	struct json_object *reply;

	if (rc)
		return rpc_error(id, err->unknown_method ? -32601 : herr_rpc_code(err->exit),
				 err->message, err->exit, err->errors);
	reply = json_object_new_object();
	json_object_object_add(reply, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(reply, "id", json_object_get(id));
	json_object_object_add(reply, "result", result);
	return reply;
}

static void conn_lines(struct conn *c);

/* The pending request's outcome (from the registry's continuation, on the loop): answer it,
 * then go on with the lines that waited behind it. */
static void replied(void *arg, int rc, struct json_object *result, struct herr *err)
{
	struct conn *c = arg;
	struct json_object *reply = call_reply(c->pending_id, rc, result, err);

	c->pending = NULL;
	json_object_put(c->pending_id);
	c->pending_id = NULL;
	if (!c->pending_notification)
		send_msg(c, reply);
	json_object_put(reply);
	if (c->in_io) /* inside its own I/O callback: conn_io goes on from here */
		return;
	c->in_io = true;
	conn_lines(c);
	if (!c->dead)
		conn_flush(c);
	c->in_io = false;
	if (c->dead)
		conn_free(c);
}

static void dispatch(struct conn *c, struct json_object *req)
{
	struct caller who = { .uid = c->uid, .pid = c->pid, .transport = "socket" };
	struct hreply on_reply = { replied, c };
	struct json_object *id, *params, *result, *reply;
	struct hstream stream = {};
	const char *method = NULL;
	bool is_notification;
	struct herr err;
	int rc;

	reply = check_request(req, &id, &method, &params);
	if (reply)
		goto send;
	is_notification = !json_object_object_get_ex(req, "id", NULL);
	if (!strcmp(method, "mcp.connect")) {
		reply = mcp_connect(c, id);
		goto send;
	}
	rc = handlers_call_async(c->srv->hx, method, params, &who, &result, &err,
				 c->sub_id ? NULL : &stream, &on_reply, &c->pending);
	if (rc == HANDLERS_PENDING) {
		c->pending_id = json_object_get(id);
		c->pending_notification = is_notification;
		return;
	}
	reply = call_reply(id, rc, result, &err);
	if (is_notification) {
		json_object_put(reply);
		return;
	}
send:
	send_msg(c, reply);
	json_object_put(reply);
	if (stream.follow) {
		int id = events_subscribe(c->srv->ev, on_event, c);

		if (id < 0) {
			reply = rpc_error(NULL, herr_rpc_code(EXIT_UNAVAILABLE),
					  "too many event followers", EXIT_UNAVAILABLE, NULL);
			send_msg(c, reply);
			json_object_put(reply);
			c->closing = true;
			return;
		}
		c->stream = stream;
		c->stream.filter.type = stream.filter.type ? c->stream.type : NULL;
		c->stream.filter.service = stream.filter.service ? c->stream.service : NULL;
		c->stream.filter.host = stream.filter.host ? c->stream.host : NULL;
		c->sub_id = id;
	}
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
	struct json_object *req = NULL;
	struct verr e = {};
	char *why;

	/* Strict JSON, a key twice in an object refused (jsonv.h), as over HTTP. */
	if (jv_parse_string("request", line, len, &req, &e))
		req = NULL;
	why = req ? NULL : verr_join(&e);
	verr_free(&e);
	if (c->mcp) {
		struct json_object *r;
		bool waits = false;

		if (!req)
			r = mcp_error(NULL, -32700, why ? why : "Parse error");
		else
			r = mcp_handle_later(c->srv->mcp, c->mcp, req,
					     &(struct mcp_later){ mcp_later, c, 0 }, &waits);
		c->mcp_waiting += waits;
		if (r) {
			send_msg(c, r);
			json_object_put(r);
		}
	} else if (!req) {
		struct json_object *r =
			rpc_error(NULL, -32700, why ? why : "parse error", EXIT_USAGE, NULL);

		send_msg(c, r);
		json_object_put(r);
	} else {
		dispatch(c, req);
	}
	free(why);
	json_object_put(req);
}

/* Handle every whole line read so far, until one waits for its commit. */
static void conn_lines(struct conn *c)
{
	for (char *nl; !c->pending && c->in_len && (nl = memchr(c->in, '\n', c->in_len));) {
		size_t len = (size_t)(nl - c->in);

		handle_line(c, c->in, len);
		if (c->dead)
			return;
		memmove(c->in, nl + 1, c->in_len - len - 1);
		c->in_len -= len + 1;
	}
}

static void conn_read(struct conn *c)
{
	bool eof = false;

	for (;;) {
		ssize_t n;

		if (c->in_cap - c->in_len < 4096) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
			char *tmp = cap > RPC_LINE_MAX * 2 ? NULL : realloc(c->in, cap);

			if (!tmp) {
				p_warn("closing control connection of pid %d: request too large",
				       c->pid);
				conn_close(c);
				return;
			}
			c->in = tmp;
			c->in_cap = cap;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			conn_close(c);
			return;
		}
		if (n == 0) {
			/* The peer shut its side: answer what it sent, then close. */
			eof = true;
			break;
		}
		c->in_len += (size_t)n;
	}
	conn_lines(c);
	if (c->dead)
		return;
	if (c->in_len > RPC_LINE_MAX && !c->pending) {
		p_warn("closing control connection of pid %d: line too long", c->pid);
		conn_close(c);
		return;
	}
	if (eof) {
		if (c->sub_id > 0)
			events_unsubscribe(c->srv->ev, c->sub_id);
		c->sub_id = 0;
		c->closing = true;
	}
	conn_flush(c);
}

static void conn_io(void *ctx, uint32_t events)
{
	struct conn *c = ctx;

	c->in_io = true;
	if (events & EPOLLERR)
		conn_close(c);
	/* EPOLLHUP with data waiting: a client that wrote its requests and closed. They are
	 * read and handled; the replies then fail to send and close the connection. */
	if (!c->dead && (events & EPOLLOUT))
		conn_flush(c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP)))
		conn_read(c);
	/* Gone entirely while a request waits: nobody to answer (the commit may still land). */
	if (!c->dead && conn_waiting(c) && (events & EPOLLHUP))
		conn_close(c);
	c->in_io = false;
	if (c->dead)
		conn_free(c);
}

/* Stop everything that could reach c (events, MCP notifications, the loop) at once; free
 * it now, or after its own I/O callback returns when it is inside one. */
static void conn_close(struct conn *c)
{
	struct rpc_server *s = c->srv;

	if (c->dead)
		return;
	c->dead = true;
	if (c->sub_id > 0)
		events_unsubscribe(s->ev, c->sub_id);
	c->sub_id = 0;
	if (c->mcp && s->mcp) {
		mcp_cancel(s->mcp, c);
		mcp_session_free(s->mcp, c->mcp);
	}
	c->mcp = NULL;
	handlers_cancel(c->pending);
	c->pending = NULL;
	json_object_put(c->pending_id);
	c->pending_id = NULL;
	loop_del(s->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (!c->in_io)
		conn_free(c);
}

static void conn_free(struct conn *c)
{
	struct rpc_server *s = c->srv;

	for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	s->n_conns--;
	free(c->in);
	free(c->out);
	free(c);
}

static void refuse(int fd, int exit_code, const char *msg)
{
	struct json_object *r = rpc_error(NULL, herr_rpc_code(exit_code), msg, exit_code, NULL);
	const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s\n", s);
	if (send(fd, buf, strlen(buf), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		p_debug("failed to send refusal: %s", strerror(errno));
	json_object_put(r);
	close(fd);
}

static void on_accept(void *ctx, uint32_t events)
{
	struct rpc_server *s = ctx;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;
	int fd;

	(void)events;
	fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && s->spare >= 0) {
		/* Out of descriptors: the one kept in reserve takes the connection so that root
		 * hears why instead of hanging (and the listener does not stay readable). */
		close(s->spare);
		fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			refuse(fd, EXIT_UNAVAILABLE, "caelumd is out of file descriptors");
		s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		s->fd_refusals++;
		return;
	}
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != 0) {
		p_warn("refused control connection from uid %d", len ? (int)cred.uid : -1);
		refuse(fd, EXIT_NOPERM, "not permitted: the control socket is for root only");
		return;
	}
	if (s->n_conns >= MAX_CONNS) {
		refuse(fd, EXIT_UNAVAILABLE, "too many control connections");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || loop_add(s->loop, fd, EPOLLIN, conn_io, c)) {
		free(c);
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
}

/* A leftover socket file from a killed caelumd is removed; a live one is an error. */
static int stale_check(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	live = !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (live) {
		p_err("another caelumd is serving '%s'", path);
		return -EADDRINUSE;
	}
	unlink(path);
	return 0;
}

int rpc_server_open(struct rpc_server **out, const struct transport_env *env, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rpc_server *s;
	int err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		p_err("control socket path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	err = stale_check(path);
	if (err)
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->hx = env->hx;
	s->ev = env->ev;
	s->loop = env->loop;
	s->mcp = env->mcp;
	s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	snprintf(s->path, sizeof(s->path), "%s", path);
	strcpy(sa.sun_path, path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) ||
	    listen(s->fd, 64) || loop_add(s->loop, s->fd, EPOLLIN, on_accept, s)) {
		err = -errno;
		p_err("failed to listen on '%s': %s", path, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		if (s->spare >= 0)
			close(s->spare);
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

void rpc_server_close(struct rpc_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_close(s->conns);
	loop_del(s->loop, s->fd);
	close(s->fd);
	if (s->spare >= 0)
		close(s->spare);
	unlink(s->path);
	free(s);
}

size_t rpc_server_clients(const struct rpc_server *s)
{
	return s->n_conns;
}

/* ---- the transport (transport.h) ---- */

static int rpc_start(const struct transport_env *env, void **self)
{
	char sock[PATH_MAX];

	config_socket_path(env->cfg, sock, sizeof(sock));
	return rpc_server_open((struct rpc_server **)self, env, sock);
}

static void rpc_stop(void *self)
{
	rpc_server_close(self);
}

/* Status "control_socket": where, how many clients, refusals for want of descriptors. */
static struct json_object *rpc_status(void *self)
{
	struct rpc_server *s = self;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "path", json_object_new_string(s->path));
	json_object_object_add(o, "clients", json_object_new_uint64(s->n_conns));
	json_object_object_add(o, "fd_refusals", json_object_new_uint64(s->fd_refusals));
	return o;
}

const struct transport_ops rpc_transport = {
	.name = "control",
	.listener = -1,
	.start = rpc_start,
	.stop = rpc_stop,
	.status = rpc_status,
};
