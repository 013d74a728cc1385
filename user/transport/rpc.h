/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The control socket: <runtime_dir>/caelumd.sock, mode 0600, root only (SO_PEERCRED).
 * One JSON-RPC 2.0 message per line. This file only frames: every method is a handler
 * (handlers.c). events.follow keeps the connection and sends each matching event as a
 * notification {"jsonrpc":"2.0","method":"event","params":{...}}.
 */
#ifndef CAELUM_RPC_H
#define CAELUM_RPC_H

#include <stddef.h>

#include "transport.h"

struct rpc_server;

/* The transport: rpc_server_open() on config_socket_path(); status "control_socket". */
extern const struct transport_ops rpc_transport;

/* Listen on path (a stale socket file of a dead caelumd is removed, a live one is
 * -EADDRINUSE) on env->loop; methods go to handlers_call(env->hx), "mcp.connect" makes the
 * connection an MCP session of env->mcp (refused when NULL). 0 or -errno (reported). */
int rpc_server_open(struct rpc_server **out, const struct transport_env *env, const char *path);
/* Close every connection, the listener, and unlink the socket file. NULL: nothing. */
void rpc_server_close(struct rpc_server *s);
size_t rpc_server_clients(const struct rpc_server *s);

/* Client side (caelumctl). */
struct rpc_client;
/* 0, or -errno: -ENOENT/-ECONNREFUSED (daemon not running), -EACCES (not root). */
int rpc_client_open(struct rpc_client **out, const char *path);
void rpc_client_close(struct rpc_client *c);
/* Send one request; wait for its reply. 0 and *result, or 1 and *error (the error object),
 * or -errno on transport failure. */
struct json_object;
int rpc_client_call(struct rpc_client *c, const char *method, struct json_object *params,
		    struct json_object **result, struct json_object **error);
/* Next notification's params (events.follow); -EPIPE at end of stream. */
int rpc_client_next(struct rpc_client *c, struct json_object **params);

#define RPC_LINE_MAX (4U << 20)

/* JSON-RPC error code for an exit code: -32000 - exit (e.g. 78 -> -32078), and back. */
int herr_rpc_code(int exit_code);
int herr_exit_from_rpc(int code);

#endif /* CAELUM_RPC_H */
