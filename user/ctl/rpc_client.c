// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>

#include "rpc.h"

int herr_rpc_code(int exit_code)
{
	return -32000 - exit_code;
}

int herr_exit_from_rpc(int code)
{
	if (code <= -32000 && code > -32200)
		return -32000 - code;
	/* -32600 invalid request, -32601 unknown method, -32602 invalid params: usage */
	return code >= -32602 && code <= -32600 ? 2 : 1;
}

struct rpc_client {
	int fd;
	FILE *in;
	char *line;
	size_t cap;
	int next_id;
};

int rpc_client_open(struct rpc_client **out, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rpc_client *c;
	int err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		goto err;
	}
	c->in = fdopen(dup(c->fd), "r");
	if (!c->in) {
		err = -errno;
		goto err;
	}
	*out = c;
	return 0;
err:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return err;
}

void rpc_client_close(struct rpc_client *c)
{
	if (!c)
		return;
	if (c->in)
		fclose(c->in);
	close(c->fd);
	free(c->line);
	free(c);
}

static int read_msg(struct rpc_client *c, struct json_object **msg)
{
	ssize_t n = getline(&c->line, &c->cap, c->in);

	if (n <= 0)
		return -EPIPE;
	*msg = json_tokener_parse(c->line);
	return *msg ? 0 : -EPROTO;
}

static int send_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int rpc_client_call(struct rpc_client *c, const char *method, struct json_object *params,
		    struct json_object **result, struct json_object **error)
{
	struct json_object *req = json_object_new_object(), *msg, *v;
	int id = ++c->next_id, err;
	char *line;

	*result = NULL;
	*error = NULL;
	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "id", json_object_new_int(id));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(req, "params", json_object_get(params));
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) <
	    0) {
		json_object_put(req);
		return -ENOMEM;
	}
	json_object_put(req);
	err = send_all(c->fd, line, strlen(line));
	free(line);
	if (err)
		return err;
	/* Replies come in order; anything else before ours would be a notification. */
	while (!(err = read_msg(c, &msg))) {
		/* The daemon refuses a connection with an error whose id is null. */
		if (json_object_object_get_ex(msg, "error", &v) &&
		    json_object_object_get_ex(msg, "id", NULL) &&
		    json_object_get_type(json_object_object_get(msg, "id")) == json_type_null) {
			*error = json_object_get(v);
			json_object_put(msg);
			return 1;
		}
		if (!json_object_object_get_ex(msg, "id", &v) || json_object_get_int(v) != id) {
			json_object_put(msg);
			continue;
		}
		if (json_object_object_get_ex(msg, "error", &v)) {
			*error = json_object_get(v);
			json_object_put(msg);
			return 1;
		}
		if (json_object_object_get_ex(msg, "result", &v))
			*result = json_object_get(v);
		json_object_put(msg);
		return 0;
	}
	return err;
}

int rpc_client_next(struct rpc_client *c, struct json_object **params)
{
	struct json_object *msg, *v;
	int err;

	while (!(err = read_msg(c, &msg))) {
		if (json_object_object_get_ex(msg, "method", NULL) &&
		    json_object_object_get_ex(msg, "params", &v)) {
			*params = json_object_get(v);
			json_object_put(msg);
			return 0;
		}
		json_object_put(msg);
	}
	return err;
}
