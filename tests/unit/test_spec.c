// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Service specs: exact refusals of bad specs, conflicts within one spec and across the
 * files of services_dir (both owners named), defaults, the JSON round trip, and which
 * files of a directory count.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "spec.h"
#include "testutil.h"

#define LABEL "alpha.json"

static int parse_spec(const char *text, struct service_spec *s, struct verr *e)
{
	struct json_object *obj;
	int err;

	err = jv_parse_string(LABEL, text, strlen(text), &obj, e);
	if (err)
		return err;
	err = spec_from_json(obj, LABEL, s, e);
	json_object_put(obj);
	return err;
}

static void assert_range(const struct port_range *r, unsigned int lo, unsigned int hi,
			 unsigned int proto)
{
	assert_int_equal(r->lo, lo);
	assert_int_equal(r->hi, hi);
	assert_int_equal(r->proto, proto);
}

struct bad_case {
	const char *json;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	/* "cgroup": an existing cgroup relative to cgroup_root */
	{ "{\"name\": \"web\", \"cgroup\": \"/a\"}",
	  LABEL ": cgroup: \"/a\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"a/\"}",
	  LABEL ": cgroup: \"a/\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"a//b\"}",
	  LABEL ": cgroup: \"a//b\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"..\"}",
	  LABEL ": cgroup: \"..\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"a/..\"}",
	  LABEL ": cgroup: \"a/..\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"./a\"}",
	  LABEL ": cgroup: \"./a\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"a/./b\"}",
	  LABEL ": cgroup: \"a/./b\" is not a path relative to cgroup_root (no leading or trailing "
		"'/', no empty, '.' or '..' component)" },
	{ "{\"name\": \"web\", \"cgroup\": \"caelum\"}",
	  LABEL ": cgroup: \"caelum\" is below Caelum's own \"caelum/\"" },
	{ "{\"name\": \"web\", \"cgroup\": \"caelum/web\"}",
	  LABEL ": cgroup: \"caelum/web\" is below Caelum's own \"caelum/\"" },
	{ "{\"name\": \"web\", \"cgroup\": \"a$b\"}",
	  LABEL ": cgroup: \"a$b\": character '$' is not allowed" },
	{ "{\"name\": \"web\", \"cgroup\": \"\"}", LABEL ": cgroup: \"\" must be 1-95 characters" },
	{ "{\"name\": \"web\", \"cgroup\": "
	  "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxx\"}",
	  LABEL ": cgroup: "
		"\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxx\" must be 1-95 characters" },
	{ "{\"name\": \"web\", \"cgroup\": 5}", LABEL ": cgroup: expected string, got integer 5" },
	/* names */
	{ "{\"name\": \"Alpha\", \"ports\": []}",
	  LABEL ": name: invalid service name \"Alpha\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": \"-alpha\", \"ports\": []}",
	  LABEL ": name: invalid service name \"-alpha\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": \"\", \"ports\": []}",
	  LABEL ": name: invalid service name \"\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": \"al_pha\"}",
	  LABEL ": name: invalid service name \"al_pha\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": \"al.pha\"}",
	  LABEL ": name: invalid service name \"al.pha\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": \"a/b\"}",
	  LABEL ": name: invalid service name \"a/b\" (expected [a-z0-9][a-z0-9-]{0,62})" },
	{ "{\"name\": 5, \"ports\": []}", LABEL ": name: expected string, got integer 5" },
	{ "{\"ports\": [\"8100\"]}", LABEL ": name: missing required key" },
	/* keys and types */
	{ "{\"name\": \"alpha\", \"port\": [\"8100\"]}", LABEL ": port: unknown key" },
	{ "[\"alpha\"]", LABEL ": expected object, got array [...]" },
	{ "{\"name\": \"alpha\", \"ports\": \"8100\"}",
	  LABEL ": ports: expected array, got string \"8100\"" },
	{ "{\"name\": \"alpha\", \"ports\": {\"8100\": \"tcp\"}}",
	  LABEL ": ports: expected array, got object {...}" },
	{ "{\"name\": \"alpha\", \"ports\": [{\"port\": 8100}]}",
	  LABEL ": ports[0]: expected string like \"8100/tcp\", got object" },
	{ "{\"name\": \"alpha\", \"ports\": [\"8100\", true]}",
	  LABEL ": ports[1]: expected string like \"8100/tcp\", got boolean" },
	{ "{\"name\": \"alpha\", \"ports\": [8100.0]}",
	  LABEL ": ports[0]: expected string like \"8100/tcp\", got number" },
	{ "{\"name\": \"alpha\", \"ports\": [null]}",
	  LABEL ": ports[0]: expected string like \"8100/tcp\", got null" },
	/* port values */
	{ "{\"name\": \"alpha\", \"ports\": [\"8100\", \"70000\"]}",
	  LABEL ": ports[1]: port 70000 out of range 1-65535" },
	{ "{\"name\": \"alpha\", \"ports\": [70000]}",
	  LABEL ": ports[0]: port 70000 out of range 1-65535" },
	{ "{\"name\": \"alpha\", \"ports\": [\"0/udp\"]}",
	  LABEL ": ports[0]: port 0 out of range 1-65535" },
	{ "{\"name\": \"alpha\", \"ports\": [0]}",
	  LABEL ": ports[0]: port 0 out of range 1-65535" },
	{ "{\"name\": \"alpha\", \"ports\": [\"9010-9000/tcp\"]}",
	  LABEL ": ports[0]: range 9010-9000: start is greater than end" },
	{ "{\"name\": \"alpha\", \"ports\": [\"8100/sctp\"]}",
	  LABEL ": ports[0]: unknown protocol 'sctp' (expected tcp or udp)" },
	{ "{\"name\": \"alpha\", \"ports\": [\"8100/\"]}",
	  LABEL ": ports[0]: unknown protocol '' (expected tcp or udp)" },
	{ "{\"name\": \"alpha\", \"ports\": [\"http\"]}", LABEL ": ports[0]: invalid port 'http'" },
	{ "{\"name\": \"alpha\", \"ports\": [\"\"]}", LABEL ": ports[0]: '': missing port number" },
	/* conflicts inside one spec */
	{ "{\"name\": \"alpha\", \"ports\": [\"8100\", \"8101\", \"8100/tcp\"]}",
	  LABEL ": ports[2]: 8100/tcp is already listed in ports[0]" },
	{ "{\"name\": \"alpha\", \"ports\": [8100, \"8100\"]}",
	  LABEL ": ports[1]: 8100/tcp is already listed in ports[0]" },
	{ "{\"name\": \"alpha\", \"ports\": [\"9000-9010/udp\", \"9005-9020/udp\"]}",
	  LABEL ": ports[1]: 9005/udp is already listed in ports[0]" },
	{ "{\"name\": \"alpha\", \"ports\": [\"9005\", \"9000-9010\"]}",
	  LABEL ": ports[1]: 9005/tcp is already listed in ports[0]" },
	/* syntax */
	{ "{\"name\": \"alpha\",\n \"ports\": [\"8100\" \"8101\"]}",
	  LABEL ": line 2, column 19: array value separator ',' expected" },
};

static void test_bad_specs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct service_spec s;
		struct verr e = {};
		char what[256];
		int err = parse_spec(bad_cases[i].json, &s, &e);

		snprintf(what, sizeof(what), "case %zu %s", i, bad_cases[i].json);
		if (err != -EINVAL)
			fail_msg("%s: returned %d, expected -EINVAL", what, err);
		assert_verr_one(&e, bad_cases[i].msg, what);
		verr_free(&e);
	}
}

static void test_name_lengths(void **state)
{
	char name[80], json[160], want[256];
	struct service_spec s;
	struct verr e = {};

	(void)state;
	memset(name, 'a', 64);
	name[64] = '\0';
	snprintf(json, sizeof(json), "{\"name\": \"%s\"}", name);
	assert_int_equal(parse_spec(json, &s, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 LABEL ": name: invalid service name \"%s\" (expected [a-z0-9][a-z0-9-]{0,62})",
		 name);
	assert_verr_one(&e, want, "64 chars");
	verr_free(&e);

	name[63] = '\0';
	name[62] = '-'; /* a trailing dash is allowed by the pattern */
	snprintf(json, sizeof(json), "{\"name\": \"%s\"}", name);
	assert_int_equal(parse_spec(json, &s, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(s.name, name);
	spec_free(&s);
}

static void test_name_valid(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "a", true },	      { "0", true },	{ "web-1", true }, { "9lives", true },
		{ "a--b", true },     { "", false },	{ "-a", false },   { "A", false },
		{ "a_b", false },     { "a.b", false }, { "a b", false },  { "é", false },
		{ "alpha\n", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (service_name_valid(cases[i].name) != cases[i].ok)
			fail_msg("service_name_valid(\"%s\") != %d", cases[i].name, cases[i].ok);
}

/* Name and port problems of one spec are all reported; nothing is left allocated. */
static void test_several_errors(void **state)
{
	static const char *const want[] = {
		LABEL ": extra: unknown key",
		LABEL ": name: invalid service name \"Bad\" (expected [a-z0-9][a-z0-9-]{0,62})",
		LABEL ": ports[0]: port 70000 out of range 1-65535",
		LABEL ": ports[2]: unknown protocol 'icmp' (expected tcp or udp)",
		NULL,
	};
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_spec("{\"name\": \"Bad\", \"extra\": 1, "
				    "\"ports\": [\"70000\", \"8100\", \"1/icmp\"]}",
				    &s, &e),
			 -EINVAL);
	assert_verr_is(&e, want, "several");
	assert_null(s.ports);
	assert_int_equal(s.n_ports, 0);
	verr_free(&e);
}

static void test_too_many_items(void **state)
{
	size_t cap = 64 + (SPEC_MAX_PORT_ITEMS + 1) * 8, len = 0;
	char *json = malloc(cap);
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_non_null(json);
	len += snprintf(json + len, cap - len, "{\"name\": \"alpha\", \"ports\": [");
	for (int i = 0; i <= SPEC_MAX_PORT_ITEMS; i++)
		len += snprintf(json + len, cap - len, "%s%d", i ? "," : "", 10000 + i);
	snprintf(json + len, cap - len, "]}");
	assert_int_equal(parse_spec(json, &s, &e), -EINVAL);
	assert_verr_one(&e, LABEL ": ports: 4097 items, at most 4096 (use ranges)", "too many");
	verr_free(&e);
	free(json);
}

static void test_good_spec(void **state)
{
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_spec("{\"name\": \"alpha\", \"ports\": [\"8100\", \"8101/udp\", "
				    "\"9000-9010/tcp\", 7000, \"1\", \"65535/udp\", \"8100/udp\"]}",
				    &s, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(s.name, "alpha");
	assert_null(s.source);
	assert_int_equal(s.n_ports, 7);
	assert_range(&s.ports[0], 8100, 8100, IPPROTO_TCP); /* tcp by default */
	assert_range(&s.ports[1], 8101, 8101, IPPROTO_UDP);
	assert_range(&s.ports[2], 9000, 9010, IPPROTO_TCP);
	assert_range(&s.ports[3], 7000, 7000, IPPROTO_TCP); /* an integer is a tcp port */
	assert_range(&s.ports[4], 1, 1, IPPROTO_TCP);
	assert_range(&s.ports[5], 65535, 65535, IPPROTO_UDP);
	assert_range(&s.ports[6], 8100, 8100, IPPROTO_UDP); /* same number, other proto */
	assert_int_equal(spec_port_count(&s), 1 + 1 + 11 + 1 + 1 + 1 + 1);
	spec_free(&s);
	assert_null(s.ports);
	assert_int_equal(s.n_ports, 0);

	/* no ports at all: a service that reserves nothing (yet) */
	assert_int_equal(parse_spec("{\"name\": \"idle\"}", &s, &e), 0);
	assert_int_equal(s.n_ports, 0);
	assert_int_equal(spec_port_count(&s), 0);
	spec_free(&s);
	assert_int_equal(parse_spec("{\"name\": \"idle\", \"ports\": []}", &s, &e), 0);
	assert_int_equal(s.n_ports, 0);
	spec_free(&s);
	assert_int_equal(e.n, 0);
}

static void test_port_count_full_range(void **state)
{
	struct service_spec s;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_spec("{\"name\": \"all\", \"ports\": [\"1-65535\", "
				    "\"9000-9010/udp\"]}",
				    &s, &e),
			 0);
	assert_int_equal(spec_port_count(&s), 65535 + 11);
	spec_free(&s);
}

/* spec -> JSON -> spec gives the same spec; the JSON is the canonical text. */
static void test_round_trip(void **state)
{
	struct service_spec s, back, copy;
	struct json_object *obj;
	struct verr e = {};

	(void)state;
	assert_int_equal(parse_spec("{\"ports\": [7000, \"8101/udp\", \"9000-9010\", "
				    "\"9000-9010/udp\"], \"name\": \"alpha\"}",
				    &s, &e),
			 0);
	obj = spec_to_json(&s);
	assert_string_equal(json_object_to_json_string_ext(
				    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
			    "{\"name\":\"alpha\",\"ports\":[\"7000/tcp\",\"8101/udp\","
			    "\"9000-9010/tcp\",\"9000-9010/udp\"]}");
	assert_int_equal(spec_from_json(obj, "round-trip", &back, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(back.name, s.name);
	assert_int_equal(back.n_ports, s.n_ports);
	assert_memory_equal(back.ports, s.ports, s.n_ports * sizeof(*s.ports));
	json_object_put(obj);

	/* spec_copy is deep */
	s.source = strdup("/etc/caelum/services.d/alpha.json");
	assert_int_equal(spec_copy(&copy, &s), 0);
	assert_ptr_not_equal(copy.ports, s.ports);
	assert_ptr_not_equal(copy.source, s.source);
	assert_string_equal(copy.source, s.source);
	assert_memory_equal(copy.ports, s.ports, s.n_ports * sizeof(*s.ports));
	spec_free(&s);
	assert_int_equal(copy.n_ports, 4);
	assert_range(&copy.ports[3], 9000, 9010, IPPROTO_UDP);
	spec_free(&copy);
	spec_free(&back);
}

static void make_spec(struct service_spec *s, const char *name, const char *source,
		      const char *ports_json)
{
	char json[512];
	struct verr e = {};

	snprintf(json, sizeof(json), "{\"name\": \"%s\", \"ports\": %s}", name, ports_json);
	assert_int_equal(parse_spec(json, s, &e), 0);
	s->source = source ? strdup(source) : NULL;
}

static void test_check_conflicts(void **state)
{
	static const char *const want[] = {
		"beta: ports[0]: 8100/tcp conflicts with service 'alpha' (alpha: ports[0])",
		"/srv/gamma.json: ports[1]: 9005/udp conflicts with service 'alpha' "
		"(alpha: ports[2])",
		NULL,
	};
	struct service_spec s[3];
	struct verr e = {};

	(void)state;
	make_spec(&s[0], "alpha", NULL, "[\"8100\", \"8100/udp\", \"9000-9010/udp\"]");
	make_spec(&s[1], "beta", NULL, "[\"8095-8105\", \"9005/tcp\"]");
	make_spec(&s[2], "gamma", "/srv/gamma.json", "[\"9030/udp\", \"9005-9020/udp\"]");
	assert_int_equal(spec_check_conflicts(s, 3, &e), -EINVAL);
	assert_verr_is(&e, want, "conflicts");
	verr_free(&e);

	/* tcp and udp of one number are different claims */
	assert_int_equal(spec_check_conflicts(s, 1, &e), 0);
	assert_int_equal(spec_check_conflicts(&s[1], 2, &e), 0);
	assert_int_equal(e.n, 0);
	for (int i = 0; i < 3; i++)
		spec_free(&s[i]);
}

/* One service per cgroup subtree: the same cgroup twice, or one inside another's (not a
 * name that only starts the same: "outer-x"), named once per pair with both files. */
static void test_check_cgroup_conflicts(void **state)
{
	static const char *const want[] = {
		"/srv/inner.json: cgroup: \"outer/inner\" is inside that of service 'outer' "
		"(outer: cgroup \"outer\"): one service per cgroup subtree",
		"twin: cgroup: \"solo\" is also service 'solo' (solo: cgroup \"solo\"): one "
		"service "
		"per cgroup subtree",
		NULL,
	};
	const char *names[] = { "outer", "inner", "sibling", "solo", "twin", "plain" };
	const char *cgs[] = { "outer", "outer/inner", "outer-x", "solo", "solo", "" };
	struct service_spec s[6];
	struct verr e = {};

	(void)state;
	for (int i = 0; i < 6; i++) {
		make_spec(&s[i], names[i], i == 1 ? "/srv/inner.json" : NULL, "[]");
		snprintf(s[i].cgroup, sizeof(s[i].cgroup), "%s", cgs[i]);
	}
	assert_int_equal(spec_check_conflicts(s, 6, &e), -EINVAL);
	assert_verr_is(&e, want, "cgroups");
	verr_free(&e);
	/* "outer-x" beside "outer", and services in their own caelum/<name>: fine */
	assert_int_equal(spec_check_conflicts(&s[2], 2, &e), 0);
	assert_int_equal(spec_check_conflicts(&s[5], 1, &e), 0);
	assert_int_equal(e.n, 0);
	for (int i = 0; i < 6; i++)
		spec_free(&s[i]);
}

/* ---- files and directories ---- */

static void test_load_file(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX], want[PATH_MAX + 128];
	struct service_spec s;
	struct verr e = {};

	write_text(dir, "alpha.json", "{\"name\": \"alpha\", \"ports\": [\"8100\"]}\n", path);
	assert_int_equal(spec_load_file(path, &s, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(s.name, "alpha");
	assert_string_equal(s.source, path);
	assert_int_equal(s.n_ports, 1);
	spec_free(&s);

	/* the name inside must be the file name */
	write_text(dir, "beta.json", "{\"name\": \"alpha\", \"ports\": [\"8100\"]}\n", path);
	assert_int_equal(spec_load_file(path, &s, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s: name: \"alpha\" does not match the file name (expected alpha.json)", path);
	assert_verr_one(&e, want, "name mismatch");
	assert_null(s.ports);
	assert_null(s.source);
	verr_free(&e);

	/* a prefix of the name is not the name */
	write_text(dir, "alph.json", "{\"name\": \"alpha\"}\n", path);
	assert_int_equal(spec_load_file(path, &s, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s: name: \"alpha\" does not match the file name (expected alpha.json)", path);
	assert_verr_one(&e, want, "prefix");
	verr_free(&e);

	/* NAME.json, not NAME plus any five characters */
	write_text(dir, "alpha.yaml", "{\"name\": \"alpha\"}\n", path);
	assert_int_equal(spec_load_file(path, &s, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s: name: \"alpha\" does not match the file name (expected alpha.json)", path);
	assert_verr_one(&e, want, "suffix");
	verr_free(&e);

	/* errors inside name the file */
	write_text(dir, "gamma.json", "{\"name\": \"gamma\", \"ports\": [\"8100\", \"70000\"]}",
		   path);
	assert_int_equal(spec_load_file(path, &s, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s: ports[1]: port 70000 out of range 1-65535", path);
	assert_verr_one(&e, want, "bad port in file");
	verr_free(&e);

	snprintf(path, sizeof(path), "%s/missing.json", dir);
	assert_int_equal(spec_load_file(path, &s, &e), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
	assert_verr_one(&e, want, "missing");
	verr_free(&e);
}

static void test_load_dir_missing(void **state)
{
	struct service_spec *specs = (void *)1;
	char path[PATH_MAX], want[PATH_MAX + 128];
	struct verr e = {};
	size_t n = 99;

	snprintf(path, sizeof(path), "%s/services.d", (const char *)*state);
	assert_int_equal(spec_load_dir(path, &specs, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(e.n, 0);
	specs_free(specs, n);

	/* a file where the directory should be is an error, not an empty set */
	write_text(*state, "file", "x", path);
	assert_int_equal(spec_load_dir(path, &specs, &n, &e), -ENOTDIR);
	snprintf(want, sizeof(want), "%s: cannot read services_dir: Not a directory", path);
	assert_verr_one(&e, want, "not a dir");
	assert_null(specs);
	assert_int_equal(n, 0);
	verr_free(&e);
}

static void test_load_dir_sorted_and_filtered(void **state)
{
	const char *dir = *state;
	struct service_spec *specs;
	struct verr e = {};
	char want[PATH_MAX + 32];
	size_t n;

	write_text(dir, "zeta.json", "{\"name\": \"zeta\", \"ports\": [\"9000\"]}", NULL);
	write_text(dir, "alpha.json", "{\"name\": \"alpha\", \"ports\": [\"8100-8101\"]}", NULL);
	write_text(dir, "mid.json", "{\"name\": \"mid\", \"ports\": [\"8100/udp\"]}", NULL);
	/* ignored: hidden, editor leftovers, other extensions; none of them is valid */
	write_text(dir, ".hidden.json", "{\"name\": \"hidden\", \"ports\": [\"9000\"]}", NULL);
	write_text(dir, "x.json~", "{broken", NULL);
	write_text(dir, "alpha.json.bak", "{broken", NULL);
	write_text(dir, "README", "not json", NULL);
	write_text(dir, ".json", "{broken", NULL);
	assert_int_equal(spec_load_dir(dir, &specs, &n, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(n, 3);
	assert_string_equal(specs[0].name, "alpha");
	assert_string_equal(specs[1].name, "mid");
	assert_string_equal(specs[2].name, "zeta");
	snprintf(want, sizeof(want), "%s/alpha.json", dir);
	assert_string_equal(specs[0].source, want);
	snprintf(want, sizeof(want), "%s/zeta.json", dir);
	assert_string_equal(specs[2].source, want);
	assert_range(&specs[0].ports[0], 8100, 8101, IPPROTO_TCP);
	assert_range(&specs[1].ports[0], 8100, 8100, IPPROTO_UDP);
	specs_free(specs, n);
}

/* Two files claiming one port: both files and both services are named. */
static void test_load_dir_conflict(void **state)
{
	const char *dir = *state;
	char a[PATH_MAX], b[PATH_MAX], want[3 * PATH_MAX];
	struct service_spec *specs = (void *)1;
	struct verr e = {};
	size_t n = 7;

	write_text(dir, "alpha.json", "{\"name\": \"alpha\", \"ports\": [\"7000\", \"8100\"]}", a);
	write_text(dir, "beta.json", "{\"name\": \"beta\", \"ports\": [\"8090-8110\"]}", b);
	assert_int_equal(spec_load_dir(dir, &specs, &n, &e), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s: ports[0]: 8100/tcp conflicts with service 'alpha' (%s: ports[1])", b, a);
	assert_verr_one(&e, want, "dir conflict");
	assert_null(specs);
	assert_int_equal(n, 0);
	verr_free(&e);
}

/* One broken file refuses the whole directory, and the error names that file. */
static void test_load_dir_syntax_error(void **state)
{
	const char *dir = *state;
	char bad[PATH_MAX], want[PATH_MAX + 128];
	struct service_spec *specs = (void *)1;
	struct verr e = {};
	size_t n = 7;

	write_text(dir, "alpha.json", "{\"name\": \"alpha\", \"ports\": [\"8100\"]}", NULL);
	write_text(dir, "beta.json", "{\"name\": \"beta\",\n  \"ports\": [\"8200\"\n", bad);
	write_text(dir, "gamma.json", "{\"name\": \"gamma\", \"ports\": [\"8300\"]}", NULL);
	assert_int_equal(spec_load_dir(dir, &specs, &n, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s: line 3, column 1: unexpected end of input", bad);
	assert_verr_one(&e, want, "syntax in dir");
	assert_null(specs);
	assert_int_equal(n, 0);
	verr_free(&e);
}

/* Every broken file is reported, not just the first. */
static void test_load_dir_all_files_reported(void **state)
{
	const char *dir = *state;
	char a[PATH_MAX], b[PATH_MAX], wa[PATH_MAX + 128], wb[PATH_MAX + 128];
	const char *want[] = { wa, wb, NULL };
	struct service_spec *specs;
	struct verr e = {};
	size_t n;

	write_text(dir, "alpha.json", "{\"name\": \"alpha\", \"ports\": [\"0\"]}", a);
	write_text(dir, "beta.json", "{\"name\": \"gamma\"}", b);
	assert_int_equal(spec_load_dir(dir, &specs, &n, &e), -EINVAL);
	snprintf(wa, sizeof(wa), "%s: ports[0]: port 0 out of range 1-65535", a);
	snprintf(wb, sizeof(wb),
		 "%s: name: \"gamma\" does not match the file name (expected gamma.json)", b);
	assert_verr_is(&e, want, "two bad files");
	verr_free(&e);
}

/* Unit and scope names as systemd and container runtimes make them, and the round trip. */
static void test_cgroup_key(void **state)
{
	static const char *const ok[] = { "system.slice/web.service",
					  "machine.slice/libpod-4f1c.scope/container",
					  "system.slice/getty@tty1.service", "user.slice/a_b:c-d" };
	struct service_spec s, back;
	struct json_object *obj;
	struct verr e = {};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "{\"name\": \"web\", \"cgroup\": \"%s\"}", ok[i]);
		assert_int_equal(parse_spec(text, &s, &e), 0);
		assert_string_equal(s.cgroup, ok[i]);
		obj = spec_to_json(&s);
		assert_int_equal(spec_from_json(obj, "round-trip", &back, &e), 0);
		assert_string_equal(back.cgroup, ok[i]);
		json_object_put(obj);
		spec_free(&s);
		spec_free(&back);
	}
	assert_int_equal(parse_spec("{\"name\": \"web\"}", &s, &e), 0);
	assert_string_equal(s.cgroup, "");
	spec_free(&s);
	assert_int_equal(e.n, 0);
}

#define TD(f) cmocka_unit_test_setup_teardown(f, tmpdir_setup, tmpdir_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_cgroup_key),
		cmocka_unit_test(test_name_lengths),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_several_errors),
		cmocka_unit_test(test_too_many_items),
		cmocka_unit_test(test_good_spec),
		cmocka_unit_test(test_port_count_full_range),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_check_conflicts),
		cmocka_unit_test(test_check_cgroup_conflicts),
		TD(test_load_file),
		TD(test_load_dir_missing),
		TD(test_load_dir_sorted_and_filtered),
		TD(test_load_dir_conflict),
		TD(test_load_dir_syntax_error),
		TD(test_load_dir_all_files_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
