// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The parts of a service spec beyond ports: "databases", "credentials" and "health" (exact
 * refusals, defaults, round trip, deep copy), database objects (addresses, directory
 * loading, resolution, ids), credential file checks against real files, and SHA-256
 * fingerprints against published test vectors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "credentials.h"
#include "dbprobe.h"
#include "dbspec.h"
#include "fingerprint.h"
#include "spec.h"
#include "testutil.h"

#define SVC	   "svc.json"
#define DBL	   "db.json"
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* FIPS 180-2 test vectors. */
#define SHA_ABC	      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_EMPTY     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_448	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static int parse_svc(const char *text, struct service_spec *s, struct verr *e)
{
	struct json_object *obj;
	int err;

	err = jv_parse_string(SVC, text, strlen(text), &obj, e);
	if (err)
		return err;
	err = spec_from_json(obj, SVC, s, e);
	json_object_put(obj);
	return err;
}

static int parse_db(const char *text, struct db_spec *d, struct verr *e)
{
	struct json_object *obj;
	int err;

	err = jv_parse_string(DBL, text, strlen(text), &obj, e);
	if (err)
		return err;
	err = dbspec_from_json(obj, DBL, d, e);
	json_object_put(obj);
	return err;
}

/* Canonical text of a new reference, which is dropped. */
static void assert_json_put(struct json_object *obj, const char *want)
{
	assert_non_null(obj);
	assert_string_equal(json_object_to_json_string_ext(obj, JSON_FLAGS), want);
	json_object_put(obj);
}

struct bad_case {
	const char *json;
	const char *msg;
};

/* Each case refused with exactly msg; nothing leaks (LeakSanitizer under SAN=1). */
static void check_bad_specs(const struct bad_case *cases, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		struct service_spec s;
		struct verr e = {};
		char label[768];
		int err = parse_svc(cases[i].json, &s, &e);

		snprintf(label, sizeof(label), "%s case %zu %s", what, i, cases[i].json);
		if (err != -EINVAL)
			fail_msg("%s: returned %d, expected -EINVAL", label, err);
		assert_verr_one(&e, cases[i].msg, label);
		assert_null(s.dbs);
		assert_null(s.creds);
		assert_null(s.health.argv);
		verr_free(&e);
	}
}

#define CHECK_BAD(cases, what) check_bad_specs(cases, sizeof(cases) / sizeof(cases[0]), what)

/* ---- "databases" ---- */

#define DBS(x) "{\"name\": \"svc\", \"databases\": " x "}"

static const struct bad_case bad_dbs[] = {
	{ DBS("{\"name\": \"a\"}"), SVC ": databases: expected array, got object {...}" },
	{ DBS("\"analytics-db\""), SVC ": databases: expected array, got string \"analytics-db\"" },
	{ DBS("[5]"), SVC ": databases[0]: expected object, got integer 5" },
	{ DBS("[\"analytics-db\"]"),
	  SVC ": databases[0]: expected object, got string \"analytics-db\"" },
	{ DBS("[{}]"), SVC ": databases[0].name: missing required key" },
	{ DBS("[{\"max_connections\": 5}]"), SVC ": databases[0].name: missing required key" },
	{ DBS("[{\"name\": 5}]"), SVC ": databases[0].name: expected string, got integer 5" },
	{ DBS("[{\"name\": \"Analytics\"}]"),
	  SVC ": databases[0].name: invalid database name \"Analytics\"" },
	{ DBS("[{\"name\": \"-db\"}]"), SVC ": databases[0].name: invalid database name \"-db\"" },
	{ DBS("[{\"name\": \"\"}]"), SVC ": databases[0].name: invalid database name \"\"" },
	{ DBS("[{\"name\": \"a\", \"max\": 5}]"), SVC ": databases[0].max: unknown key" },
	{ DBS("[{\"name\": \"a\"}, {\"name\": \"b\", \"kind\": \"redis\"}]"),
	  SVC ": databases[1].kind: unknown key" },
	{ DBS("[{\"name\": \"a\", \"max_connections\": 0}]"),
	  SVC ": databases[0].max_connections: 0 out of range 1-1000000" },
	{ DBS("[{\"name\": \"a\", \"max_connections\": 1000001}]"),
	  SVC ": databases[0].max_connections: 1000001 out of range 1-1000000" },
	{ DBS("[{\"name\": \"a\", \"max_connections\": -1}]"),
	  SVC ": databases[0].max_connections: -1 out of range 1-1000000" },
	{ DBS("[{\"name\": \"a\", \"max_connections\": \"5\"}]"),
	  SVC ": databases[0].max_connections: expected integer, got string \"5\"" },
	{ DBS("[{\"name\": \"a\", \"max_connections\": 2.5}]"),
	  SVC ": databases[0].max_connections: expected integer, got number 2.5" },
	{ DBS("[{\"name\": \"a\", \"max_connections\": null}]"),
	  SVC ": databases[0].max_connections: expected integer, got null" },
	{ DBS("[{\"name\": \"analytics-db\"}, {\"name\": \"analytics-db\", \"max_connections\": "
	      "3}]"),
	  SVC ": databases[1].name: database 'analytics-db' is already listed in databases[0]" },
	{ DBS("[{\"name\": \"a\"}, {\"name\": \"b\"}, {\"name\": \"a\"}]"),
	  SVC ": databases[2].name: database 'a' is already listed in databases[0]" },
};

static void test_databases_bad(void **state)
{
	(void)state;
	CHECK_BAD(bad_dbs, "databases");
}

/* A duplicate names the JSON index of the first listing, even after refused items. */
static void test_databases_duplicate_index(void **state)
{
	static const char *const want[] = {
		SVC ": databases[0].name: invalid database name \"Bad\"",
		SVC ": databases[1].max_connections: 0 out of range 1-1000000",
		SVC ": databases[3].name: database 'b' is already listed in databases[2]",
		SVC ": databases[4].name: database 'a' is already listed in databases[1]",
		NULL,
	};
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_svc(DBS("[{\"name\": \"Bad\"}, {\"name\": \"a\", "
				       "\"max_connections\": 0}, {\"name\": \"b\"}, "
				       "{\"name\": \"b\"}, {\"name\": \"a\"}]"),
				   &s, &e),
			 -EINVAL);
	assert_verr_is(&e, want, "duplicate index");
	assert_null(s.dbs);
	assert_int_equal(s.n_dbs, 0);
	verr_free(&e);
}

static void test_databases_too_many(void **state)
{
	char json[8192];
	size_t len = 0;
	struct service_spec s;
	struct verr e = {};

	(void)state;
	len += snprintf(json + len, sizeof(json) - len, "{\"name\": \"svc\", \"databases\": [");
	for (int i = 0; i <= SPEC_MAX_DBS; i++)
		len += snprintf(json + len, sizeof(json) - len, "%s{\"name\": \"db%d\"}",
				i ? ", " : "", i);
	snprintf(json + len, sizeof(json) - len, "]}");
	assert_int_equal(parse_svc(json, &s, &e), -EINVAL);
	assert_verr_one(&e, SVC ": databases: 65 databases, at most 64", "65 databases");
	verr_free(&e);

	/* exactly the limit is fine */
	len = (size_t)(strrchr(json, '{') - json);
	snprintf(json + len - 2, sizeof(json) - len + 2, "]}");
	assert_int_equal(parse_svc(json, &s, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.n_dbs, SPEC_MAX_DBS);
	assert_string_equal(s.dbs[63].name, "db63");
	spec_free(&s);
}

static void test_databases_good(void **state)
{
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_svc(DBS("[{\"name\": \"analytics-db\", \"max_connections\": 10}, "
				       "{\"name\": \"cache\"}, {\"name\": \"big\", "
				       "\"max_connections\": 1000000}, {\"max_connections\": 1, "
				       "\"name\": \"one\"}]"),
				   &s, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.n_dbs, 4);
	assert_string_equal(s.dbs[0].name, "analytics-db");
	assert_int_equal(s.dbs[0].max_connections, 10);
	assert_string_equal(s.dbs[1].name, "cache");
	assert_int_equal(s.dbs[1].max_connections, 0); /* no cap */
	assert_string_equal(s.dbs[2].name, "big");
	assert_int_equal(s.dbs[2].max_connections, 1000000);
	assert_string_equal(s.dbs[3].name, "one");
	assert_int_equal(s.dbs[3].max_connections, 1);
	assert_int_equal(s.n_creds, 0);
	assert_int_equal(s.health.kind, HEALTH_NONE);
	assert_json_put(spec_to_json(&s),
			"{\"name\":\"svc\",\"ports\":[],\"databases\":[{\"name\":\"analytics-db\","
			"\"max_connections\":10},{\"name\":\"cache\"},{\"name\":\"big\","
			"\"max_connections\":1000000},{\"name\":\"one\",\"max_connections\":1}]}");
	spec_free(&s);
	assert_null(s.dbs);
	assert_int_equal(s.n_dbs, 0);

	/* an empty list is no databases, and is not printed */
	assert_int_equal(parse_svc(DBS("[]"), &s, &e), 0);
	assert_int_equal(s.n_dbs, 0);
	assert_json_put(spec_to_json(&s), "{\"name\":\"svc\",\"ports\":[]}");
	spec_free(&s);
	assert_int_equal(e.n, 0);
}

/* ---- "credentials" ---- */

#define CREDS(x) "{\"name\": \"svc\", \"credentials\": " x "}"
#define BAD_MODE(m)                                                                                \
	{                                                                                          \
		CREDS("[{\"file\": \"/etc/x.key\", \"mode\": \"" m "\"}]"),                        \
			SVC ": credentials[0].mode: invalid mode \"" m                             \
			    "\" (expected octal like \"0600\")"                                    \
	}
#define BAD_ENV(n)                                                                                 \
	{                                                                                          \
		CREDS("[{\"env\": \"" n "\"}]"),                                                   \
			SVC ": credentials[0].env: invalid environment variable name \"" n "\""    \
	}

static const struct bad_case bad_creds[] = {
	{ CREDS("{\"env\": \"TOKEN\"}"), SVC ": credentials: expected array, got object {...}" },
	{ CREDS("\"TOKEN\""), SVC ": credentials: expected array, got string \"TOKEN\"" },
	{ CREDS("[5]"), SVC ": credentials[0]: expected object, got integer 5" },
	{ CREDS("[{}]"),
	  SVC ": credentials[0]: expected {\"env\": NAME} or {\"file\": PATH, ...}, got {}" },
	{ CREDS("[{\"env\": \"A\"}, {\"path\": \"/etc/x.key\"}]"),
	  SVC ": credentials[1]: expected {\"env\": NAME} or {\"file\": PATH, ...}, got "
	      "{\"path\":\"/etc/x.key\"}" },
	BAD_ENV("1X"),
	BAD_ENV("A-B"),
	BAD_ENV(""),
	BAD_ENV("A B"),
	BAD_ENV("A=B"),
	{ CREDS("[{\"env\": 5}]"), SVC ": credentials[0].env: expected string, got integer 5" },
	{ CREDS("[{\"env\": \"TOKEN\", \"mode\": \"0600\"}]"),
	  SVC ": credentials[0].mode: unknown key" },
	{ CREDS("[{\"env\": \"TOKEN\", \"file\": \"/etc/x.key\"}]"),
	  SVC ": credentials[0].file: unknown key" },
	{ CREDS("[{\"file\": \"/etc/x.key\", \"group\": \"root\"}]"),
	  SVC ": credentials[0].group: unknown key" },
	{ CREDS("[{\"file\": \"etc/x.key\"}]"),
	  SVC ": credentials[0].file: \"etc/x.key\" is not an absolute path" },
	{ CREDS("[{\"file\": \"\"}]"), SVC ": credentials[0].file: \"\" is not an absolute path" },
	{ CREDS("[{\"file\": 5}]"), SVC ": credentials[0].file: expected string, got integer 5" },
	BAD_MODE("0800"),
	BAD_MODE("600x"),
	BAD_MODE("12345"),
	BAD_MODE("07777"), /* at most four digits */
	BAD_MODE(""),
	BAD_MODE("-600"),
	BAD_MODE(" 600"),
	BAD_MODE("0x1ff"),
	{ CREDS("[{\"file\": \"/etc/x.key\", \"mode\": 384}]"),
	  SVC ": credentials[0].mode: expected string, got integer 384" },
	{ CREDS("[{\"file\": \"/etc/x.key\", \"owner\": \"no-such-user-xyz\"}]"),
	  SVC ": credentials[0].owner: unknown user \"no-such-user-xyz\"" },
	{ CREDS("[{\"file\": \"/etc/x.key\", \"owner\": 0}]"),
	  SVC ": credentials[0].owner: expected string, got integer 0" },
};

static void test_credentials_bad(void **state)
{
	(void)state;
	CHECK_BAD(bad_creds, "credentials");
}

static void test_env_name_lengths(void **state)
{
	char name[CRED_ENV_MAX + 2], json[512], want[512];
	struct service_spec s;
	struct verr e = {};

	(void)state;
	memset(name, 'A', CRED_ENV_MAX + 1);
	name[CRED_ENV_MAX + 1] = '\0';
	snprintf(json, sizeof(json), CREDS("[{\"env\": \"%s\"}]"), name);
	assert_int_equal(parse_svc(json, &s, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 SVC ": credentials[0].env: invalid environment variable name \"%s\"", name);
	assert_verr_one(&e, want, "128 chars");
	verr_free(&e);

	name[CRED_ENV_MAX] = '\0';
	name[0] = '_';
	name[1] = 'z';
	name[2] = '9';
	snprintf(json, sizeof(json), CREDS("[{\"env\": \"%s\"}]"), name);
	assert_int_equal(parse_svc(json, &s, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.n_creds, 1);
	assert_string_equal(s.creds[0].env, name);
	spec_free(&s);
}

static void test_credential_modes(void **state)
{
	static const struct {
		const char *text;
		int mode;
	} cases[] = {
		{ "0600", 0600 },  { "600", 0600 },   { "0400", 0400 }, { "0", 0 },
		{ "7777", 07777 }, { "4755", 04755 }, { "0640", 0640 }, { "0000", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct service_spec s;
		struct verr e = {};
		char json[256];

		snprintf(json, sizeof(json), CREDS("[{\"file\": \"/k\", \"mode\": \"%s\"}]"),
			 cases[i].text);
		if (parse_svc(json, &s, &e))
			fail_msg("mode \"%s\" refused: %s", cases[i].text, e.n ? e.msgs[0] : "");
		assert_int_equal(s.n_creds, 1);
		if (s.creds[0].mode != cases[i].mode)
			fail_msg("mode \"%s\" parsed as %o, expected %o", cases[i].text,
				 s.creds[0].mode, cases[i].mode);
		spec_free(&s);
	}
}

static void test_cred_mode_fmt(void **state)
{
	static const struct {
		int mode;
		const char *text;
	} cases[] = {
		{ 0600, "0600" },   { 0, "0000" },	 { 07777, "7777" },
		{ 04755, "4755" },  { 0100644, "0644" }, /* S_IFREG bits are not shown */
		{ 040700, "0700" }, { 01, "0001" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[8];

		cred_mode_fmt(cases[i].mode, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
	}
}

static void test_credentials_good(void **state)
{
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(
		parse_svc(CREDS("[{\"env\": \"API_TOKEN\"}, {\"file\": \"/etc/caelum/x.key\", "
				"\"mode\": \"0600\", \"owner\": \"root\"}, "
				"{\"file\": \"/run/y\"}, {\"env\": \"_x1\"}]"),
			  &s, &e),
		0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.n_creds, 4);
	assert_int_equal(s.creds[0].kind, CRED_ENV);
	assert_string_equal(s.creds[0].env, "API_TOKEN");
	assert_string_equal(s.creds[0].file, "");
	assert_int_equal(s.creds[1].kind, CRED_FILE);
	assert_string_equal(s.creds[1].file, "/etc/caelum/x.key");
	assert_string_equal(s.creds[1].env, "");
	assert_int_equal(s.creds[1].mode, 0600);
	assert_int_equal(s.creds[1].owner_uid, 0);
	assert_string_equal(s.creds[1].owner, "root");
	assert_int_equal(s.creds[2].kind, CRED_FILE);
	assert_string_equal(s.creds[2].file, "/run/y");
	assert_int_equal(s.creds[2].mode, -1);	    /* any */
	assert_int_equal(s.creds[2].owner_uid, -1); /* any */
	assert_string_equal(s.creds[2].owner, "");
	assert_int_equal(s.creds[3].kind, CRED_ENV);
	assert_string_equal(s.creds[3].env, "_x1");
	assert_json_put(spec_to_json(&s),
			"{\"name\":\"svc\",\"ports\":[],\"credentials\":[{\"env\":\"API_TOKEN\"},"
			"{\"file\":\"/etc/caelum/x.key\",\"mode\":\"0600\",\"owner\":\"root\"},"
			"{\"file\":\"/run/y\"},{\"env\":\"_x1\"}]}");
	spec_free(&s);
	assert_null(s.creds);
	assert_int_equal(s.n_creds, 0);
}

/* ---- "health" ---- */

#define HEALTH(x) "{\"name\": \"svc\", \"health\": " x "}"
#define TCP	  "\"tcp\": \"127.0.0.1:8100\""

static const struct bad_case bad_health[] = {
	{ HEALTH("5"), SVC ": health: expected object, got integer 5" },
	{ HEALTH("[\"tcp\"]"), SVC ": health: expected object, got array [...]" },
	{ HEALTH("{}"), SVC ": health: exactly one of tcp, http or exec is required, got none" },
	{ HEALTH("{\"interval_s\": 5}"),
	  SVC ": health: exactly one of tcp, http or exec is required, got none" },
	{ HEALTH("{" TCP ", \"http\": \"http://127.0.0.1:8100/\"}"),
	  SVC ": health: exactly one of tcp, http or exec is required, got tcp and http" },
	{ HEALTH("{\"http\": \"http://x/\", \"exec\": [\"/bin/true\"]}"),
	  SVC ": health: exactly one of tcp, http or exec is required, got http and exec" },
	{ HEALTH("{" TCP ", \"retries\": 3}"), SVC ": health.retries: unknown key" },
	{ HEALTH("{\"tcp\": \"localhost\"}"),
	  SVC ": health.tcp: \"localhost\": expected host:port" },
	{ HEALTH("{\"tcp\": 8100}"), SVC ": health.tcp: expected string, got integer 8100" },
	{ HEALTH("{\"http\": \"ftp://x\"}"),
	  SVC ": health.http: \"ftp://x\": expected an http:// or https:// URL" },
	{ HEALTH("{\"http\": \"127.0.0.1:8100/health\"}"),
	  SVC ": health.http: \"127.0.0.1:8100/health\": expected an http:// or https:// URL" },
	{ HEALTH("{\"http\": \"HTTP://x/\"}"),
	  SVC ": health.http: \"HTTP://x/\": expected an http:// or https:// URL" },
	{ HEALTH("{\"exec\": \"/bin/true\"}"),
	  SVC ": health.exec: expected array, got string \"/bin/true\"" },
	{ HEALTH("{\"exec\": []}"), SVC ": health.exec: 0 arguments, expected 1-64" },
	{ HEALTH("{\"exec\": [\"bin/check\"]}"),
	  SVC ": health.exec[0]: \"bin/check\" is not an absolute path" },
	{ HEALTH("{\"exec\": [\"\"]}"), SVC ": health.exec[0]: \"\" is not an absolute path" },
	{ HEALTH("{\"exec\": [\"/bin/check\", 5]}"),
	  SVC ": health.exec[1]: expected string, got integer 5" },
	/* a hole in argv: the strings after it are still freed */
	{ HEALTH("{\"exec\": [\"/bin/check\", null, \"--quick\"]}"),
	  SVC ": health.exec[1]: expected string, got null" },
	{ HEALTH("{\"exec\": [5, \"--quick\"]}"),
	  SVC ": health.exec[0]: expected string, got integer 5" },
	/* who an exec check runs as */
	{ HEALTH("{\"exec\": [\"/bin/check\"], \"user\": \"Root\"}"),
	  SVC ": health.user: invalid user \"Root\" (expected a login name or a uid below "
	      "4294967295)" },
	{ HEALTH("{\"exec\": [\"/bin/check\"], \"user\": \"../x\"}"),
	  SVC ": health.user: invalid user \"../x\" (expected a login name or a uid below "
	      "4294967295)" },
	{ HEALTH("{\"exec\": [\"/bin/check\"], \"user\": \"4294967295\"}"),
	  SVC ": health.user: invalid user \"4294967295\" (expected a login name or a uid below "
	      "4294967295)" },
	{ HEALTH("{\"exec\": [\"/bin/check\"], \"user\": \"a23456789012345678901234567890123\"}"),
	  SVC ": health.user: invalid user \"a23456789012345678901234567890123\" (expected a login "
	      "name or a uid below 4294967295)" },
	{ HEALTH("{\"exec\": [\"/bin/check\"], \"user\": 0}"),
	  SVC ": health.user: expected string, got integer 0" },
	{ HEALTH("{" TCP ", \"user\": \"app\"}"),
	  SVC ": health.user: \"app\": only an exec check runs as a user, not a tcp check" },
	{ HEALTH("{" TCP ", \"interval_s\": 0}"),
	  SVC ": health.interval_s: 0 out of range 1-3600" },
	{ HEALTH("{" TCP ", \"interval_s\": 3601}"),
	  SVC ": health.interval_s: 3601 out of range 1-3600" },
	{ HEALTH("{" TCP ", \"interval_s\": \"10\"}"),
	  SVC ": health.interval_s: expected integer, got string \"10\"" },
	{ HEALTH("{" TCP ", \"timeout_s\": 0}"), SVC ": health.timeout_s: 0 out of range 1-300" },
	{ HEALTH("{" TCP ", \"timeout_s\": 301, \"interval_s\": 600}"),
	  SVC ": health.timeout_s: 301 out of range 1-300" },
	{ HEALTH("{" TCP ", \"failures_before_critical\": 0}"),
	  SVC ": health.failures_before_critical: 0 out of range 1-100" },
	{ HEALTH("{" TCP ", \"failures_before_critical\": 101}"),
	  SVC ": health.failures_before_critical: 101 out of range 1-100" },
	{ HEALTH("{" TCP ", \"interval_s\": 5, \"timeout_s\": 6}"),
	  SVC ": health.timeout_s: 6 is longer than interval_s 5" },
	/* against the default interval of 10 */
	{ HEALTH("{" TCP ", \"timeout_s\": 11}"),
	  SVC ": health.timeout_s: 11 is longer than interval_s 10" },
	/* against the default timeout of 2 */
	{ HEALTH("{" TCP ", \"interval_s\": 1}"),
	  SVC ": health.timeout_s: 2 is longer than interval_s 1" },
};

static void test_health_bad(void **state)
{
	(void)state;
	CHECK_BAD(bad_health, "health");
}

static void test_health_too_many_args(void **state)
{
	char json[2048];
	size_t len = 0;
	struct service_spec s;
	struct verr e = {};

	(void)state;
	len += snprintf(json + len, sizeof(json) - len,
			"{\"name\": \"svc\", \"health\": {\"exec\": [\"/bin/check\"");
	for (int i = 1; i <= SPEC_MAX_ARGV; i++)
		len += snprintf(json + len, sizeof(json) - len, ", \"a%d\"", i);
	snprintf(json + len, sizeof(json) - len, "]}}");
	assert_int_equal(parse_svc(json, &s, &e), -EINVAL);
	assert_verr_one(&e, SVC ": health.exec: 65 arguments, expected 1-64", "65 args");
	verr_free(&e);

	/* 64 is the limit, and argv stays NULL-terminated */
	len = (size_t)(strrchr(json, ',') - json);
	snprintf(json + len, sizeof(json) - len, "]}}");
	assert_int_equal(parse_svc(json, &s, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(s.health.argv[0], "/bin/check");
	assert_string_equal(s.health.argv[63], "a63");
	assert_null(s.health.argv[64]);
	spec_free(&s);
}

/* A target is kept whole or refused: never cut to fit (it used to be cut at 511 bytes). */
static void test_health_target_length(void **state)
{
	char json[1024], url[600];
	struct service_spec s;
	struct verr e = {};

	(void)state;
	for (size_t n = SPEC_HEALTH_TARGET_MAX; n <= SPEC_HEALTH_TARGET_MAX + 1; n++) {
		snprintf(url, sizeof(url), "http://x/%0*d", (int)(n - strlen("http://x/")), 0);
		snprintf(json, sizeof(json), "{\"name\": \"svc\", \"health\": {\"http\": \"%s\"}}",
			 url);
		if (n == SPEC_HEALTH_TARGET_MAX) {
			assert_int_equal(parse_svc(json, &s, &e), 0);
			assert_string_equal(s.health.target, url);
			spec_free(&s);
		} else {
			assert_int_equal(parse_svc(json, &s, &e), -EINVAL);
			assert_verr_one(&e, SVC ": health.http: 512 bytes long, at most 511",
					"512");
			verr_free(&e);
		}
	}
}

static void test_health_defaults(void **state)
{
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_svc(HEALTH("{" TCP "}"), &s, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.health.kind, HEALTH_TCP);
	assert_string_equal(s.health.target, "127.0.0.1:8100");
	assert_int_equal(s.health.interval_s, 10);
	assert_int_equal(s.health.timeout_s, 2);
	assert_int_equal(s.health.failures_before_critical, 3);
	assert_null(s.health.argv);
	assert_json_put(spec_to_json(&s),
			"{\"name\":\"svc\",\"ports\":[],\"health\":{\"tcp\":\"127.0.0.1:8100\","
			"\"interval_s\":10,\"timeout_s\":2,\"failures_before_critical\":3}}");
	spec_free(&s);

	/* explicit values; a timeout equal to the interval is allowed */
	assert_int_equal(parse_svc(HEALTH("{\"http\": \"https://127.0.0.1:8443/healthz\", "
					  "\"interval_s\": 300, \"timeout_s\": 300, "
					  "\"failures_before_critical\": 100}"),
				   &s, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.health.kind, HEALTH_HTTP);
	assert_string_equal(s.health.target, "https://127.0.0.1:8443/healthz");
	assert_int_equal(s.health.interval_s, 300);
	assert_int_equal(s.health.timeout_s, 300);
	assert_int_equal(s.health.failures_before_critical, 100);
	spec_free(&s);

	assert_int_equal(parse_svc(HEALTH("{\"http\": \"http://x/\", \"interval_s\": 1, "
					  "\"timeout_s\": 1, \"failures_before_critical\": 1}"),
				   &s, &e),
			 0);
	assert_int_equal(s.health.kind, HEALTH_HTTP);
	assert_int_equal(s.health.interval_s, 1);
	assert_int_equal(s.health.timeout_s, 1);
	assert_int_equal(s.health.failures_before_critical, 1);
	spec_free(&s);

	/* no "health": none, and nothing printed */
	assert_int_equal(parse_svc("{\"name\": \"svc\"}", &s, &e), 0);
	assert_int_equal(s.health.kind, HEALTH_NONE);
	assert_json_put(spec_to_json(&s), "{\"name\":\"svc\",\"ports\":[]}");
	spec_free(&s);
	assert_int_equal(e.n, 0);
}

static void test_health_exec(void **state)
{
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_svc(HEALTH("{\"exec\": [\"/usr/bin/check\", \"--quick\", \"\"], "
					  "\"interval_s\": 30}"),
				   &s, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(s.health.kind, HEALTH_EXEC);
	assert_null(s.health.target);
	assert_string_equal(s.health.argv[0], "/usr/bin/check");
	assert_string_equal(s.health.argv[1], "--quick");
	assert_string_equal(s.health.argv[2], "");
	assert_null(s.health.argv[3]);
	assert_int_equal(s.health.interval_s, 30);
	assert_int_equal(s.health.timeout_s, 2);
	assert_json_put(spec_to_json(&s),
			"{\"name\":\"svc\",\"ports\":[],\"health\":{\"exec\":[\"/usr/bin/check\","
			"\"--quick\",\"\"],\"interval_s\":30,\"timeout_s\":2,"
			"\"failures_before_critical\":3}}");
	spec_free(&s);
	assert_null(s.health.argv);
	assert_null(s.health.target);
}

/* ---- everything together: round trip and deep copy ---- */

#define FULL_JSON                                                                                  \
	"{\"name\":\"svc\",\"ports\":[\"8100/tcp\"],\"databases\":[{\"name\":\"analytics-db\","    \
	"\"max_connections\":10},{\"name\":\"cache\"}],\"credentials\":[{\"env\":\"API_TOKEN\"},"  \
	"{\"file\":\"/etc/caelum/x.key\",\"mode\":\"0600\",\"owner\":\"root\"}],"                  \
	"\"health\":{\"exec\":[\"/usr/bin/"                                                        \
	"check\",\"--quick\"],\"user\":\"app\",\"interval_s\":30,"                                 \
	"\"timeout_s\":5,\"failures_before_critical\":2}}"

static void assert_full(const struct service_spec *s)
{
	assert_string_equal(s->name, "svc");
	assert_string_equal(s->health.user, "app");
	assert_int_equal(s->n_ports, 1);
	assert_int_equal(s->n_dbs, 2);
	assert_string_equal(s->dbs[0].name, "analytics-db");
	assert_int_equal(s->dbs[0].max_connections, 10);
	assert_string_equal(s->dbs[1].name, "cache");
	assert_int_equal(s->dbs[1].max_connections, 0);
	assert_int_equal(s->n_creds, 2);
	assert_int_equal(s->creds[0].kind, CRED_ENV);
	assert_string_equal(s->creds[0].env, "API_TOKEN");
	assert_int_equal(s->creds[1].kind, CRED_FILE);
	assert_string_equal(s->creds[1].file, "/etc/caelum/x.key");
	assert_int_equal(s->creds[1].mode, 0600);
	assert_int_equal(s->creds[1].owner_uid, 0);
	assert_int_equal(s->health.kind, HEALTH_EXEC);
	assert_string_equal(s->health.argv[0], "/usr/bin/check");
	assert_string_equal(s->health.argv[1], "--quick");
	assert_null(s->health.argv[2]);
	assert_int_equal(s->health.interval_s, 30);
	assert_int_equal(s->health.timeout_s, 5);
	assert_int_equal(s->health.failures_before_critical, 2);
	assert_json_put(spec_to_json(s), FULL_JSON);
}

static void test_round_trip(void **state)
{
	struct service_spec s, back;
	struct json_object *obj;
	struct verr e = {};

	(void)state;
	/* key order differs from the canonical one */
	assert_int_equal(
		parse_svc("{\"health\": {\"timeout_s\": 5, \"failures_before_critical\": 2, "
			  "\"exec\": [\"/usr/bin/check\", \"--quick\"], \"interval_s\": 30, "
			  "\"user\": \"app\"}, "
			  "\"credentials\": [{\"env\": \"API_TOKEN\"}, {\"owner\": \"root\", "
			  "\"mode\": \"600\", \"file\": \"/etc/caelum/x.key\"}], "
			  "\"databases\": [{\"max_connections\": 10, \"name\": "
			  "\"analytics-db\"}, {\"name\": \"cache\"}], \"ports\": [8100], "
			  "\"name\": \"svc\"}",
			  &s, &e),
		0);
	assert_int_equal(e.n, 0);
	assert_full(&s);

	obj = spec_to_json(&s);
	assert_int_equal(spec_from_json(obj, "round-trip", &back, &e), 0);
	json_object_put(obj);
	assert_int_equal(e.n, 0);
	assert_full(&back);
	spec_free(&back);
	spec_free(&s);
}

/* The copy owns everything: freeing the original leaves it intact (ASan under SAN=1). */
static void test_copy_is_deep(void **state)
{
	struct service_spec *s = malloc(sizeof(*s)), copy;
	struct json_object *obj;
	struct verr e = {};

	(void)state;
	assert_non_null(s);
	assert_int_equal(jv_parse_string(SVC, FULL_JSON, strlen(FULL_JSON), &obj, &e), 0);
	assert_int_equal(spec_from_json(obj, SVC, s, &e), 0);
	json_object_put(obj);
	s->source = strdup("/etc/caelum/services.d/svc.json");
	assert_int_equal(spec_copy(&copy, s), 0);
	assert_ptr_not_equal(copy.dbs, s->dbs);
	assert_ptr_not_equal(copy.creds, s->creds);
	assert_ptr_not_equal(copy.health.argv[0], s->health.argv[0]);
	assert_ptr_not_equal(copy.health.argv[1], s->health.argv[1]);
	assert_ptr_not_equal(copy.source, s->source);

	/* scribble over the original's memory before freeing it */
	memset(s->dbs, 'x', s->n_dbs * sizeof(*s->dbs));
	memset(s->creds, 'x', s->n_creds * sizeof(*s->creds));
	memset(s->health.argv[0], 'x', strlen(s->health.argv[0]));
	spec_free(s);
	free(s);

	assert_full(&copy);
	assert_string_equal(copy.source, "/etc/caelum/services.d/svc.json");
	spec_free(&copy);

	/* a spec without extensions copies to one without them ("ports" present: spec_copy
	 * memcpy()s from a NULL ports array otherwise, which UBSan refuses) */
	assert_int_equal(parse_svc("{\"name\": \"bare\", \"ports\": []}", &copy, &e), 0);
	{
		struct service_spec c2;

		assert_int_equal(spec_copy(&c2, &copy), 0);
		assert_null(c2.dbs);
		assert_null(c2.creds);
		assert_null(c2.health.argv);
		assert_int_equal(c2.health.kind, HEALTH_NONE);
		spec_free(&c2);
	}
	spec_free(&copy);
}

/* ---- database objects ---- */

#define DB(addr) "{\"name\": \"analytics-db\", \"kind\": \"postgresql\", \"address\": \"" addr "\"}"
#define BAD_ADDR(addr, why)                                                                        \
	{                                                                                          \
		DB(addr), DBL ": address: \"" addr "\": " why                                      \
	}
#define NO_PORT "expected host:port ([addr]:port for IPv6)"
#define NO_V6	"expected [IPv6]:port"
#define NO_HOST "missing or too long host"

static const struct bad_case bad_db_objects[] = {
	{ "[1]", DBL ": expected object, got array [...]" },
	{ "{\"name\": \"analytics-db\", \"kind\": \"postgresql\"}",
	  DBL ": address: missing required key" },
	{ "{\"name\": \"analytics-db\", \"address\": \"db.local:5432\"}",
	  DBL ": kind: missing required key" },
	{ "{\"kind\": \"postgresql\", \"address\": \"db.local:5432\"}",
	  DBL ": name: missing required key" },
	{ "{\"name\": \"Analytics\", \"kind\": \"redis\", \"address\": \"db.local:6379\"}",
	  DBL ": name: invalid database name \"Analytics\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": 5, \"kind\": \"redis\", \"address\": \"db.local:6379\"}",
	  DBL ": name: expected string, got integer 5" },
	{ "{\"name\": \"a\", \"kind\": \"oracle\", \"address\": \"db.local:1521\"}",
	  DBL ": kind: unknown kind \"oracle\" (expected postgresql, mysql, redis or tcp)" },
	{ "{\"name\": \"a\", \"kind\": \"Redis\", \"address\": \"db.local:6379\"}",
	  DBL ": kind: unknown kind \"Redis\" (expected postgresql, mysql, redis or tcp)" },
	{ "{\"name\": \"a\", \"kind\": \"redis\", \"address\": 6379}",
	  DBL ": address: expected string, got integer 6379" },
	BAD_ADDR("db.local", NO_PORT),
	BAD_ADDR("a:b:5432", NO_PORT),
	BAD_ADDR("::1:5432", NO_PORT), /* bare IPv6 must use brackets */
	BAD_ADDR("::1", NO_PORT),
	BAD_ADDR("[::1]", NO_V6),
	BAD_ADDR("[::1]5432", NO_V6),
	BAD_ADDR("[::1", NO_V6),
	BAD_ADDR(":5432", NO_HOST),
	BAD_ADDR("[]:5432", NO_HOST),
	BAD_ADDR("db.local:0", "invalid port \"0\" (1-65535)"),
	BAD_ADDR("db.local:70000", "invalid port \"70000\" (1-65535)"),
	BAD_ADDR("db.local:65536", "invalid port \"65536\" (1-65535)"),
	BAD_ADDR("db.local:", "invalid port \"\" (1-65535)"),
	BAD_ADDR("db.local:54x", "invalid port \"54x\" (1-65535)"),
	BAD_ADDR("db.local:+5432", "invalid port \"+5432\" (1-65535)"),
	BAD_ADDR("[::1]:0", "invalid port \"0\" (1-65535)"),
	BAD_ADDR("[::1]:", "invalid port \"\" (1-65535)"),
	BAD_ADDR("", NO_PORT),
	{ "{\"name\": \"a\", \"kind\": \"tcp\", \"address\": \"h:1\", \"unmanaged\": \"maybe\"}",
	  DBL ": unmanaged: invalid value \"maybe\" (expected allow or deny)" },
	{ "{\"name\": \"a\", \"kind\": \"tcp\", \"address\": \"h:1\", \"unmanaged\": \"Deny\"}",
	  DBL ": unmanaged: invalid value \"Deny\" (expected allow or deny)" },
	{ "{\"name\": \"a\", \"kind\": \"tcp\", \"address\": \"h:1\", \"unmanaged\": false}",
	  DBL ": unmanaged: expected string, got boolean false" },
	{ "{\"name\": \"a\", \"kind\": \"tcp\", \"address\": \"h:1\", \"port\": 1}",
	  DBL ": port: unknown key" },
};

static void test_db_objects_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_db_objects) / sizeof(bad_db_objects[0]); i++) {
		struct db_spec d;
		struct verr e = {};
		char what[512];
		int err = parse_db(bad_db_objects[i].json, &d, &e);

		snprintf(what, sizeof(what), "case %zu %s", i, bad_db_objects[i].json);
		if (err != -EINVAL)
			fail_msg("%s: returned %d, expected -EINVAL", what, err);
		assert_verr_one(&e, bad_db_objects[i].msg, what);
		assert_null(d.source);
		verr_free(&e);
	}
}

/* Every problem of one object is reported at once. */
static void test_db_object_all_errors(void **state)
{
	static const char *const want[] = {
		DBL ": extra: unknown key",
		DBL ": name: missing required key",
		DBL ": kind: missing required key",
		DBL ": address: missing required key",
		NULL,
	};
	static const char *const want2[] = {
		DBL ": name: invalid database name \"A\" (expected [a-z0-9][a-z0-9-]{0,62})",
		DBL ": kind: unknown kind \"x\" (expected postgresql, mysql, redis or tcp)",
		DBL ": address: \"h\": " NO_PORT,
		DBL ": unmanaged: invalid value \"x\" (expected allow or deny)",
		NULL,
	};
	struct db_spec d;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_db("{\"extra\": 1}", &d, &e), -EINVAL);
	assert_verr_is(&e, want, "missing all");
	verr_free(&e);
	assert_int_equal(parse_db("{\"name\": \"A\", \"kind\": \"x\", \"address\": \"h\", "
				  "\"unmanaged\": \"x\"}",
				  &d, &e),
			 -EINVAL);
	assert_verr_is(&e, want2, "all bad");
	verr_free(&e);
}

static void test_db_host_length(void **state)
{
	char host[DB_HOST_MAX + 2], addr[DB_HOST_MAX + 16], why[512], want[512],
		out[DB_HOST_MAX + 1];
	uint16_t port = 0;

	(void)state;
	memset(host, 'h', DB_HOST_MAX + 1);
	host[DB_HOST_MAX + 1] = '\0';
	snprintf(addr, sizeof(addr), "%s:5432", host);
	assert_int_equal(db_address_parse(addr, out, sizeof(out), &port, why, sizeof(why)),
			 -EINVAL);
	snprintf(want, sizeof(want), "\"%s\": " NO_HOST, addr);
	assert_string_equal(why, want);

	host[DB_HOST_MAX] = '\0';
	snprintf(addr, sizeof(addr), "%s:5432", host);
	assert_int_equal(db_address_parse(addr, out, sizeof(out), &port, why, sizeof(why)), 0);
	assert_string_equal(out, host);
	assert_int_equal(port, 5432);

	/* a buffer too small for the host is refused, not overrun */
	assert_int_equal(db_address_parse("db.local:5432", out, 8, &port, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "\"db.local:5432\": " NO_HOST);
	assert_int_equal(db_address_parse("db.local:5432", out, 9, &port, why, sizeof(why)), 0);
	assert_string_equal(out, "db.local");
}

static void test_db_objects_good(void **state)
{
	static const struct {
		const char *json, *host, *canonical;
		uint16_t port;
		int kind;
		bool allow;
	} cases[] = {
		{ DB("db.local:5432"), "db.local",
		  "{\"name\":\"analytics-db\",\"kind\":\"postgresql\",\"address\":\"db.local:"
		  "5432\","
		  "\"unmanaged\":\"allow\",\"resolve_interval_s\":10}",
		  5432, DB_POSTGRESQL, true },
		{ "{\"name\": \"v6\", \"kind\": \"redis\", \"address\": \"[::1]:6379\", "
		  "\"unmanaged\": \"deny\"}",
		  "::1",
		  "{\"name\":\"v6\",\"kind\":\"redis\",\"address\":\"[::1]:6379\","
		  "\"unmanaged\":\"deny\",\"resolve_interval_s\":10}",
		  6379, DB_REDIS, false },
		{ "{\"unmanaged\": \"allow\", \"address\": \"127.0.0.1:6379\", \"kind\": "
		  "\"mysql\", "
		  "\"name\": \"cache-1\"}",
		  "127.0.0.1",
		  "{\"name\":\"cache-1\",\"kind\":\"mysql\",\"address\":\"127.0.0.1:6379\","
		  "\"unmanaged\":\"allow\",\"resolve_interval_s\":10}",
		  6379, DB_MYSQL, true },
		{ "{\"name\": \"t\", \"kind\": \"tcp\", \"address\": \"[2001:db8::5]:65535\"}",
		  "2001:db8::5",
		  "{\"name\":\"t\",\"kind\":\"tcp\",\"address\":\"[2001:db8::5]:65535\","
		  "\"unmanaged\":\"allow\",\"resolve_interval_s\":10}",
		  65535, DB_TCP, true },
		{ "{\"name\": \"t\", \"kind\": \"tcp\", \"address\": \"h:1\"}", "h",
		  "{\"name\":\"t\",\"kind\":\"tcp\",\"address\":\"h:1\",\"unmanaged\":\"allow\","
		  "\"resolve_interval_s\":10}",
		  1, DB_TCP, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct db_spec d, back, copy;
		struct json_object *obj;
		struct verr e = {};

		if (parse_db(cases[i].json, &d, &e))
			fail_msg("case %zu refused: %s", i, e.n ? e.msgs[0] : "");
		assert_string_equal(d.host, cases[i].host);
		assert_int_equal(d.port, cases[i].port);
		assert_int_equal(d.kind, cases[i].kind);
		assert_int_equal(d.unmanaged_allow, cases[i].allow);
		assert_null(d.source);
		obj = dbspec_to_json(&d);
		assert_string_equal(json_object_to_json_string_ext(obj, JSON_FLAGS),
				    cases[i].canonical);
		assert_int_equal(dbspec_from_json(obj, "back", &back, &e), 0);
		json_object_put(obj);
		assert_int_equal(e.n, 0);
		assert_string_equal(back.name, d.name);
		assert_string_equal(back.host, d.host);
		assert_int_equal(back.port, d.port);
		assert_int_equal(back.kind, d.kind);
		assert_int_equal(back.unmanaged_allow, d.unmanaged_allow);

		d.source = strdup("/etc/caelum/databases.d/x.json");
		assert_int_equal(dbspec_copy(&copy, &d), 0);
		assert_ptr_not_equal(copy.source, d.source);
		dbspec_free(&d);
		assert_null(d.source);
		assert_string_equal(copy.source, "/etc/caelum/databases.d/x.json");
		assert_string_equal(copy.host, cases[i].host);
		dbspec_free(&copy);
	}
}

static void test_db_load_dir_missing(void **state)
{
	struct db_spec *dbs = (void *)1;
	char path[PATH_MAX];
	struct verr e = {};
	size_t n = 99;

	snprintf(path, sizeof(path), "%s/databases.d", (const char *)*state);
	assert_int_equal(dbspec_load_dir(path, &dbs, &n, &e), 0);
	assert_null(dbs);
	assert_int_equal(n, 0);
	assert_int_equal(e.n, 0);

	/* an empty directory too */
	assert_int_equal(dbspec_load_dir(*state, &dbs, &n, &e), 0);
	assert_null(dbs);
	assert_int_equal(n, 0);
	assert_int_equal(e.n, 0);
}

static void test_db_load_dir_sorted(void **state)
{
	const char *dir = *state;
	char want[PATH_MAX];
	struct db_spec *dbs;
	struct verr e = {};
	size_t n;

	write_text(dir, "zeta.json",
		   "{\"name\": \"zeta\", \"kind\": \"tcp\", \"address\": \"z:1\"}", NULL);
	write_text(dir, "analytics-db.json",
		   "{\"name\": \"analytics-db\", \"kind\": \"postgresql\", "
		   "\"address\": \"db.local:5432\", \"unmanaged\": \"deny\"}\n",
		   NULL);
	write_text(dir, "mid.json",
		   "{\"name\": \"mid\", \"kind\": \"redis\", \"address\": \"[::1]:6379\"}", NULL);
	/* ignored: hidden, editor leftovers, other extensions, a bare ".json" */
	write_text(dir, ".hidden.json", "{broken", NULL);
	write_text(dir, "x.json~", "{broken", NULL);
	write_text(dir, "zeta.json.bak", "{broken", NULL);
	write_text(dir, "README", "not json", NULL);
	write_text(dir, ".json", "{broken", NULL);
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(n, 3);
	assert_string_equal(dbs[0].name, "analytics-db");
	assert_string_equal(dbs[0].host, "db.local");
	assert_int_equal(dbs[0].port, 5432);
	assert_false(dbs[0].unmanaged_allow);
	snprintf(want, sizeof(want), "%s/analytics-db.json", dir);
	assert_string_equal(dbs[0].source, want);
	assert_string_equal(dbs[1].name, "mid");
	assert_string_equal(dbs[1].host, "::1");
	assert_true(dbs[1].unmanaged_allow);
	assert_string_equal(dbs[2].name, "zeta");
	snprintf(want, sizeof(want), "%s/zeta.json", dir);
	assert_string_equal(dbs[2].source, want);
	dbspecs_free(dbs, n);
}

static void test_db_load_dir_name_mismatch(void **state)
{
	const char *dir = *state;
	char a[PATH_MAX], b[PATH_MAX], wa[PATH_MAX + 128], wb[PATH_MAX + 128];
	const char *want_one[] = { wb, NULL };
	struct db_spec *dbs = (void *)1;
	struct verr e = {};
	size_t n = 7;

	write_text(dir, "good.json",
		   "{\"name\": \"good\", \"kind\": \"tcp\", \"address\": \"h:1\"}", NULL);
	write_text(dir, "beta.json",
		   "{\"name\": \"alpha\", \"kind\": \"tcp\", \"address\": \"h:1\"}", b);
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), -EINVAL);
	snprintf(wb, sizeof(wb),
		 "%s: name: \"alpha\" does not match the file name (expected alpha.json)", b);
	assert_verr_is(&e, want_one, "name mismatch");
	assert_null(dbs);
	assert_int_equal(n, 0);
	verr_free(&e);

	/* a prefix of the name is not the name; errors inside a file name the file */
	assert_int_equal(remove(b), 0);
	write_text(dir, "alph.json",
		   "{\"name\": \"alpha\", \"kind\": \"tcp\", \"address\": \"h:1\"}", a);
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), -EINVAL);
	snprintf(wa, sizeof(wa),
		 "%s: name: \"alpha\" does not match the file name (expected alpha.json)", a);
	assert_verr_one(&e, wa, "prefix");
	verr_free(&e);

	assert_int_equal(remove(a), 0);
	write_text(dir, "gamma.json",
		   "{\"name\": \"gamma\", \"kind\": \"oracle\", \"address\": \"h:1\"}", a);
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), -EINVAL);
	snprintf(wa, sizeof(wa),
		 "%s: kind: unknown kind \"oracle\" (expected postgresql, mysql, redis or tcp)", a);
	assert_verr_one(&e, wa, "bad kind in file");
	assert_null(dbs);
	assert_int_equal(n, 0);
	verr_free(&e);
}

/* One unparsable file refuses the directory; the good ones around it are not leaked. */
static void test_db_load_dir_syntax_error(void **state)
{
	const char *dir = *state;
	char bad[PATH_MAX], want[PATH_MAX + 128];
	struct db_spec *dbs = (void *)1;
	struct verr e = {};
	size_t n = 7;

	write_text(dir, "alpha.json",
		   "{\"name\": \"alpha\", \"kind\": \"tcp\", \"address\": \"h:1\"}", NULL);
	write_text(dir, "beta.json", "{\"name\": \"beta\",\n  \"kind\": \"tcp\"\n", bad);
	write_text(dir, "gamma.json",
		   "{\"name\": \"gamma\", \"kind\": \"tcp\", \"address\": \"h:2\"}", NULL);
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s: line 3, column 1: unexpected end of input", bad);
	assert_verr_one(&e, want, "syntax in dir");
	assert_null(dbs);
	assert_int_equal(n, 0);
	verr_free(&e);

	/* more files than the first allocation, with the broken one in the middle */
	for (int i = 0; i < 20; i++) {
		char name[32], json[128];

		snprintf(name, sizeof(name), "db%02d.json", i);
		snprintf(json, sizeof(json),
			 "{\"name\": \"db%02d\", \"kind\": \"tcp\", \"address\": \"h:%d\"}", i,
			 i + 1);
		write_text(dir, name, json, NULL);
	}
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), -EINVAL);
	assert_verr_one(&e, want, "syntax in a big dir");
	assert_null(dbs);
	verr_free(&e);

	assert_int_equal(remove(bad), 0);
	assert_int_equal(dbspec_load_dir(dir, &dbs, &n, &e), 0);
	assert_int_equal(n, 22);
	assert_string_equal(dbs[0].name, "alpha");
	assert_string_equal(dbs[1].name, "db00");
	assert_string_equal(dbs[20].name, "db19");
	assert_int_equal(dbs[20].port, 20);
	assert_string_equal(dbs[21].name, "gamma");
	dbspecs_free(dbs, n);
}

static void test_db_resolve(void **state)
{
	struct db_spec d = { .name = "analytics-db", .port = 5432 };
	struct db_addr a[DB_MAX_ADDRS];
	char buf[64], why[256] = "";
	size_t n = 99;

	(void)state;
	strcpy(d.host, "127.0.0.1");
	assert_int_equal(db_resolve(&d, a, DB_MAX_ADDRS, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].sa.ss_family, AF_INET);
	assert_int_equal(a[0].len, sizeof(struct sockaddr_in));
	db_addr_fmt(&a[0], buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:5432");

	strcpy(d.host, "::1");
	n = 99;
	assert_int_equal(db_resolve(&d, a, DB_MAX_ADDRS, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].sa.ss_family, AF_INET6);
	assert_int_equal(a[0].len, sizeof(struct sockaddr_in6));
	db_addr_fmt(&a[0], buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:5432");

	/* max bounds what is written */
	n = 99;
	assert_int_equal(db_resolve(&d, a, 0, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_string_equal(why, "");
}

static void test_db_resolve_unknown_host(void **state)
{
	static const int gai[] = { EAI_NONAME, EAI_AGAIN, EAI_FAIL, EAI_NODATA };
	static const char prefix[] = "cannot resolve \"no-such-host.invalid\": ";
	struct db_spec d = { .name = "gone", .host = "no-such-host.invalid", .port = 5432 };
	struct db_addr a[DB_MAX_ADDRS];
	char why[256] = "";
	size_t n = 99;
	bool known = false;

	(void)state;
	assert_int_equal(db_resolve(&d, a, DB_MAX_ADDRS, &n, why, sizeof(why)), -EHOSTUNREACH);
	assert_int_equal(n, 0);
	if (strncmp(why, prefix, strlen(prefix)))
		fail_msg("why: %s", why);
	/* the resolver's own reason follows, whichever of these the host's resolver gives */
	for (size_t i = 0; i < sizeof(gai) / sizeof(gai[0]); i++)
		known |= !strcmp(why + strlen(prefix), gai_strerror(gai[i]));
	if (!known)
		fail_msg("unexpected reason: %s", why);
}

static void test_db_addr_fmt(void **state)
{
	struct db_addr a = { .len = sizeof(struct sockaddr_in6) };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.sa;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a.sa;
	char buf[64];

	(void)state;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(443);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &s6->sin6_addr), 1);
	db_addr_fmt(&a, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::5]:443");

	memset(&a, 0, sizeof(a));
	a.len = sizeof(*s4);
	s4->sin_family = AF_INET;
	s4->sin_port = htons(65535);
	assert_int_equal(inet_pton(AF_INET, "10.0.0.1", &s4->sin_addr), 1);
	db_addr_fmt(&a, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.1:65535");

	/* a short buffer is truncated, never overrun */
	db_addr_fmt(&a, buf, 6);
	assert_string_equal(buf, "10.0.");
}

/* FNV-1a 32-bit, written independently: 64-bit arithmetic, masked. */
static uint32_t fnv1a_ref(const char *s)
{
	uint64_t h = 0x811c9dc5;

	for (size_t i = 0; s[i]; i++)
		h = ((h ^ (uint8_t)s[i]) * 0x01000193) & 0xffffffff;
	return (uint32_t)h;
}

static void test_db_id_of(void **state)
{
	static const char *const names[] = { "analytics-db", "cache", "a",   "db00",
					     "db01",	     "0",     "z-z", "" };

	(void)state;
	assert_int_equal(fnv1a_ref("analytics-db"), 0x6fa35f20);
	assert_int_equal(db_id_of("analytics-db"), 0x6fa35f20);
	assert_int_equal(db_id_of("a"), 0xe40c292c);
	assert_int_equal(db_id_of(""), 0x811c9dc5); /* the offset basis */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint32_t id = db_id_of(names[i]);

		if (id != fnv1a_ref(names[i]) || id != db_id_of(names[i]) || !id)
			fail_msg("db_id_of(\"%s\") = %#x, expected %#x", names[i], id,
				 fnv1a_ref(names[i]));
	}
	/* FNV-1a of "akhnp9x" is 0, which would mean "no database": it is mapped to 1 */
	assert_int_equal(fnv1a_ref("akhnp9x"), 0);
	assert_int_equal(db_id_of("akhnp9x"), 1);
	assert_int_not_equal(db_id_of("db00"), db_id_of("db01"));
}

/* ---- credential files ---- */

static void make_file(const char *dir, const char *name, const char *text, mode_t mode, char *path)
{
	write_text(dir, name, text, path);
	assert_int_equal(chmod(path, mode), 0);
}

static void parse_creds(const char *creds_json, struct service_spec *s)
{
	char *json;
	struct verr e = {};

	assert_true(asprintf(&json, "{\"name\": \"svc\", \"credentials\": %s}", creds_json) > 0);
	if (parse_svc(json, s, &e))
		fail_msg("spec refused: %s", e.n ? e.msgs[0] : "");
	free(json);
}

static void test_credentials_check_files(void **state)
{
	const char *dir = *state;
	char missing[PATH_MAX], sub[PATH_MAX], empty[PATH_MAX], loose[PATH_MAX], strict[PATH_MAX],
		suid[PATH_MAX], any[PATH_MAX], w[8][PATH_MAX + 128];
	const char *want[] = { w[0], w[1], w[2], w[3], w[4], NULL };
	struct service_spec s;
	struct verr e = {};
	char *creds, *out;

	snprintf(missing, sizeof(missing), "%s/missing.key", dir);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	make_file(dir, "empty.key", "", 0600, empty);
	make_file(dir, "loose.key", "abc", 0644, loose);
	make_file(dir, "strict.key", "abc", 0400, strict);
	make_file(dir, "suid.key", "abc", 04600, suid);
	make_file(dir, "any.key", "abc", 0666, any); /* no requirement: any mode */
	assert_true(asprintf(&creds,
			     "[{\"file\": \"%s\"}, {\"file\": \"%s\"}, {\"env\": \"API_TOKEN\"}, "
			     "{\"file\": \"%s\"}, {\"file\": \"%s\", \"mode\": \"0600\"}, "
			     "{\"file\": \"%s\", \"mode\": \"0600\"}, "
			     "{\"file\": \"%s\", \"mode\": \"0600\"}, {\"file\": \"%s\"}]",
			     missing, sub, empty, loose, strict, suid, any) > 0);
	parse_creds(creds, &s);
	free(creds);

	{
		struct json_object *arr = credentials_check(&s, &e);

		assert_true(
			asprintf(&out,
				 "[{\"file\":\"%s\",\"ok\":false},{\"file\":\"%s\",\"ok\":false},"
				 "{\"env\":\"API_TOKEN\"},{\"file\":\"%s\",\"ok\":false},"
				 "{\"file\":\"%s\",\"ok\":false},"
				 "{\"file\":\"%s\",\"sha256\":\"" SHA_ABC "\",\"ok\":true},"
				 "{\"file\":\"%s\",\"ok\":false},"
				 "{\"file\":\"%s\",\"sha256\":\"" SHA_ABC "\",\"ok\":true}]",
				 missing, sub, empty, loose, strict, suid, any) > 0);
		assert_json_put(arr, out);
		free(out);
	}
	snprintf(w[0], sizeof(w[0]), "svc: credentials[0]: %s: No such file or directory", missing);
	snprintf(w[1], sizeof(w[1]), "svc: credentials[1]: %s is not a regular file", sub);
	snprintf(w[2], sizeof(w[2]), "svc: credentials[3]: %s is empty", empty);
	snprintf(w[3], sizeof(w[3]), "svc: credentials[4]: %s has mode 0644, looser than 0600",
		 loose);
	snprintf(w[4], sizeof(w[4]), "svc: credentials[6]: %s has mode 4600, looser than 0600",
		 suid);
	assert_verr_is(&e, want, "credential files");
	verr_free(&e);
	spec_free(&s);

	/* only env credentials: listed, nothing checked, no errors */
	parse_creds("[{\"env\": \"A\"}, {\"env\": \"B\"}]", &s);
	assert_json_put(credentials_check(&s, &e), "[{\"env\":\"A\"},{\"env\":\"B\"}]");
	assert_int_equal(e.n, 0);
	spec_free(&s);

	/* no credentials at all */
	parse_creds("[]", &s);
	assert_json_put(credentials_check(&s, &e), "[]");
	assert_int_equal(e.n, 0);
	spec_free(&s);
}

/* chown needs root; skipped (and reported as skipped) otherwise. */
static void test_credentials_check_owner(void **state)
{
	const char *dir = *state;
	char mine[PATH_MAX], theirs[PATH_MAX], want[PATH_MAX + 128], *creds, *out;
	struct passwd *pw;
	struct service_spec s;
	struct verr e = {};

	if (geteuid() != 0)
		skip();
	pw = getpwuid(65534);
	make_file(dir, "mine.key", "abc", 0600, mine);
	make_file(dir, "theirs.key", "abc", 0600, theirs);
	assert_int_equal(chown(theirs, 65534, 65534), 0);
	assert_true(asprintf(&creds,
			     "[{\"file\": \"%s\", \"mode\": \"0600\", \"owner\": \"root\"}, "
			     "{\"file\": \"%s\", \"mode\": \"0600\", \"owner\": \"root\"}, "
			     "{\"file\": \"%s\"}]",
			     mine, theirs, theirs) > 0);
	parse_creds(creds, &s);
	free(creds);
	assert_int_equal(s.creds[0].owner_uid, 0);

	assert_true(asprintf(&out,
			     "[{\"file\":\"%s\",\"sha256\":\"" SHA_ABC "\",\"ok\":true},"
			     "{\"file\":\"%s\",\"ok\":false},"
			     "{\"file\":\"%s\",\"sha256\":\"" SHA_ABC "\",\"ok\":true}]",
			     mine, theirs, theirs) > 0);
	assert_json_put(credentials_check(&s, &e), out);
	free(out);
	snprintf(want, sizeof(want),
		 "svc: credentials[1]: %s is owned by %s (uid 65534), expected root", theirs,
		 pw ? pw->pw_name : "?");
	assert_verr_one(&e, want, "owner");
	verr_free(&e);
	spec_free(&s);
}

/* ---- fingerprints ---- */

static void test_fingerprint_data(void **state)
{
	char hex[FINGERPRINT_HEX];
	static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	(void)state;
	fingerprint_data("abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
	fingerprint_data("", 0, hex);
	assert_string_equal(hex, SHA_EMPTY);
	fingerprint_data(msg448, strlen(msg448), hex);
	assert_string_equal(hex, SHA_448);
	/* the length is what counts, not a NUL */
	fingerprint_data("abcdef", 3, hex);
	assert_string_equal(hex, SHA_ABC);
}

static void test_fingerprint_file(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX], hex[FINGERPRINT_HEX], *big;
	const size_t big_len = 1000000; /* many times the read buffer, not a multiple of it */

	write_text(dir, "abc", "abc", path);
	memset(hex, 0, sizeof(hex));
	assert_int_equal(fingerprint_file(path, hex), 0);
	assert_string_equal(hex, SHA_ABC);

	write_text(dir, "empty", "", path);
	assert_int_equal(fingerprint_file(path, hex), 0);
	assert_string_equal(hex, SHA_EMPTY);

	big = malloc(big_len + 1);
	assert_non_null(big);
	memset(big, 'a', big_len);
	big[big_len] = '\0';
	write_text(dir, "million-a", big, path);
	assert_int_equal(fingerprint_file(path, hex), 0);
	assert_string_equal(hex, SHA_MILLION_A);
	fingerprint_data(big, big_len, hex);
	assert_string_equal(hex, SHA_MILLION_A);
	free(big);

	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(fingerprint_file(path, hex), -ENOENT);
	assert_int_equal(fingerprint_file(dir, hex), -EISDIR);
}

#define TD(f) cmocka_unit_test_setup_teardown(f, tmpdir_setup, tmpdir_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_databases_bad),
		cmocka_unit_test(test_databases_duplicate_index),
		cmocka_unit_test(test_databases_too_many),
		cmocka_unit_test(test_databases_good),
		cmocka_unit_test(test_credentials_bad),
		cmocka_unit_test(test_env_name_lengths),
		cmocka_unit_test(test_credential_modes),
		cmocka_unit_test(test_cred_mode_fmt),
		cmocka_unit_test(test_credentials_good),
		cmocka_unit_test(test_health_bad),
		cmocka_unit_test(test_health_too_many_args),
		cmocka_unit_test(test_health_target_length),
		cmocka_unit_test(test_health_defaults),
		cmocka_unit_test(test_health_exec),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_copy_is_deep),
		cmocka_unit_test(test_db_objects_bad),
		cmocka_unit_test(test_db_object_all_errors),
		cmocka_unit_test(test_db_host_length),
		cmocka_unit_test(test_db_objects_good),
		TD(test_db_load_dir_missing),
		TD(test_db_load_dir_sorted),
		TD(test_db_load_dir_name_mismatch),
		TD(test_db_load_dir_syntax_error),
		cmocka_unit_test(test_db_resolve),
		cmocka_unit_test(test_db_resolve_unknown_host),
		cmocka_unit_test(test_db_addr_fmt),
		cmocka_unit_test(test_db_id_of),
		TD(test_credentials_check_files),
		TD(test_credentials_check_owner),
		cmocka_unit_test(test_fingerprint_data),
		TD(test_fingerprint_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
