// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Database probes. The parsers: replies built byte by byte from the protocol docs, every
 * prefix of them (-EAGAIN, never a verdict), every byte of them mutated, length fields at and
 * past their bounds, and hostile input with exact messages. db_probe(): fake servers on
 * loopback (a thread per probe) that answer right, answer wrong, answer in pieces, answer
 * nothing, answer without end or hang up, plus a port nobody listens on and one whose
 * accept queue is full.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dbprobe.h"

typedef int (*parser_fn)(const uint8_t *buf, size_t len, struct db_probe_result *res);

#define HTTP_400    "HTTP/1.1 400 Bad Request\r\n\r\n"
#define HTTP_400_Q  "(reply starts with \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\")"
#define GARBAGE_LEN (64 * 1024)

/* ---- building replies ---- */

struct bytes {
	uint8_t b[2048];
	size_t n;
};

static void add(struct bytes *m, const void *p, size_t n)
{
	assert_true(m->n + n <= sizeof(m->b));
	if (n) /* p may be NULL then */
		memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void add_u8(struct bytes *m, uint8_t v)
{
	add(m, &v, 1);
}

static void add_be32(struct bytes *m, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	add(m, b, sizeof(b));
}

/* s with its NUL */
static void add_str0(struct bytes *m, const char *s)
{
	add(m, s, strlen(s) + 1);
}

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* PostgreSQL backend message: type, int32 length counting itself, body. */
static void pg_msg(struct bytes *m, char type, const struct bytes *body)
{
	add_u8(m, (uint8_t)type);
	add_be32(m, (uint32_t)(4 + body->n));
	add(m, body->b, body->n);
}

/* AuthenticationSASL listing mechs (NULL-terminated), after an 'N' when with_n. */
static void pg_sasl(struct bytes *m, bool with_n, const char *const *mechs)
{
	struct bytes body = { .n = 0 };

	if (with_n)
		add_u8(m, 'N');
	add_be32(&body, 10);
	for (; *mechs; mechs++)
		add_str0(&body, *mechs);
	add_u8(&body, 0);
	pg_msg(m, 'R', &body);
}

/* 'N', then AuthenticationRequest code with extra bytes after it. */
static void pg_auth(struct bytes *m, uint32_t code, const void *extra, size_t n)
{
	struct bytes body = { .n = 0 };

	add_u8(m, 'N');
	add_be32(&body, code);
	add(&body, extra, n);
	pg_msg(m, 'R', &body);
}

/* ErrorResponse of fields like "SFATAL", "Mtext" (NULL-terminated), after 'N' when with_n. */
static void pg_error(struct bytes *m, bool with_n, const char *const *fields)
{
	struct bytes body = { .n = 0 };

	if (with_n)
		add_u8(m, 'N');
	for (; *fields; fields++)
		add_str0(&body, *fields);
	add_u8(&body, 0);
	pg_msg(m, 'E', &body);
}

static const char *const scram[] = { "SCRAM-SHA-256", NULL };
static const char *const role_missing[] = {
	"SFATAL",
	"VFATAL",
	"C28000",
	"Mrole \"caelum_probe\" does not exist",
	"Fmiscinit.c",
	"L720",
	"RInitializeSessionUserId",
	NULL,
};

/* MySQL packet: 3-byte little-endian payload length, sequence id, payload. */
static void my_packet(struct bytes *m, uint8_t seq, const struct bytes *payload)
{
	uint8_t hdr[4] = { (uint8_t)payload->n, (uint8_t)(payload->n >> 8),
			   (uint8_t)(payload->n >> 16), seq };

	add(m, hdr, sizeof(hdr));
	add(m, payload->b, payload->n);
}

/* What follows the version in a MariaDB 10.11 HandshakeV10. */
static const uint8_t greeting_tail[] = {
	0x2a, 0x00, 0x00, 0x00,			    /* connection id */
	'a',  'b',  'c',  'd',	'e', 'f', 'g', 'h', /* auth-plugin-data-part-1 */
	0x00,					    /* filler */
	0xfe, 0xf7,				    /* capability flags, lower */
	0x2d,					    /* character set */
	0x02, 0x00,				    /* status flags */
	0xff, 0x81,				    /* capability flags, upper */
	21,					    /* auth-plugin-data length */
	0,    0,    0,	  0,	0,   0,		    /* reserved */
	0x1d, 0x00, 0x00, 0x00,			    /* MariaDB extended capabilities */
	'i',  'j',  'k',  'l',	'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 0, /* part 2 */
	'm',  'y',  's',  'q',	'l', '_', 'n', 'a', 't', 'i', 'v', 'e', '_',
	'p',  'a',  's',  's',	'w', 'o', 'r', 'd', 0, /* auth plugin name */
};

/* A protocol 10 greeting: version bytes (vlen of them, a NUL added), then tail_len of the tail. */
static void my_greeting_raw(struct bytes *m, const char *version, size_t vlen, size_t tail_len)
{
	struct bytes payload = { .n = 0 };

	add_u8(&payload, 0x0a);
	add(&payload, version, vlen);
	add_u8(&payload, 0);
	add(&payload, greeting_tail, tail_len);
	my_packet(m, 0, &payload);
}

static void my_greeting(struct bytes *m, const char *version)
{
	my_greeting_raw(m, version, strlen(version), sizeof(greeting_tail));
}

/* ERR_Packet: 0xff, little-endian code, '#' + state when state, message (no NUL). */
static void my_error(struct bytes *m, uint16_t code, const char *state, const char *msg)
{
	struct bytes payload = { .n = 0 };

	add_u8(&payload, 0xff);
	add_u8(&payload, (uint8_t)code);
	add_u8(&payload, (uint8_t)(code >> 8));
	if (state) {
		add_u8(&payload, '#');
		add(&payload, state, 5);
	}
	add(&payload, msg, strlen(msg));
	my_packet(m, 0, &payload);
}

static void add_text(struct bytes *m, const char *s)
{
	add(m, s, strlen(s));
}

/* ---- parser checks ---- */

/*
 * Parse a heap copy of exactly len bytes, so that ASan reports any read past the end, and
 * check what every call promises: a known return, ok matching it, a printable detail.
 */
static int parse_exact(parser_fn fn, const void *buf, size_t len, struct db_probe_result *res)
{
	uint8_t *copy = malloc(len);
	size_t dlen;
	int ret;

	assert_true(copy || !len);
	if (len)
		memcpy(copy, buf, len);
	memset(res, 0x7f, sizeof(*res));
	ret = fn(copy, len, res);
	free(copy);
	if (ret != 1 && ret != 0 && ret != -EAGAIN)
		fail_msg("parser returned %d", ret);
	assert_int_equal(res->ok, ret == 1);
	dlen = strnlen(res->detail, sizeof(res->detail));
	assert_true(dlen > 0 && dlen < sizeof(res->detail));
	for (size_t i = 0; i < dlen; i++)
		if (res->detail[i] < 0x20 || res->detail[i] > 0x7e)
			fail_msg("byte %zu of the detail is 0x%02x: %s", i,
				 (unsigned char)res->detail[i], res->detail);
	return ret;
}

/* fn(buf) returns want, with exactly detail when it is not NULL. */
static void expect(parser_fn fn, const void *buf, size_t len, int want, const char *detail)
{
	struct db_probe_result res;
	int ret = parse_exact(fn, buf, len, &res);

	if (ret != want || (detail && strcmp(res.detail, detail)))
		fail_msg("got %d \"%s\"\n  want %d \"%s\"", ret, res.detail, want,
			 detail ? detail : "(any)");
}

static void expect_bytes(parser_fn fn, const struct bytes *m, int want, const char *detail)
{
	expect(fn, m->b, m->n, want, detail);
}

/* fn(m) says no, with a detail that starts with start (binary excerpts are long to spell). */
static void expect_start(parser_fn fn, const struct bytes *m, const char *start)
{
	struct db_probe_result res;
	int ret = parse_exact(fn, m->b, m->n, &res);

	if (ret != 0 || strncmp(res.detail, start, strlen(start)))
		fail_msg("got %d \"%s\"\n  want 0 \"%s...\"", ret, res.detail, start);
}

/* Every proper prefix of a valid reply asks for more; the whole reply is a verdict. */
static void expect_prefixes_wait(parser_fn fn, const struct bytes *m, const char *detail)
{
	for (size_t k = 0; k < m->n; k++)
		expect(fn, m->b, k, -EAGAIN, NULL);
	expect_bytes(fn, m, 1, detail);
}

/* Each byte replaced by values that break lengths, terminators and type bytes. */
static void expect_mutations_safe(parser_fn fn, const struct bytes *m)
{
	static const uint8_t vals[] = { 0x00, 0x01, 0x0a, 0x0d, 0x7f, 0x80, 0xff };
	struct db_probe_result res;
	struct bytes x;

	for (size_t i = 0; i < m->n; i++) {
		for (size_t v = 0; v < sizeof(vals); v++) {
			x = *m;
			x.b[i] = vals[v];
			for (size_t k = i; k <= x.n; k += (x.n - i) / 4 + 1)
				parse_exact(fn, x.b, k, &res);
			parse_exact(fn, x.b, x.n, &res);
		}
	}
}

/* ---- kinds ---- */

static void test_kind_names(void **state)
{
	static const char *const names[] = { "postgresql", "mysql", "redis", "tcp" };

	(void)state;
	for (int k = DB_POSTGRESQL; k <= DB_TCP; k++) {
		assert_string_equal(db_kind_name((enum db_kind)k), names[k]);
		assert_int_equal(db_kind_parse(names[k]), k);
	}
	assert_int_equal(db_kind_parse("postgres"), -1);
	assert_int_equal(db_kind_parse("Redis"), -1);
	assert_int_equal(db_kind_parse("tcp "), -1);
	assert_int_equal(db_kind_parse(""), -1);
	assert_int_equal(db_kind_parse(NULL), -1);
	assert_string_equal(db_kind_name((enum db_kind)4), "unknown");
	assert_string_equal(db_kind_name((enum db_kind) - 1), "unknown");
}

/* ---- PostgreSQL ---- */

static void test_pg_valid(void **state)
{
	static const char *const plus[] = { "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", NULL };
	static const char *const starting[] = { "SFATAL", "C57P03",
						"Mthe database system is starting up", NULL };
	static const char *const german[] = { "VFATAL", "SSCHWER", "C28P01",
					      "MPasswort-Authentifizierung f\xc3\xbcr Benutzer",
					      NULL };
	static const char *const old[] = { "SFATAL", "Munsupported frontend protocol", NULL };
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	struct bytes m = { .n = 0 };

	(void)state;
	expect(db_parse_postgres, "S", 1, 1, "PostgreSQL: SSL supported");
	pg_sasl(&m, true, scram);
	expect_prefixes_wait(db_parse_postgres, &m,
			     "PostgreSQL: authentication request (SCRAM-SHA-256)");
	m.n = 0;
	pg_sasl(&m, true, plus);
	expect_bytes(db_parse_postgres, &m, 1,
		     "PostgreSQL: authentication request (SCRAM-SHA-256-PLUS, SCRAM-SHA-256)");
	m.n = 0;
	pg_auth(&m, 5, salt, sizeof(salt));
	expect_prefixes_wait(db_parse_postgres, &m, "PostgreSQL: authentication request (MD5)");
	m.n = 0;
	pg_auth(&m, 3, NULL, 0);
	expect_bytes(db_parse_postgres, &m, 1,
		     "PostgreSQL: authentication request (cleartext password)");
	m.n = 0;
	pg_auth(&m, 42, "xyz", 3);
	expect_bytes(db_parse_postgres, &m, 1, "PostgreSQL: authentication request (subtype 42)");
	/* trust: AuthenticationOk, then ParameterStatus and the rest in the same segment */
	m.n = 0;
	pg_auth(&m, 0, NULL, 0);
	add(&m,
	    "S\0\0\0\x19server_version\0"
	    "16.2\0",
	    26);
	expect_bytes(db_parse_postgres, &m, 1, "PostgreSQL: authentication ok (no password asked)");
	m.n = 0;
	pg_error(&m, true, role_missing);
	expect_prefixes_wait(db_parse_postgres, &m,
			     "PostgreSQL: FATAL: role \"caelum_probe\" does not exist");
	m.n = 0;
	pg_error(&m, true, starting);
	expect_bytes(db_parse_postgres, &m, 1,
		     "PostgreSQL: FATAL: the database system is starting up");
	/* 'V' is never translated: it wins over 'S' in either order; UTF-8 is escaped */
	m.n = 0;
	pg_error(&m, true, german);
	expect_bytes(db_parse_postgres, &m, 1,
		     "PostgreSQL: FATAL: Passwort-Authentifizierung f\\xc3\\xbcr Benutzer");
	/* a server that predates SSL rejects SSLRequest with an ErrorResponse */
	m.n = 0;
	pg_error(&m, false, old);
	expect_prefixes_wait(db_parse_postgres, &m,
			     "PostgreSQL: FATAL: unsupported frontend protocol");
}

static void test_pg_framing_hostile(void **state)
{
	struct bytes m = { .n = 0 };

	(void)state;
	expect(db_parse_postgres, "", 0, -EAGAIN, "reply too short (0 bytes)");
	expect(db_parse_postgres, "N", 1, -EAGAIN,
	       "answered 'N' to SSLRequest, nothing to the startup message yet (1 byte)");
	expect(db_parse_postgres, "NR\0\0", 4, -EAGAIN, "reply too short (4 bytes)");
	expect(db_parse_postgres, "NR\xff\xff\xff\xff", 6, 0,
	       "not a PostgreSQL server: message 'R' claims a length of 4294967295 bytes "
	       "(reply starts with \"NR\\xff\\xff\\xff\\xff\")");
	expect(db_parse_postgres, "NE\0\0\0\x03\0", 7, 0,
	       "not a PostgreSQL server: message 'E' claims a length of 3 bytes "
	       "(reply starts with \"NE\\x00\\x00\\x00\\x03\\x00\")");
	/* larger than what came but plausible: wait; at the cap: no */
	expect(db_parse_postgres, "NR\0\0\x03\xe8\0\0\0\x0a", 10, -EAGAIN, NULL);
	expect(db_parse_postgres, "NR\0\0\x1f\xfe\0\0\0\x0a", 10, -EAGAIN, NULL);
	expect(db_parse_postgres, "NR\0\0\x1f\xff\0\0\0\x0a", 10, 0,
	       "not a PostgreSQL server: message 'R' claims a length of 8191 bytes "
	       "(reply starts with \"NR\\x00\\x00\\x1f\\xff\\x00\\x00\\x00\\n\")");
	expect(db_parse_postgres,
	       "S"
	       "SH-2.0-OpenSSH_9.2p1\r\n",
	       23, 0,
	       "not a PostgreSQL server: 22 bytes after the 'S' answer to SSLRequest "
	       "(reply starts with \"SSH-2.0-OpenSSH_9.2p1\\r\\n\")");
	expect(db_parse_postgres, "NX\0\0\0\x08", 6, 0,
	       "not a PostgreSQL server: unexpected message type 'X' (expected 'R' or 'E') "
	       "(reply starts with \"NX\\x00\\x00\\x00\\x08\")");
	expect(db_parse_postgres, "N\0", 2, 0,
	       "not a PostgreSQL server: unexpected message type '\\x00' (expected 'R' or 'E') "
	       "(reply starts with \"N\\x00\")");
	expect(db_parse_postgres, HTTP_400, strlen(HTTP_400), 0,
	       "not a PostgreSQL server: unexpected answer to SSLRequest "
	       "(expected 'S', 'N' or 'E') " HTTP_400_Q);
	/* an answer that is not text is quoted escaped, and cut */
	memset(m.b, 0x80, 100);
	expect(db_parse_postgres, m.b, 100, 0,
	       "not a PostgreSQL server: unexpected answer to SSLRequest "
	       "(expected 'S', 'N' or 'E') (reply starts with "
	       "\"\\x80\\x80\\x80\\x80\\x80\\x80\\x80\\x80\\x80\\x80\\x80...\")");
}

static void test_pg_auth_hostile(void **state)
{
	static const char *const none[] = { NULL };
	struct bytes m = { .n = 0 };

	(void)state;
	expect(db_parse_postgres, "NR\0\0\0\x04", 6, 0,
	       "not a PostgreSQL server: AuthenticationRequest of 0 bytes has no subtype");
	expect(db_parse_postgres, "NR\0\0\0\x06\0\0", 8, 0,
	       "not a PostgreSQL server: AuthenticationRequest of 2 bytes has no subtype");
	pg_auth(&m, 5, NULL, 0);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: AuthenticationRequest subtype 5 carries 0 bytes, "
		     "expected 4");
	m.n = 0;
	pg_auth(&m, 0, "junk", 4);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: AuthenticationRequest subtype 0 carries 4 bytes, "
		     "expected 0");
	/* SASL: names not terminated, list not terminated, empty list, bytes after the list */
	m.n = 0;
	pg_auth(&m, 10, "SCRAM", 5);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: SASL mechanism list is not NUL-terminated within "
		     "its message");
	m.n = 0;
	pg_auth(&m, 10, "SCRAM-SHA-256", 14);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: SASL mechanism list is not NUL-terminated within "
		     "its message");
	m.n = 0;
	pg_sasl(&m, true, none);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: AuthenticationSASL lists no mechanism");
	m.n = 0;
	pg_auth(&m, 10, "SCRAM-SHA-256\0\0XY", 17);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: 2 bytes after the SASL mechanism list");
}

static void test_pg_error_hostile(void **state)
{
	static const char *const no_msg[] = { "SFATAL", "C28000", NULL };
	struct bytes body = { .n = 0 }, m = { .n = 0 };

	(void)state;
	pg_error(&m, true, no_msg);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: malformed ErrorResponse (no message field)");
	/* the last field's NUL missing */
	add_text(&body, "SFATAL");
	add_u8(&body, 0);
	add_text(&body, "Mhello");
	m.n = 0;
	add_u8(&m, 'N');
	pg_msg(&m, 'E', &body);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: malformed ErrorResponse (fields not terminated "
		     "within the message)");
	/* fields complete, the closing 0 missing */
	add_u8(&body, 0);
	m.n = 0;
	add_u8(&m, 'N');
	pg_msg(&m, 'E', &body);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: malformed ErrorResponse (fields not terminated "
		     "within the message)");
	/* bytes after the closing 0, inside the message */
	add_u8(&body, 0);
	add_u8(&body, 'X');
	m.n = 0;
	add_u8(&m, 'N');
	pg_msg(&m, 'E', &body);
	expect_bytes(db_parse_postgres, &m, 0,
		     "not a PostgreSQL server: malformed ErrorResponse (1 byte after its last "
		     "field)");
	/* an empty ErrorResponse */
	expect(db_parse_postgres, "E\0\0\0\x04", 5, 0,
	       "not a PostgreSQL server: malformed ErrorResponse (fields not terminated within "
	       "the message)");
}

static void test_pg_mutations(void **state)
{
	struct bytes m = { .n = 0 };

	(void)state;
	pg_sasl(&m, true, scram);
	expect_mutations_safe(db_parse_postgres, &m);
	m.n = 0;
	pg_error(&m, true, role_missing);
	expect_mutations_safe(db_parse_postgres, &m);
}

/* ---- MySQL ---- */

static void test_mysql_valid(void **state)
{
	struct bytes m = { .n = 0 };

	(void)state;
	my_greeting(&m, "5.5.5-10.11.6-MariaDB-0+deb12u1");
	expect_prefixes_wait(db_parse_mysql, &m,
			     "MySQL/MariaDB 10.11.6-MariaDB-0+deb12u1 (protocol 10)");
	m.n = 0;
	my_greeting(&m, "8.0.36");
	expect_bytes(db_parse_mysql, &m, 1, "MySQL/MariaDB 8.0.36 (protocol 10)");
	/* the prefix is dropped only for MariaDB */
	m.n = 0;
	my_greeting(&m, "5.5.5-custom");
	expect_bytes(db_parse_mysql, &m, 1, "MySQL/MariaDB 5.5.5-custom (protocol 10)");
	/* the shortest greeting the docs allow: up to the lower capability flags */
	m.n = 0;
	my_greeting_raw(&m, "5.7.44", 6, 15);
	expect_bytes(db_parse_mysql, &m, 1, "MySQL/MariaDB 5.7.44 (protocol 10)");
	m.n = 0;
	my_error(&m, 1130, NULL,
		 "Host '10.1.2.3' is not allowed to connect to this MariaDB server");
	expect_prefixes_wait(db_parse_mysql, &m,
			     "MySQL/MariaDB refused the connection: error 1130: Host '10.1.2.3' "
			     "is not allowed to connect to this MariaDB server");
	m.n = 0;
	my_error(&m, 1040, "08004", "Too many connections");
	expect_bytes(db_parse_mysql, &m, 1,
		     "MySQL/MariaDB refused the connection: error 1040 (08004): Too many "
		     "connections");
	m.n = 0;
	my_error(&m, 1129, NULL, "bad\nbytes\xff");
	expect_bytes(db_parse_mysql, &m, 1,
		     "MySQL/MariaDB refused the connection: error 1129: bad\\nbytes\\xff");
}

static void test_mysql_hostile(void **state)
{
	struct bytes m = { .n = 0 };

	(void)state;
	expect(db_parse_mysql, "", 0, -EAGAIN, "reply too short (0 bytes)");
	expect(db_parse_mysql, "\x4e", 1, -EAGAIN, "reply too short (1 byte)");
	expect(db_parse_mysql, "\x4e\0\0", 3, -EAGAIN, NULL);
	expect(db_parse_mysql, "\x4e\0\0\0", 4, -EAGAIN, NULL);
	expect(db_parse_mysql,
	       "\x4e\0\0\0\x0a"
	       "10.11",
	       10, -EAGAIN, "reply too short (10 bytes)");
	expect(db_parse_mysql, "\0\0\0\0\x0a", 5, 0,
	       "not a MySQL server: first packet claims 0 bytes "
	       "(reply starts with \"\\x00\\x00\\x00\\x00\\n\")");
	expect(db_parse_mysql, "\xff\xff\xff\0\x0a", 5, 0,
	       "not a MySQL server: first packet claims 16777215 bytes "
	       "(reply starts with \"\\xff\\xff\\xff\\x00\\n\")");
	/* the largest packet that fits the cap waits, one more byte does not */
	expect(db_parse_mysql, "\xfc\x1f\0\0\x0a", 5, -EAGAIN, NULL);
	expect(db_parse_mysql, "\xfd\x1f\0\0\x0a", 5, 0,
	       "not a MySQL server: first packet claims 8189 bytes "
	       "(reply starts with \"\\xfd\\x1f\\x00\\x00\\n\")");
	expect(db_parse_mysql, "\x4e\0\0\x01\x0a", 5, 0,
	       "not a MySQL server: first packet has sequence id 1, expected 0 "
	       "(reply starts with \"N\\x00\\x00\\x01\\n\")");
	expect(db_parse_mysql, "\x10\0\0\0Hello", 9, 0,
	       "not a MySQL server: first packet has protocol version 0x48 "
	       "(reply starts with \"\\x10\\x00\\x00\\x00Hello\")");
	expect(db_parse_mysql, "\x10\0\0\0\x09", 5, 0,
	       "not a MySQL server: first packet has protocol version 0x09 "
	       "(reply starts with \"\\x10\\x00\\x00\\x00\\t\")");
	expect(db_parse_mysql, "\x02\0\0\0\xff\x6a", 6, 0,
	       "not a MySQL server: error packet of 2 bytes has no error code");
	expect(db_parse_mysql, HTTP_400, strlen(HTTP_400), 0,
	       "not a MySQL server: first packet claims 5526600 bytes " HTTP_400_Q);
	/* version not terminated within the packet (a NUL right after it does not count) */
	expect(db_parse_mysql,
	       "\x06\0\0\0\x0a"
	       "8.0.3\0",
	       11, 0,
	       "not a MySQL server: server version is not NUL-terminated within the greeting "
	       "(reply starts with \"\\x06\\x00\\x00\\x00\\n8.0.3\\x00\")");
	my_greeting_raw(&m, "", 0, sizeof(greeting_tail));
	expect_start(db_parse_mysql, &m,
		     "not a MySQL server: server version is empty or not text "
		     "(reply starts with \"");
	m.n = 0;
	my_greeting_raw(&m, "8.0\x01", 4, sizeof(greeting_tail));
	expect_start(db_parse_mysql, &m,
		     "not a MySQL server: server version is empty or not text "
		     "(reply starts with \"");
	m.n = 0;
	my_greeting_raw(&m, "8.0.36", 6, 14);
	expect_start(db_parse_mysql, &m,
		     "not a MySQL server: greeting too short or malformed "
		     "after the server version (reply starts with \"");
	m.n = 0;
	my_greeting(&m, "8.0.36");
	m.b[4 + 1 + 7 + 12] = 0x01; /* the filler */
	expect_start(db_parse_mysql, &m,
		     "not a MySQL server: greeting too short or malformed "
		     "after the server version (reply starts with \"");
}

static void test_mysql_mutations(void **state)
{
	struct bytes m = { .n = 0 };

	(void)state;
	my_greeting(&m, "5.5.5-10.11.6-MariaDB-0+deb12u1");
	expect_mutations_safe(db_parse_mysql, &m);
	m.n = 0;
	my_error(&m, 1040, "08004", "Too many connections");
	expect_mutations_safe(db_parse_mysql, &m);
}

/* ---- Redis ---- */

static void test_redis_valid(void **state)
{
	struct bytes m = { .n = 0 };
	struct db_probe_result res;
	char denied[700];

	(void)state;
	add_text(&m, "+PONG\r\n");
	expect_prefixes_wait(db_parse_redis, &m, "Redis: +PONG");
	m.n = 0;
	add_text(&m, "-NOAUTH Authentication required.\r\n");
	expect_prefixes_wait(db_parse_redis, &m, "Redis: -NOAUTH Authentication required.");
	expect(db_parse_redis, "-ERR\x01\xff\r\n", 8, 1, "Redis: -ERR\\x01\\xff");
	expect(db_parse_redis, "+PONG\r\n+PONG\r\n", 14, 1, "Redis: +PONG");
	/* protected mode explains itself at length: the detail is cut, still terminated */
	snprintf(denied, sizeof(denied), "-DENIED Redis is running in protected mode %0600d\r\n",
		 0);
	assert_int_equal(parse_exact(db_parse_redis, denied, strlen(denied), &res), 1);
	assert_int_equal(strlen(res.detail), sizeof(res.detail) - 1);
	assert_memory_equal(res.detail, "Redis: -DENIED Redis is running", 31);
	assert_string_equal(res.detail + strlen(res.detail) - 3, "...");
}

static void test_redis_hostile(void **state)
{
	uint8_t *big = malloc(DB_PROBE_REPLY_MAX);

	(void)state;
	assert_non_null(big);
	expect(db_parse_redis, "", 0, -EAGAIN, "reply too short (0 bytes)");
	expect(db_parse_redis, "+", 1, -EAGAIN, "reply too short (1 byte)");
	expect(db_parse_redis, "+PONG\r", 6, -EAGAIN, "reply too short (6 bytes)");
	expect(db_parse_redis, "+PONG\n", 6, 0,
	       "not a Redis server: reply line ends in a bare LF "
	       "(reply starts with \"+PONG\\n\")");
	expect(db_parse_redis, "+\n", 2, 0,
	       "not a Redis server: reply line ends in a bare LF (reply starts with \"+\\n\")");
	expect(db_parse_redis, "+PO\rNG\r\n", 8, 0,
	       "not a Redis server: bare CR inside the reply line "
	       "(reply starts with \"+PO\\rNG\\r\\n\")");
	expect(db_parse_redis, "+\r\n", 3, 0,
	       "not a Redis server: empty reply line (reply starts with \"+\\r\\n\")");
	expect(db_parse_redis, "-\r\n", 3, 0,
	       "not a Redis server: empty reply line (reply starts with \"-\\r\\n\")");
	expect(db_parse_redis, "+OK\r\n", 5, 0,
	       "not a Redis server: PING answered with something else "
	       "(reply starts with \"+OK\\r\\n\")");
	expect(db_parse_redis, "+PONGS\r\n", 8, 0, NULL);
	expect(db_parse_redis, "$4\r\nPONG\r\n", 10, 0,
	       "not a Redis server: expected a '+' or '-' line "
	       "(reply starts with \"$4\\r\\nPONG\\r\\n\")");
	expect(db_parse_redis, HTTP_400, strlen(HTTP_400), 0,
	       "not a Redis server: expected a '+' or '-' line " HTTP_400_Q);
	/* a line without end: wait up to the cap, then refuse */
	memset(big, 'A', DB_PROBE_REPLY_MAX);
	big[0] = '-';
	expect(db_parse_redis, big, DB_PROBE_REPLY_MAX - 1, -EAGAIN,
	       "reply too short (8191 bytes)");
	expect(db_parse_redis, big, DB_PROBE_REPLY_MAX, 0,
	       "no complete reply in the first 8192 bytes");
	free(big);
}

static void test_redis_mutations(void **state)
{
	struct bytes m = { .n = 0 };

	(void)state;
	add_text(&m, "-NOAUTH Authentication required.\r\n");
	expect_mutations_safe(db_parse_redis, &m);
}

/* ---- garbage to every parser ---- */

static void test_garbage(void **state)
{
	static const parser_fn fns[] = { db_parse_postgres, db_parse_mysql, db_parse_redis };
	uint8_t *g = malloc(GARBAGE_LEN);
	struct db_probe_result res;
	uint32_t x = 0x2545f491;

	(void)state;
	assert_non_null(g);
	for (size_t f = 0; f < 3; f++) {
		/* xorshift32: the same bytes every run */
		for (size_t i = 0; i < GARBAGE_LEN; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			g[i] = (uint8_t)x;
		}
		for (size_t k = 1; k <= GARBAGE_LEN; k *= 2)
			assert_int_not_equal(parse_exact(fns[f], g, k, &res), 1);
		assert_int_equal(parse_exact(fns[f], g, GARBAGE_LEN, &res), 0);
		memset(g, 0, GARBAGE_LEN);
		assert_int_equal(parse_exact(fns[f], g, GARBAGE_LEN, &res), 0);
		memset(g, 0xff, GARBAGE_LEN);
		assert_int_equal(parse_exact(fns[f], g, GARBAGE_LEN, &res), 0);
	}
	/* each protocol's own first byte, then garbage: still no */
	memset(g, 'A', GARBAGE_LEN);
	g[0] = '+';
	expect(db_parse_redis, g, GARBAGE_LEN, 0, "no complete reply in the first 8192 bytes");
	g[0] = 'N';
	assert_int_equal(parse_exact(db_parse_postgres, g, GARBAGE_LEN, &res), 0);
	g[0] = 'S';
	assert_int_equal(parse_exact(db_parse_postgres, g, GARBAGE_LEN, &res), 0);
	memcpy(g, "\x4e\0\0\0\x0a", 5);
	assert_int_equal(parse_exact(db_parse_mysql, g, GARBAGE_LEN, &res), 0);
	free(g);
}

/* ---- fake servers on loopback ---- */

struct fake {
	int lfd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	size_t request_len;   /* read this much before answering (SSLRequest, PING) */
	const uint8_t *reply; /* NULL: answer nothing */
	size_t reply_len;
	size_t chunk; /* send the reply this many bytes at a time, 0: at once */
	bool startup; /* then read a StartupMessage and send reply2 */
	const uint8_t *reply2;
	size_t reply2_len;
	bool hang_up;	  /* close right after accept */
	bool close_after; /* close after answering, instead of waiting for the client */
	uint8_t got[256]; /* what the client sent */
	size_t got_len;
	const char *error; /* what went wrong in the server thread */
	pthread_t thread;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Append exactly n bytes from fd to f->got. */
static int fake_read(struct fake *f, int fd, size_t n)
{
	if (f->got_len + n > sizeof(f->got)) {
		f->error = "request larger than expected";
		return -1;
	}
	while (n) {
		ssize_t k = recv(fd, f->got + f->got_len, n, 0);

		if (k <= 0) {
			f->error = "client left before sending its request";
			return -1;
		}
		f->got_len += (size_t)k;
		n -= (size_t)k;
	}
	return 0;
}

/* Errors are the client's doing (it hung up on an endless reply): the test checks the client. */
static void fake_write(const struct fake *f, int fd, const uint8_t *p, size_t n)
{
	size_t step = f->chunk ? f->chunk : n;

	for (size_t off = 0; off < n; off += step) {
		size_t k = n - off < step ? n - off : step;

		if (send(fd, p + off, k, MSG_NOSIGNAL) != (ssize_t)k)
			return;
		if (f->chunk)
			usleep(2000);
	}
}

static void fake_talk(struct fake *f, int fd)
{
	size_t len;

	if (fake_read(f, fd, f->request_len))
		return;
	if (f->reply)
		fake_write(f, fd, f->reply, f->reply_len);
	if (!f->startup || fake_read(f, fd, 4))
		return;
	len = be32_at(f->got + f->got_len - 4);
	if (len < 8 || len > 128) {
		f->error = "StartupMessage length out of range";
		return;
	}
	if (!fake_read(f, fd, len - 4) && f->reply2)
		fake_write(f, fd, f->reply2, f->reply2_len);
}

static void *fake_serve(void *arg)
{
	struct timeval tv = { .tv_sec = 5 };
	struct pollfd pfd = { .fd = ((struct fake *)arg)->lfd, .events = POLLIN };
	struct fake *f = arg;
	uint8_t sink[4096];
	int fd, one = 1;

	if (poll(&pfd, 1, 5000) != 1) {
		f->error = "no connection within 5 s";
		return NULL;
	}
	fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		f->error = "accept failed";
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!f->hang_up)
		fake_talk(f, fd);
	/* wait for the client to hang up, so that its verdict comes from what was sent */
	while (!f->hang_up && !f->close_after && recv(fd, sink, sizeof(sink), 0) > 0)
		;
	close(fd);
	return NULL;
}

/* Listen on loopback (port 0) of family; -errno when the family is not there. */
static int fake_listen(struct fake *f, int family, int backlog)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&f->addr;
	struct sockaddr_in *in = (struct sockaddr_in *)&f->addr;

	memset(&f->addr, 0, sizeof(f->addr));
	if (family == AF_INET6) {
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		f->addrlen = sizeof(*in6);
	} else {
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		f->addrlen = sizeof(*in);
	}
	f->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0)
		return -errno;
	if (bind(f->lfd, (struct sockaddr *)&f->addr, f->addrlen) ||
	    (backlog >= 0 && listen(f->lfd, backlog))) {
		int err = -errno;

		close(f->lfd);
		return err;
	}
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&f->addr, &f->addrlen), 0);
	return 0;
}

static void fake_start(struct fake *f, int family)
{
	assert_int_equal(fake_listen(f, family, 4), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

/* db_probe() against f, then the server's own complaints. */
static void probe_fake(struct fake *f, enum db_kind kind, unsigned int timeout_ms,
		       struct db_probe_result *res)
{
	assert_int_equal(db_probe(kind, (struct sockaddr *)&f->addr, f->addrlen, timeout_ms, res),
			 0);
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	close(f->lfd);
	if (f->error)
		fail_msg("fake server: %s", f->error);
	/* the deadline is kept to the millisecond; allow for the clock's rounding and close() */
	if (res->elapsed_ms > timeout_ms + 50)
		fail_msg("took %" PRIu64 " ms, timeout %u ms", res->elapsed_ms, timeout_ms);
}

static void expect_probe(struct fake *f, enum db_kind kind, int ok, const char *detail)
{
	struct db_probe_result res;

	fake_start(f, AF_INET);
	probe_fake(f, kind, 3000, &res);
	if (res.ok != ok || strcmp(res.detail, detail))
		fail_msg("%s: got ok=%d \"%s\"\n  want ok=%d \"%s\"", db_kind_name(kind), res.ok,
			 res.detail, ok, detail);
}

static const uint8_t ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

static void test_probe_pg_ssl(void **state)
{
	struct fake f = { .request_len = 8, .reply = (const uint8_t *)"S", .reply_len = 1 };

	(void)state;
	expect_probe(&f, DB_POSTGRESQL, 1, "PostgreSQL: SSL supported");
	assert_int_equal(f.got_len, sizeof(ssl_request));
	assert_memory_equal(f.got, ssl_request, sizeof(ssl_request));
}

static void test_probe_pg_startup(void **state)
{
	static const char params[] = "user\0caelum_probe\0database\0postgres\0";
	struct bytes sasl = { .n = 0 }, err = { .n = 0 };
	struct fake f = {
		.request_len = 8, .reply = (const uint8_t *)"N", .reply_len = 1, .startup = true
	};

	(void)state;
	pg_sasl(&sasl, false, scram);
	f.reply2 = sasl.b;
	f.reply2_len = sasl.n;
	expect_probe(&f, DB_POSTGRESQL, 1, "PostgreSQL: authentication request (SCRAM-SHA-256)");
	/* SSLRequest, then StartupMessage 3.0 for caelum_probe, its list ended by a 0 */
	assert_int_equal(f.got_len, 8 + 8 + sizeof(params));
	assert_memory_equal(f.got, ssl_request, sizeof(ssl_request));
	assert_int_equal(be32_at(f.got + 8), 8 + sizeof(params));
	assert_int_equal(be32_at(f.got + 12), 0x00030000);
	assert_memory_equal(f.got + 16, params, sizeof(params));

	pg_error(&err, false, role_missing);
	f = (struct fake){ .request_len = 8,
			   .reply = (const uint8_t *)"N",
			   .reply_len = 1,
			   .startup = true,
			   .reply2 = err.b,
			   .reply2_len = err.n };
	expect_probe(&f, DB_POSTGRESQL, 1,
		     "PostgreSQL: FATAL: role \"caelum_probe\" does not exist");
}

static void test_probe_mysql(void **state)
{
	struct bytes m = { .n = 0 };
	struct fake f = { .request_len = 0 };

	(void)state;
	my_greeting(&m, "5.5.5-10.11.6-MariaDB-0+deb12u1");
	f.reply = m.b;
	f.reply_len = m.n;
	expect_probe(&f, DB_MYSQL, 1, "MySQL/MariaDB 10.11.6-MariaDB-0+deb12u1 (protocol 10)");
	assert_int_equal(f.got_len, 0);
	/* the same greeting a byte at a time */
	f = (struct fake){ .reply = m.b, .reply_len = m.n, .chunk = 1 };
	expect_probe(&f, DB_MYSQL, 1, "MySQL/MariaDB 10.11.6-MariaDB-0+deb12u1 (protocol 10)");
	m.n = 0;
	my_error(&m, 1130, NULL,
		 "Host '10.1.2.3' is not allowed to connect to this MariaDB server");
	f = (struct fake){ .reply = m.b, .reply_len = m.n, .close_after = true };
	expect_probe(&f, DB_MYSQL, 1,
		     "MySQL/MariaDB refused the connection: error 1130: Host '10.1.2.3' is not "
		     "allowed to connect to this MariaDB server");
}

static void test_probe_redis(void **state)
{
	struct fake f = { .request_len = 6, .reply = (const uint8_t *)"+PONG\r\n", .reply_len = 7 };

	(void)state;
	expect_probe(&f, DB_REDIS, 1, "Redis: +PONG");
	assert_int_equal(f.got_len, 6);
	assert_memory_equal(f.got, "PING\r\n", 6);
	f = (struct fake){ .request_len = 6,
			   .reply = (const uint8_t *)"-NOAUTH Authentication "
						     "required.\r\n",
			   .reply_len = 34 };
	expect_probe(&f, DB_REDIS, 1, "Redis: -NOAUTH Authentication required.");
}

static void test_probe_tcp(void **state)
{
	struct fake f = { .request_len = 0 };

	(void)state;
	expect_probe(&f, DB_TCP, 1, "tcp: connected");
}

/* An HTTP server answering each probe's request. */
static void test_probe_wrong_protocol(void **state)
{
	static const struct {
		enum db_kind kind;
		size_t request_len;
		const char *detail;
	} cases[] = {
		{ DB_POSTGRESQL, 8,
		  "not a PostgreSQL server: unexpected answer to SSLRequest "
		  "(expected 'S', 'N' or 'E') " HTTP_400_Q },
		{ DB_MYSQL, 0,
		  "not a MySQL server: first packet claims 5526600 bytes " HTTP_400_Q },
		{ DB_REDIS, 6, "not a Redis server: expected a '+' or '-' line " HTTP_400_Q },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = { .request_len = cases[i].request_len,
				  .reply = (const uint8_t *)HTTP_400,
				  .reply_len = strlen(HTTP_400) };

		expect_probe(&f, cases[i].kind, 0, cases[i].detail);
	}
}

/* A reply without end is refused at the cap, long before the deadline. */
static void test_probe_endless(void **state)
{
	uint8_t *g = malloc(GARBAGE_LEN);
	struct db_probe_result res;
	struct fake f = { .request_len = 6 };

	(void)state;
	assert_non_null(g);
	memset(g, 'A', GARBAGE_LEN);
	g[0] = '+';
	f.reply = g;
	f.reply_len = GARBAGE_LEN;
	fake_start(&f, AF_INET);
	probe_fake(&f, DB_REDIS, 5000, &res);
	assert_int_equal(res.ok, 0);
	assert_string_equal(res.detail, "no complete reply in the first 8192 bytes");
	assert_true(res.elapsed_ms < 2000);
	/* a MySQL header claiming 16 MiB */
	memcpy(g, "\xff\xff\xff\0\x0a", 5);
	f = (struct fake){ .reply = g, .reply_len = GARBAGE_LEN };
	fake_start(&f, AF_INET);
	probe_fake(&f, DB_MYSQL, 5000, &res);
	assert_int_equal(res.ok, 0);
	assert_string_equal(res.detail, "not a MySQL server: first packet claims 16777215 bytes "
					"(reply starts with \"\\xff\\xff\\xff\\x00\\nAAAAAAAAAAAAA"
					"AAAAAAAAAAAAA...\")");
	assert_true(res.elapsed_ms < 2000);
	free(g);
}

/* Accept, read the request, say nothing: the deadline holds, within 300 ms. */
static void test_probe_silent(void **state)
{
	static const struct {
		enum db_kind kind;
		size_t request_len;
		const char *detail;
	} cases[] = {
		{ DB_POSTGRESQL, 8, "timed out after 600 ms waiting for the server's reply" },
		{ DB_MYSQL, 0, "timed out after 600 ms waiting for the server's greeting" },
		{ DB_REDIS, 6, "timed out after 600 ms waiting for the server's reply" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = { .request_len = cases[i].request_len };
		struct db_probe_result res;
		uint64_t t0 = now_ms(), took;

		fake_start(&f, AF_INET);
		probe_fake(&f, cases[i].kind, 600, &res);
		took = now_ms() - t0;
		assert_int_equal(res.ok, 0);
		assert_string_equal(res.detail, cases[i].detail);
		assert_in_range(took, 300, 900);
		assert_in_range(res.elapsed_ms, 300, 900);
	}
}

/* 'N', then nothing for the StartupMessage: the timeout says how far it got. */
static void test_probe_pg_silent_after_n(void **state)
{
	struct fake f = {
		.request_len = 8, .reply = (const uint8_t *)"N", .reply_len = 1, .startup = true
	};
	struct db_probe_result res;

	(void)state;
	fake_start(&f, AF_INET);
	probe_fake(&f, DB_POSTGRESQL, 600, &res);
	assert_int_equal(res.ok, 0);
	assert_string_equal(res.detail, "timed out after 600 ms waiting for the server's reply: "
					"answered 'N' to SSLRequest, nothing to the startup "
					"message yet (1 byte)");
	assert_in_range(res.elapsed_ms, 300, 900);
	assert_int_equal(f.got_len, 8 + 8 + 37); /* the StartupMessage did go out */
}

static void test_probe_hang_up(void **state)
{
	struct fake f = { .hang_up = true };
	struct db_probe_result res;

	(void)state;
	/* MySQL sends nothing first, so the close is all it sees */
	expect_probe(&f, DB_MYSQL, 0, "server closed the connection without a greeting");
	/* Redis: the PING may meet the close (end of stream) or the reset it causes */
	f = (struct fake){ .hang_up = true };
	fake_start(&f, AF_INET);
	probe_fake(&f, DB_REDIS, 3000, &res);
	assert_int_equal(res.ok, 0);
	if (strcmp(res.detail, "server closed the connection without a reply") &&
	    !strstr(res.detail, ": Connection reset by peer") && !strstr(res.detail, "Broken pipe"))
		fail_msg("unexpected detail: %s", res.detail);
	/* part of an answer, then the close */
	f = (struct fake){ .request_len = 8,
			   .reply = (const uint8_t *)"N",
			   .reply_len = 1,
			   .startup = true,
			   .reply2 = (const uint8_t *)"R\0\0",
			   .reply2_len = 3,
			   .close_after = true };
	expect_probe(&f, DB_POSTGRESQL, 0,
		     "server closed the connection: reply too short (4 bytes)");
}

static void test_probe_refused(void **state)
{
	static const int families[] = { AF_INET, AF_INET6 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct fake f = { .request_len = 0 };
		struct db_probe_result res;
		char want[96];
		int err;

		/* bound but not listening: the port stays ours and refuses */
		err = fake_listen(&f, families[i], -1);
		if (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL)
			skip();
		assert_int_equal(err, 0);
		assert_int_equal(
			db_probe(DB_POSTGRESQL, (struct sockaddr *)&f.addr, f.addrlen, 2000, &res),
			0);
		close(f.lfd);
		snprintf(want, sizeof(want),
			 families[i] == AF_INET ? "connect 127.0.0.1:%u: Connection refused"
						: "connect [::1]:%u: Connection refused",
			 ntohs(((struct sockaddr_in *)&f.addr)->sin_port));
		assert_int_equal(res.ok, 0);
		assert_string_equal(res.detail, want);
		assert_true(res.elapsed_ms < 1000);
	}
}

static void test_probe_ipv6(void **state)
{
	struct fake f = { .request_len = 6, .reply = (const uint8_t *)"+PONG\r\n", .reply_len = 7 };
	struct db_probe_result res;
	int err;

	(void)state;
	err = fake_listen(&f, AF_INET6, 4);
	if (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL)
		skip();
	assert_int_equal(err, 0);
	assert_int_equal(pthread_create(&f.thread, NULL, fake_serve, &f), 0);
	probe_fake(&f, DB_REDIS, 3000, &res);
	assert_int_equal(res.ok, 1);
	assert_string_equal(res.detail, "Redis: +PONG");
	assert_memory_equal(f.got, "PING\r\n", 6);
}

/*
 * A SYN to a listener whose accept queue is full is dropped, so connect() hangs: the deadline
 * must cover the connect too.
 */
static void test_probe_connect_timeout(void **state)
{
	struct fake f = { .request_len = 0 };
	struct db_probe_result res;
	int fill[8], n = 0;
	bool stuck = false;

	(void)state;
	assert_int_equal(fake_listen(&f, AF_INET, 0), 0);
	while (!stuck && n < 8) {
		struct pollfd pfd = { .events = POLLOUT };

		fill[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(fill[n] >= 0);
		connect(fill[n], (struct sockaddr *)&f.addr, f.addrlen);
		pfd.fd = fill[n++];
		stuck = poll(&pfd, 1, 200) == 0;
	}
	assert_true(stuck);
	assert_int_equal(db_probe(DB_REDIS, (struct sockaddr *)&f.addr, f.addrlen, 500, &res), 0);
	assert_int_equal(res.ok, 0);
	assert_non_null(strstr(res.detail, "timed out after 500 ms connecting to 127.0.0.1:"));
	assert_in_range(res.elapsed_ms, 200, 800);
	while (n--)
		close(fill[n]);
	close(f.lfd);
}

static void test_probe_bad_args(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "/run/db.sock" };
	struct db_probe_result res;

	(void)state;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(db_probe(DB_REDIS, (struct sockaddr *)&in, sizeof(in), 100, NULL),
			 -EINVAL);
	assert_int_equal(db_probe(DB_REDIS, NULL, sizeof(in), 100, &res), -EINVAL);
	assert_string_equal(res.detail, "no address to probe");
	assert_int_equal(db_probe((enum db_kind)7, (struct sockaddr *)&in, sizeof(in), 100, &res),
			 -EINVAL);
	assert_string_equal(res.detail, "invalid database kind 7");
	assert_int_equal(db_probe(DB_REDIS, (struct sockaddr *)&in, sizeof(in), 0, &res), -EINVAL);
	assert_string_equal(res.detail, "timeout must be at least 1 ms");
	assert_int_equal(db_probe(DB_REDIS, (struct sockaddr *)&in, 8, 100, &res), -EINVAL);
	assert_string_equal(res.detail, "address length 8 is too short");
	assert_int_equal(db_probe(DB_REDIS, (struct sockaddr *)&un, sizeof(un), 100, &res),
			 -EAFNOSUPPORT);
	assert_string_equal(res.detail, "unsupported address family 1 (expected IPv4 or IPv6)");
	assert_int_equal(res.ok, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_pg_valid),
		cmocka_unit_test(test_pg_framing_hostile),
		cmocka_unit_test(test_pg_auth_hostile),
		cmocka_unit_test(test_pg_error_hostile),
		cmocka_unit_test(test_pg_mutations),
		cmocka_unit_test(test_mysql_valid),
		cmocka_unit_test(test_mysql_hostile),
		cmocka_unit_test(test_mysql_mutations),
		cmocka_unit_test(test_redis_valid),
		cmocka_unit_test(test_redis_hostile),
		cmocka_unit_test(test_redis_mutations),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_probe_pg_ssl),
		cmocka_unit_test(test_probe_pg_startup),
		cmocka_unit_test(test_probe_mysql),
		cmocka_unit_test(test_probe_redis),
		cmocka_unit_test(test_probe_tcp),
		cmocka_unit_test(test_probe_wrong_protocol),
		cmocka_unit_test(test_probe_endless),
		cmocka_unit_test(test_probe_silent),
		cmocka_unit_test(test_probe_pg_silent_after_n),
		cmocka_unit_test(test_probe_hang_up),
		cmocka_unit_test(test_probe_refused),
		cmocka_unit_test(test_probe_ipv6),
		cmocka_unit_test(test_probe_connect_timeout),
		cmocka_unit_test(test_probe_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
