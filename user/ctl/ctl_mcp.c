// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelumctl mcp: MCP over stdio for desktop clients. Newline-delimited JSON-RPC on stdin
 * goes to caelumd's control socket (switched into MCP mode by "mcp.connect"); what caelumd
 * sends comes out on stdout, one message per line, and nothing else is written there.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "rpc.h"

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		char *t;

		while (cap < b->len + n)
			cap *= 2;
		if (cap > RPC_LINE_MAX * 2 || !(t = realloc(b->p, cap)))
			return -ENOMEM;
		b->p = t;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

/* Write all of b to fd (blocking). */
static int buf_flush(struct buf *b, int fd)
{
	size_t off = 0;

	while (off < b->len) {
		ssize_t n = write(fd, b->p + off, b->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		off += (size_t)n;
	}
	b->len = 0;
	return 0;
}

static int sock_open(int *fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[PATH_MAX];

	ctl_config(false);
	config_socket_path(&ctl.cfg, path, sizeof(path));
	if (strlen(path) >= sizeof(sa.sun_path))
		return ctl_error(EXIT_CONFIG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 || connect(*fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = errno;

		if (*fd >= 0)
			close(*fd);
		if (err == EACCES || err == EPERM)
			return ctl_error(EXIT_NOPERM, "permission denied on '%s' (run as root)",
					 path);
		return ctl_error(EXIT_UNAVAILABLE,
				 "caelumd is not running (cannot connect to '%s': %s)", path,
				 strerror(err));
	}
	return 0;
}

/* Read the one-line reply to mcp.connect without reading past it. */
static int handshake(int fd)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"mcp.connect\"}\n";
	struct json_object *reply, *err;
	char line[4096];
	size_t n = 0;

	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		return ctl_error(EXIT_UNAVAILABLE, "lost connection to caelumd: %s",
				 strerror(errno));
	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, line + n, 1);

		if (r <= 0)
			return ctl_error(EXIT_UNAVAILABLE, "lost connection to caelumd");
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	reply = json_tokener_parse(line);
	if (!reply)
		return ctl_error(EXIT_UNAVAILABLE, "caelumd answered mcp.connect with garbage");
	if (json_object_object_get_ex(reply, "error", &err)) {
		int rc = ctl_rpc_error(json_object_get(err));

		json_object_put(reply);
		return rc;
	}
	json_object_put(reply);
	return 0;
}

static int do_mcp_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "Usage: caelumctl mcp\n"
			"  MCP over stdio: JSON-RPC messages, one per line, on stdin and stdout,\n"
			"  bridged to the local caelumd (for desktop MCP clients; run as root).\n");
	return 0;
}

int do_mcp(int argc, char **argv)
{
	struct buf in = {}, out = {};
	bool stdin_open = true;
	int fd = -1, rc;

	if (argc && (!strcmp(argv[0], "help") || !strcmp(argv[0], "-h")))
		return do_mcp_help(argc, argv);
	if (argc)
		return ctl_usage("mcp takes no arguments");
	rc = sock_open(&fd);
	if (rc)
		return rc;
	rc = handshake(fd);
	if (rc) {
		close(fd);
		return rc;
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
				       { .fd = 0, .events = stdin_open ? POLLIN : 0 } };
		char chunk[65536];
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = ctl_error(EXIT_FAIL, "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, chunk, sizeof(chunk));
			if (n <= 0) {
				/* The daemon went away: the client sees stdout close. */
				rc = stdin_open ? ctl_error(EXIT_UNAVAILABLE,
							    "caelumd closed the connection")
						: EXIT_OK;
				break;
			}
			/* Whole lines only, so that a message is never split on stdout. */
			if (buf_add(&out, chunk, (size_t)n)) {
				rc = ctl_error(EXIT_FAIL, "message from caelumd too large");
				break;
			}
			for (char *nl; (nl = memchr(out.p, '\n', out.len));) {
				size_t k = (size_t)(nl - out.p) + 1;
				struct buf line = { .p = out.p, .len = k, .cap = k };

				if (buf_flush(&line, 1)) {
					rc = EXIT_OK; /* the client closed stdout */
					goto done;
				}
				memmove(out.p, out.p + k, out.len - k);
				out.len -= k;
			}
		}
		if (stdin_open && (p[1].revents & (POLLIN | POLLHUP))) {
			n = read(0, chunk, sizeof(chunk));
			if (n <= 0) {
				stdin_open = false;
				shutdown(fd, SHUT_WR); /* caelumd closes after its last answer */
				continue;
			}
			if (buf_add(&in, chunk, (size_t)n) || buf_flush(&in, fd)) {
				rc = ctl_error(EXIT_UNAVAILABLE, "lost connection to caelumd");
				break;
			}
		}
	}
done:
	free(in.p);
	free(out.p);
	close(fd);
	return rc;
}
