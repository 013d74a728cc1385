/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Database reachability: connect and go through the first step of the server's own protocol,
 * so that "reachable" means "a PostgreSQL (MySQL, Redis) server answered", not "some process
 * accepted a TCP connection". No client library and no credentials: the first answer of the
 * handshake is enough, and the probe closes before authenticating.
 *
 *   postgresql  send SSLRequest; 'S' ends it (no TLS is started). 'N': send a StartupMessage
 *               for user "caelum_probe"; an AuthenticationRequest or an ErrorResponse counts.
 *   mysql       the server speaks first: a protocol 10 greeting, or an 0xff error packet
 *               (e.g. "Host ... is not allowed to connect"), which counts: a MySQL server said no.
 *   redis       send "PING\r\n"; "+PONG" or any "-ERR ..." / "-NOAUTH ..." line counts.
 *   tcp         the connect itself.
 */
#ifndef CAELUM_DBPROBE_H
#define CAELUM_DBPROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* At most this many reply bytes are read; no complete answer within them is a failure. */
#define DB_PROBE_REPLY_MAX 8192

enum db_kind { DB_POSTGRESQL, DB_MYSQL, DB_REDIS, DB_TCP };

/* "postgresql", "mysql", "redis" or "tcp" -> enum db_kind; anything else -1. */
int db_kind_parse(const char *s);
/* The name db_kind_parse() takes; "unknown" for values outside the enum. */
const char *db_kind_name(enum db_kind k);

struct db_probe_result {
	int ok; /* 1: the server answered as its protocol says */
	/*
	 * ok: what it said, e.g. "PostgreSQL: authentication request (SCRAM-SHA-256)",
	 * "MySQL/MariaDB 10.11.6-MariaDB-0+deb12u1 (protocol 10)", "Redis: -NOAUTH ...".
	 * not ok: why, e.g. "connect 127.0.0.1:5432: Connection refused". Server text is
	 * escaped (\r, \n, \xNN), so the string is printable ASCII.
	 */
	char detail[256];
	uint64_t elapsed_ms; /* connect + exchange */
};

/*
 * One probe of addr (struct sockaddr_in or sockaddr_in6). timeout_ms (> 0) bounds the whole
 * probe, connect included: it never blocks longer. Returns 0 when the probe ran (the verdict is
 * res->ok), or -errno for local failures only: -EINVAL (bad arguments), -EAFNOSUPPORT,
 * -ENOMEM, -EMFILE... (res->detail says which, except when res is NULL).
 */
int db_probe(enum db_kind kind, const struct sockaddr *addr, socklen_t addrlen,
	     unsigned int timeout_ms, struct db_probe_result *res);

/*
 * The decisions, on everything the server sent so far (buf, len): 1 it spoke the protocol,
 * 0 it did not (res->detail says why), -EAGAIN not enough bytes to tell yet (res->detail says
 * what is missing, for the caller's timeout or end-of-stream message). Safe on any input.
 * For PostgreSQL buf is the answer to SSLRequest followed by the answer to StartupMessage.
 */
int db_parse_postgres(const uint8_t *buf, size_t len, struct db_probe_result *res);
int db_parse_mysql(const uint8_t *buf, size_t len, struct db_probe_result *res);
int db_parse_redis(const uint8_t *buf, size_t len, struct db_probe_result *res);

#endif /* CAELUM_DBPROBE_H */
