// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Database handshakes over raw sockets, written from the protocols' public documentation:
 * PostgreSQL "Message Flow" and "Message Formats" (protocol 3.0), MySQL "Connection Phase"
 * (Protocol::HandshakeV10, ERR_Packet), Redis "RESP" (inline commands, simple strings, errors).
 *
 * The parsers are pure and see everything received so far, so a reply split over several
 * segments and a reply that never ends are the same code path: -EAGAIN until
 * DB_PROBE_REPLY_MAX bytes, then a verdict.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dbprobe.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define PG_NAME		  "PostgreSQL"
#define PG_PROTOCOL_3_0	  196608 /* 3 << 16 | 0 */
#define PG_PROBE_USER	  "caelum_probe"
#define PG_MSG_HDR	  5 /* type byte + int32 length, which counts itself */
#define PG_AUTH_SASL	  10
#define MYSQL_NAME	  "MySQL"
#define MYSQL_HDR	  4 /* 3-byte little-endian payload length + sequence id */
#define MYSQL_PROTOCOL_10 0x0a
#define MYSQL_ERR_PACKET  0xff
/* After the version's NUL: connection id (4), auth data (8), filler (1), capabilities (2). */
#define MYSQL_GREETING_TAIL 15
#define MYSQL_FILLER_OFF    12 /* from the byte after the version's NUL */
/* MariaDB before 11 prefixes its version with this, for old replication clients. */
#define MARIADB_PREFIX "5.5.5-"
#define REDIS_NAME     "Redis"
#define EXCERPT_MAX    48 /* the quoted start of a reply that is not the protocol */

static const char *const kind_names[] = {
	[DB_POSTGRESQL] = "postgresql",
	[DB_MYSQL] = "mysql",
	[DB_REDIS] = "redis",
	[DB_TCP] = "tcp",
};

int db_kind_parse(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_LEN(kind_names); i++)
		if (!strcmp(s, kind_names[i]))
			return (int)i;
	return -1;
}

const char *db_kind_name(enum db_kind k)
{
	if ((unsigned int)k >= ARRAY_LEN(kind_names))
		return "unknown";
	return kind_names[k];
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

/* "1 byte", "2 bytes" */
static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

static int verdict(struct db_probe_result *res, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int arg_err(struct db_probe_result *res, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Set the verdict and its detail; returns ok, so that a parser can return verdict(...). */
static int verdict(struct db_probe_result *res, int ok, const char *fmt, ...)
{
	va_list ap;

	res->ok = ok;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
	return ok;
}

/* A bad argument or a local failure: the reason in the detail, err (-errno) returned. */
static int arg_err(struct db_probe_result *res, int err, const char *fmt, ...)
{
	va_list ap;

	res->ok = 0;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
	return err;
}

/*
 * Not enough bytes yet. The detail is for the caller's timeout or end-of-stream message.
 * From DB_PROBE_REPLY_MAX on, the answer cannot come within the bytes a probe reads, so an
 * endless reply gets a verdict instead of looking like a slow one.
 */
static int need_more(struct db_probe_result *res, size_t len, const char *what)
{
	if (len >= DB_PROBE_REPLY_MAX)
		return verdict(res, 0, "no complete reply in the first %u bytes",
			       DB_PROBE_REPLY_MAX);
	verdict(res, 0, "%s (%zu byte%s)", what ? what : "reply too short", len, plural(len));
	return -EAGAIN;
}

/* One server byte as printable ASCII: itself, or \r \n \t \\ \xNN. Returns the length. */
static size_t esc_byte(char out[5], uint8_t c)
{
	static const char named[] = "\r\n\t\\", names[] = "rnt\\";
	const char *hit = c ? strchr(named, c) : NULL;

	if (hit) {
		out[0] = '\\';
		out[1] = names[hit - named];
		return 2;
	}
	if (c >= 0x20 && c < 0x7f) {
		out[0] = (char)c;
		return 1;
	}
	snprintf(out, 5, "\\x%02x", c);
	return 4;
}

/* Server bytes as text for a detail: never raw control bytes, "..." marks a cut. */
static void esc(char *dst, size_t size, const uint8_t *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char b[5];
		size_t k = esc_byte(b, s[i]);

		if (o + k + 4 > size) { /* keep room for "..." and the NUL */
			memcpy(dst + o, "...", 4);
			return;
		}
		memcpy(dst + o, b, k);
		o += k;
	}
	dst[o] = '\0';
}

/* Server bytes, escaped, after the detail so far: a cut shows as "...", never silently. */
static void detail_append(struct db_probe_result *res, const uint8_t *s, size_t n)
{
	size_t used = strlen(res->detail);

	if (sizeof(res->detail) - used >= 4)
		esc(res->detail + used, sizeof(res->detail) - used, s, n);
}

static int not_proto(struct db_probe_result *res, const char *server, const uint8_t *buf,
		     size_t len, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Not the protocol: say why, and quote how the reply starts (often an HTTP or SSH banner). */
static int not_proto(struct db_probe_result *res, const char *server, const uint8_t *buf,
		     size_t len, const char *fmt, ...)
{
	char why[160], start[EXCERPT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	esc(start, sizeof(start), buf, len);
	return verdict(res, 0, "not a %s server: %s (reply starts with \"%s\")", server, why,
		       start);
}

/* AuthenticationSASL: NUL-terminated mechanism names, ended by an empty one. */
static int pg_sasl(const uint8_t *p, size_t n, struct db_probe_result *res)
{
	char names[200] = "", name[64];
	size_t off = 0, count = 0, used;

	for (;;) {
		const uint8_t *nul = memchr(p + off, 0, n - off);
		size_t k = nul ? (size_t)(nul - (p + off)) : 0;

		if (!nul)
			return verdict(res, 0,
				       "not a " PG_NAME " server: SASL mechanism list "
				       "is not NUL-terminated within its message");
		if (!k)
			break;
		esc(name, sizeof(name), p + off, k);
		used = strlen(names);
		snprintf(names + used, sizeof(names) - used, "%s%s", count ? ", " : "", name);
		off += k + 1;
		count++;
	}
	if (!count)
		return verdict(res, 0,
			       "not a " PG_NAME " server: AuthenticationSASL lists no mechanism");
	if (off + 1 != n)
		return verdict(res, 0,
			       "not a " PG_NAME " server: %zu byte%s after the SASL mechanism list",
			       n - off - 1, plural(n - off - 1));
	return verdict(res, 1, PG_NAME ": authentication request (%s)", names);
}

struct pg_auth_kind {
	uint32_t code;
	uint32_t extra; /* bytes after the int32 code */
	const char *what;
};

/* The AuthenticationRequest subtypes a server may open with; SASL is decoded by pg_sasl(). */
static const struct pg_auth_kind pg_auth_kinds[] = {
	{ 0, 0, "authentication ok (no password asked)" },
	{ 2, 0, "authentication request (Kerberos V5)" },
	{ 3, 0, "authentication request (cleartext password)" },
	{ 5, 4, "authentication request (MD5)" }, /* the 4-byte salt */
	{ 7, 0, "authentication request (GSSAPI)" },
	{ 9, 0, "authentication request (SSPI)" },
};

/* AuthenticationRequest body: int32 subtype, then what that subtype carries. */
static int pg_auth(const uint8_t *p, size_t n, struct db_probe_result *res)
{
	uint32_t code;

	if (n < 4)
		return verdict(res, 0,
			       "not a " PG_NAME " server: AuthenticationRequest of %zu "
			       "bytes has no subtype",
			       n);
	code = get_be32(p);
	if (code == PG_AUTH_SASL)
		return pg_sasl(p + 4, n - 4, res);
	for (size_t i = 0; i < ARRAY_LEN(pg_auth_kinds); i++) {
		const struct pg_auth_kind *k = &pg_auth_kinds[i];

		if (k->code != code)
			continue;
		if (n - 4 != k->extra)
			return verdict(res, 0,
				       "not a " PG_NAME " server: AuthenticationRequest "
				       "subtype %u carries %zu bytes, expected %u",
				       code, n - 4, k->extra);
		return verdict(res, 1, PG_NAME ": %s", k->what);
	}
	/* Well framed but newer than this code: still a PostgreSQL server talking. */
	return verdict(res, 1, PG_NAME ": authentication request (subtype %u)", code);
}

/* ErrorResponse: fields of a code byte and a NUL-terminated string, then a 0 byte. */
static int pg_error(const uint8_t *p, size_t n, struct db_probe_result *res)
{
	const uint8_t *sev = NULL, *msg = NULL;
	size_t sev_len = 0, msg_len = 0, off = 0;
	char sev_text[32];
	bool sev_v = false;

	while (off < n && p[off]) {
		const uint8_t *s = p + off + 1;
		const uint8_t *nul = memchr(s, 0, n - off - 1);

		if (!nul) {
			off = n; /* the field runs past the message */
			break;
		}
		if (p[off] == 'M') {
			msg = s;
			msg_len = (size_t)(nul - s);
		} else if (p[off] == 'V' || (p[off] == 'S' && !sev_v)) {
			/* 'V' (9.6+) is never translated, 'S' may be */
			sev = s;
			sev_len = (size_t)(nul - s);
			sev_v = p[off] == 'V';
		}
		off = (size_t)(nul - p) + 1;
	}
	if (off >= n)
		return verdict(res, 0,
			       "not a " PG_NAME " server: malformed ErrorResponse (fields "
			       "not terminated within the message)");
	if (off + 1 != n)
		return verdict(res, 0,
			       "not a " PG_NAME " server: malformed ErrorResponse (%zu "
			       "byte%s after its last field)",
			       n - off - 1, plural(n - off - 1));
	if (!msg)
		return verdict(res, 0,
			       "not a " PG_NAME " server: malformed ErrorResponse (no "
			       "message field)");
	esc(sev_text, sizeof(sev_text), sev ? sev : (const uint8_t *)"error", sev ? sev_len : 5);
	verdict(res, 1, PG_NAME ": %s: ", sev_text);
	detail_append(res, msg, msg_len);
	return 1;
}

/* The message at buf + off: an AuthenticationRequest or an ErrorResponse. */
static int pg_message(const uint8_t *buf, size_t len, size_t off, struct db_probe_result *res)
{
	const uint8_t *m = buf + off;
	uint32_t mlen;
	char type[5];

	type[esc_byte(type, m[0])] = '\0';
	if (m[0] != 'R' && m[0] != 'E')
		return not_proto(res, PG_NAME, buf, len,
				 "unexpected message type '%s' (expected 'R' or 'E')", type);
	if (len - off < PG_MSG_HDR)
		return need_more(res, len, NULL);
	mlen = get_be32(m + 1);
	if (mlen < 4 || mlen > DB_PROBE_REPLY_MAX - off - 1)
		return not_proto(res, PG_NAME, buf, len, "message '%s' claims a length of %u bytes",
				 type, mlen);
	if (len - off < 1 + (size_t)mlen)
		return need_more(res, len, NULL);
	if (m[0] == 'R')
		return pg_auth(m + PG_MSG_HDR, mlen - 4, res);
	return pg_error(m + PG_MSG_HDR, mlen - 4, res);
}

int db_parse_postgres(const uint8_t *buf, size_t len, struct db_probe_result *res)
{
	if (!len)
		return need_more(res, len, NULL);
	switch (buf[0]) {
	case 'S':
		/* A PostgreSQL server now waits for a TLS ClientHello; an SSH banner also starts
		 * with 'S' but goes on. */
		if (len > 1)
			return not_proto(res, PG_NAME, buf, len,
					 "%zu byte%s after the 'S' answer to SSLRequest", len - 1,
					 plural(len - 1));
		return verdict(res, 1, PG_NAME ": SSL supported");
	case 'N':
		if (len == 1)
			return need_more(res, len,
					 "answered 'N' to SSLRequest, nothing to the "
					 "startup message yet");
		return pg_message(buf, len, 1, res);
	case 'E': /* servers that predate SSL reject SSLRequest with an error */
		return pg_message(buf, len, 0, res);
	}
	return not_proto(res, PG_NAME, buf, len,
			 "unexpected answer to SSLRequest (expected 'S', 'N' or 'E')");
}

/* ERR_Packet before the handshake: 0xff, int16 code, optional '#' + SQLSTATE, message. */
static int mysql_error(const uint8_t *p, size_t n, struct db_probe_result *res)
{
	char state[32] = "";
	size_t off = 3;

	if (n < 3)
		return verdict(res, 0,
			       "not a " MYSQL_NAME " server: error packet of %zu bytes "
			       "has no error code",
			       n);
	if (n >= 9 && p[3] == '#') {
		char s[24];

		esc(s, sizeof(s), p + 4, 5);
		snprintf(state, sizeof(state), " (%s)", s);
		off = 9;
	}
	verdict(res, 1, "MySQL/MariaDB refused the connection: error %u%s: ",
		p[1] | (unsigned int)p[2] << 8, state);
	detail_append(res, p + off, n - off);
	return 1;
}

static bool printable(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] >= 0x7f)
			return false;
	return n > 0;
}

/* HandshakeV10: 0x0a, NUL-terminated server version, then at least MYSQL_GREETING_TAIL bytes. */
static int mysql_greeting(const uint8_t *buf, size_t len, size_t plen, struct db_probe_result *res)
{
	const uint8_t *ver = buf + MYSQL_HDR + 1;
	const uint8_t *nul = memchr(ver, 0, plen - 1);
	size_t vlen = nul ? (size_t)(nul - ver) : 0, pre = strlen(MARIADB_PREFIX);

	if (!nul)
		return not_proto(res, MYSQL_NAME, buf, len,
				 "server version is not NUL-terminated within the greeting");
	if (!printable(ver, vlen))
		return not_proto(res, MYSQL_NAME, buf, len, "server version is empty or not text");
	if (plen - 1 - vlen - 1 < MYSQL_GREETING_TAIL || nul[1 + MYSQL_FILLER_OFF])
		return not_proto(res, MYSQL_NAME, buf, len,
				 "greeting too short or malformed after the server version");
	if (vlen > pre && !memcmp(ver, MARIADB_PREFIX, pre) && memmem(ver, vlen, "MariaDB", 7)) {
		ver += pre;
		vlen -= pre;
	}
	return verdict(res, 1, "MySQL/MariaDB %.*s (protocol 10)", (int)vlen, (const char *)ver);
}

int db_parse_mysql(const uint8_t *buf, size_t len, struct db_probe_result *res)
{
	uint32_t plen;

	if (len < MYSQL_HDR)
		return need_more(res, len, NULL);
	plen = get_le24(buf);
	if (!plen || plen > DB_PROBE_REPLY_MAX - MYSQL_HDR)
		return not_proto(res, MYSQL_NAME, buf, len, "first packet claims %u bytes", plen);
	if (buf[3])
		return not_proto(res, MYSQL_NAME, buf, len,
				 "first packet has sequence id %u, expected 0", buf[3]);
	if (len == MYSQL_HDR)
		return need_more(res, len, NULL);
	if (buf[MYSQL_HDR] != MYSQL_PROTOCOL_10 && buf[MYSQL_HDR] != MYSQL_ERR_PACKET)
		return not_proto(res, MYSQL_NAME, buf, len,
				 "first packet has protocol version 0x%02x", buf[MYSQL_HDR]);
	if (len < MYSQL_HDR + (size_t)plen)
		return need_more(res, len, NULL);
	if (buf[MYSQL_HDR] == MYSQL_ERR_PACKET)
		return mysql_error(buf + MYSQL_HDR, plen, res);
	return mysql_greeting(buf, len, plen, res);
}

/* The answer to PING: "+PONG\r\n", or an error line ("-NOAUTH ...", "-DENIED ..."). */
int db_parse_redis(const uint8_t *buf, size_t len, struct db_probe_result *res)
{
	const uint8_t *lf;
	size_t n;

	if (!len)
		return need_more(res, len, NULL);
	if (buf[0] != '+' && buf[0] != '-')
		return not_proto(res, REDIS_NAME, buf, len, "expected a '+' or '-' line");
	lf = memchr(buf, '\n', len);
	if (!lf)
		return need_more(res, len, NULL);
	n = (size_t)(lf - buf);
	if (buf[n - 1] != '\r')
		return not_proto(res, REDIS_NAME, buf, len, "reply line ends in a bare LF");
	if (memchr(buf, '\r', n - 1))
		return not_proto(res, REDIS_NAME, buf, len, "bare CR inside the reply line");
	n--;
	if (n == 1)
		return not_proto(res, REDIS_NAME, buf, len, "empty reply line");
	if (buf[0] == '+' && (n != 5 || memcmp(buf, "+PONG", 5)))
		return not_proto(res, REDIS_NAME, buf, len, "PING answered with something else");
	verdict(res, 1, REDIS_NAME ": ");
	detail_append(res, buf, n);
	return 1;
}

typedef int (*db_parser)(const uint8_t *buf, size_t len, struct db_probe_result *res);

static const db_parser parsers[] = {
	[DB_POSTGRESQL] = db_parse_postgres,
	[DB_MYSQL] = db_parse_mysql,
	[DB_REDIS] = db_parse_redis,
};

/* SSLRequest: length 8, code 1234 << 16 | 5679 (80877103). */
static const uint8_t pg_ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
/* StartupMessage parameters; the literal's own NUL ends the list. */
static const char pg_startup_params[] = "user\0" PG_PROBE_USER "\0database\0postgres\0";
#define PG_STARTUP_LEN (8 + sizeof(pg_startup_params))

struct probe {
	enum db_kind kind;
	int fd;
	char peer[INET6_ADDRSTRLEN + 8]; /* "127.0.0.1:5432", "[::1]:6379" */
	unsigned int timeout_ms;
	uint64_t deadline_ms;
	uint8_t *buf; /* DB_PROBE_REPLY_MAX bytes */
	size_t len;
	bool startup_sent;
	struct db_probe_result *res;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int fail(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The probe ran and the answer is no: returns 1, "done". */
static int fail(struct probe *p, const char *fmt, ...)
{
	va_list ap;

	p->res->ok = 0;
	va_start(ap, fmt);
	vsnprintf(p->res->detail, sizeof(p->res->detail), fmt, ap);
	va_end(ap);
	return 1;
}

/* A local failure, errno set by what: -errno, and the reason in the detail. */
static int local_err(struct probe *p, const char *what)
{
	int err = errno;

	return arg_err(p->res, -err, "failed to %s: %s", what, strerror(err));
}

/* Wait for events on p->fd until the deadline: 1 ready, 0 deadline passed, or -errno. */
static int wait_fd(struct probe *p, short events)
{
	struct pollfd pfd = { .fd = p->fd, .events = events };

	for (;;) {
		uint64_t now = now_ms(), left;
		int n;

		if (now >= p->deadline_ms)
			return 0;
		left = p->deadline_ms - now;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return local_err(p, "poll socket");
	}
}

/* Non-blocking, so that a SYN nobody answers costs no more than the deadline. */
static int probe_connect(struct probe *p, const struct sockaddr *addr, socklen_t addrlen)
{
	socklen_t errlen = sizeof(int);
	int err;

	p->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return local_err(p, "create socket");
	if (!connect(p->fd, addr, addrlen))
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return fail(p, "connect %s: %s", p->peer, strerror(errno));
	err = wait_fd(p, POLLOUT);
	if (err <= 0)
		return err ? err
			   : fail(p, "timed out after %u ms connecting to %s", p->timeout_ms,
				  p->peer);
	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &errlen))
		return local_err(p, "read socket error");
	if (err)
		return fail(p, "connect %s: %s", p->peer, strerror(err));
	return 0;
}

/* The whole request, within the deadline; MSG_NOSIGNAL: a peer that left is an answer. */
static int probe_send(struct probe *p, const void *data, size_t n)
{
	const uint8_t *d = data;

	while (n) {
		ssize_t k = send(p->fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		int err;

		if (k >= 0) {
			d += k;
			n -= (size_t)k;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return fail(p, "send %s: %s", p->peer, strerror(errno));
		err = wait_fd(p, POLLOUT);
		if (err <= 0)
			return err ? err
				   : fail(p, "timed out after %u ms sending to %s", p->timeout_ms,
					  p->peer);
	}
	return 0;
}

static const char *reply_word(const struct probe *p)
{
	return p->kind == DB_MYSQL ? "greeting" : "reply";
}

/* Deadline or end of stream before a verdict: add what was missing (the parser's detail). */
static int probe_incomplete(struct probe *p, bool timed_out)
{
	char why[sizeof(p->res->detail)], event[64];

	snprintf(why, sizeof(why), "%s", p->res->detail);
	if (timed_out)
		snprintf(event, sizeof(event), "timed out after %u ms waiting for the server's %s",
			 p->timeout_ms, reply_word(p));
	else
		snprintf(event, sizeof(event), "server closed the connection");
	if (!p->len)
		return timed_out ? fail(p, "%s", event)
				 : fail(p, "%s without a %s", event, reply_word(p));
	return fail(p, "%s: %s", event, why);
}

/* Append what the server sent: 0 got bytes, 1 done (closed, reset, timed out), or -errno. */
static int probe_read(struct probe *p)
{
	for (;;) {
		ssize_t n;
		int err = wait_fd(p, POLLIN);

		if (err <= 0)
			return err ? err : probe_incomplete(p, true);
		n = recv(p->fd, p->buf + p->len, DB_PROBE_REPLY_MAX - p->len, MSG_DONTWAIT);
		if (n > 0) {
			p->len += (size_t)n;
			return 0;
		}
		if (!n)
			return probe_incomplete(p, false);
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return fail(p, "recv %s: %s", p->peer, strerror(errno));
	}
}

/* Parse what came so far: 1 verdict, 0 read on (after the follow-up request, if one is due). */
static int probe_decide(struct probe *p)
{
	uint8_t startup[PG_STARTUP_LEN];

	if (parsers[p->kind](p->buf, p->len, p->res) != -EAGAIN)
		return 1;
	/* the parsers give a verdict at the cap; a zero-byte recv() would read as a close */
	if (p->len >= DB_PROBE_REPLY_MAX)
		return fail(p, "no complete reply in the first %u bytes", DB_PROBE_REPLY_MAX);
	if (p->kind != DB_POSTGRESQL || p->buf[0] != 'N' || p->startup_sent)
		return 0;
	/* 'N': no TLS, so the server now expects the StartupMessage; its answer decides */
	put_be32(startup, PG_STARTUP_LEN);
	put_be32(startup + 4, PG_PROTOCOL_3_0);
	memcpy(startup + 8, pg_startup_params, sizeof(pg_startup_params));
	p->startup_sent = true;
	return probe_send(p, startup, sizeof(startup));
}

/* Request (none for MySQL: its server speaks first), then read until a verdict. */
static int probe_exchange(struct probe *p)
{
	int err = 0;

	if (p->kind == DB_POSTGRESQL)
		err = probe_send(p, pg_ssl_request, sizeof(pg_ssl_request));
	else if (p->kind == DB_REDIS)
		err = probe_send(p, "PING\r\n", 6);
	while (!err) {
		err = probe_read(p);
		if (!err)
			err = probe_decide(p);
	}
	return err;
}

/* "127.0.0.1:5432" or "[::1]:5432" into p->peer, for the messages. */
static int probe_peer(struct probe *p, const struct sockaddr *addr, socklen_t addrlen)
{
	const struct sockaddr_in6 *in6 = (const void *)addr;
	const struct sockaddr_in *in = (const void *)addr;
	char host[INET6_ADDRSTRLEN];

	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		return arg_err(p->res, -EAFNOSUPPORT,
			       "unsupported address family %u (expected IPv4 or IPv6)",
			       addr->sa_family);
	if (addrlen < (addr->sa_family == AF_INET ? sizeof(*in) : sizeof(*in6)))
		return arg_err(p->res, -EINVAL, "address length %u is too short", addrlen);
	if (addr->sa_family == AF_INET) {
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(p->peer, sizeof(p->peer), "%s:%u", host, ntohs(in->sin_port));
	} else {
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(p->peer, sizeof(p->peer), "[%s]:%u", host, ntohs(in6->sin6_port));
	}
	return 0;
}

static int probe_init(struct probe *p, const struct sockaddr *addr, socklen_t addrlen)
{
	int err;

	if ((unsigned int)p->kind >= ARRAY_LEN(kind_names))
		return arg_err(p->res, -EINVAL, "invalid database kind %d", (int)p->kind);
	if (!addr)
		return arg_err(p->res, -EINVAL, "no address to probe");
	if (!p->timeout_ms)
		return arg_err(p->res, -EINVAL, "timeout must be at least 1 ms");
	err = probe_peer(p, addr, addrlen);
	if (err || p->kind == DB_TCP)
		return err;
	p->buf = malloc(DB_PROBE_REPLY_MAX);
	if (!p->buf)
		return local_err(p, "allocate the reply buffer");
	return 0;
}

int db_probe(enum db_kind kind, const struct sockaddr *addr, socklen_t addrlen,
	     unsigned int timeout_ms, struct db_probe_result *res)
{
	struct probe p = { .kind = kind, .fd = -1, .timeout_ms = timeout_ms, .res = res };
	uint64_t start = now_ms();
	int err;

	if (!res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	p.deadline_ms = start + timeout_ms;
	err = probe_init(&p, addr, addrlen);
	if (!err)
		err = probe_connect(&p, addr, addrlen);
	if (!err && kind == DB_TCP)
		err = verdict(res, 1, "tcp: connected");
	else if (!err)
		err = probe_exchange(&p);
	if (p.fd >= 0)
		close(p.fd);
	free(p.buf);
	res->elapsed_ms = now_ms() - start;
	return err < 0 ? err : 0;
}
