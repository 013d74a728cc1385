// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * caelum.json: every refusal returns -EINVAL (caelumctl exit 78) with the exact
 * "FILE: PATH: message" text; syntax errors name line and column; all errors of a file
 * are reported at once; defaults and resolved values of accepted files.
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
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "jsonv.h"
#include "testutil.h"

#define LABEL "caelum.json"

/* Parse text the way config_load() parses a file, under the name LABEL. */
static int parse_cfg(const char *text, struct config *cfg, struct verr *e)
{
	struct json_object *root;
	int err;

	err = jv_parse_string(LABEL, text, strlen(text), &root, e);
	if (err)
		return err;
	err = config_from_json(root, LABEL, cfg, e);
	json_object_put(root);
	return err;
}

/* Each test gets a zeroed config (first member: *state is a struct config *) and a dir. */
struct cfx {
	struct config cfg;
	char *dir;
};

static int cfg_setup(void **state)
{
	struct cfx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	x->dir = tmpdir_new("config");
	*state = x;
	return 0;
}

static int cfg_teardown(void **state)
{
	struct cfx *x = *state;
	int err = tmpdir_remove(x->dir);

	free(x);
	return err;
}

static const char *test_dir(void **state)
{
	return ((struct cfx *)*state)->dir;
}

struct bad_case {
	const char *json;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	/* unknown keys */
	{ "{\"bogus\": 1}", LABEL ": bogus: unknown key" },
	{ "{\"journal\": {\"size\": 1}}", LABEL ": journal.size: unknown key" },
	{ "{\"Mode\": \"audit\"}", LABEL ": Mode: unknown key" },
	/* wrong types */
	{ "[]", LABEL ": expected object, got array [...]" },
	{ "{\"host\": 42}", LABEL ": host: expected string, got integer 42" },
	{ "{\"mode\": [\"enforce\"]}", LABEL ": mode: expected string, got array [...]" },
	{ "{\"components\": \"ports\"}",
	  LABEL ": components: expected object, got string \"ports\"" },
	{ "{\"components\": {\"ports\": true}}",
	  LABEL ": components.ports: expected string, got boolean true" },
	{ "{\"managed_ports\": \"8100-8199\"}",
	  LABEL ": managed_ports: expected array, got string \"8100-8199\"" },
	{ "{\"managed_ports\": [\"8100\", 8200]}",
	  LABEL ": managed_ports[1]: expected string, got integer 8200" },
	{ "{\"managed_ports\": [{}]}",
	  LABEL ": managed_ports[0]: expected string, got object {...}" },
	{ "{\"state_dir\": 5}", LABEL ": state_dir: expected string, got integer 5" },
	{ "{\"bpffs\": null}", LABEL ": bpffs: expected string, got null" },
	{ "{\"journal\": []}", LABEL ": journal: expected object, got array [...]" },
	{ "{\"journal\": {\"keep\": \"5\"}}",
	  LABEL ": journal.keep: expected integer, got string \"5\"" },
	{ "{\"journal\": {\"keep\": 1.5}}",
	  LABEL ": journal.keep: expected integer, got number 1.5" },
	/* modes and components */
	{ "{\"mode\": \"strict\"}",
	  LABEL ": mode: invalid mode \"strict\" (expected enforce or audit)" },
	{ "{\"mode\": \"off\"}", LABEL ": mode: invalid mode \"off\" (expected enforce or audit)" },
	{ "{\"mode\": \"Enforce\"}",
	  LABEL ": mode: invalid mode \"Enforce\" (expected enforce or audit)" },
	{ "{\"components\": {\"ports\": \"loud\"}}",
	  LABEL ": components.ports: invalid mode \"loud\" (expected enforce, audit or off)" },
	{ "{\"components\": {\"files\": \"audit\"}}", LABEL
	  ": components.files: unknown component \"files\" (known: ports, devices, tasks, cpu, "
	  "databases, bandwidth)" },
	/* host names */
	{ "{\"host\": \"-node\"}", LABEL ": host: invalid host name \"-node\"" },
	{ "{\"host\": \"node-\"}", LABEL ": host: invalid host name \"node-\"" },
	{ "{\"host\": \"node_1\"}", LABEL ": host: invalid host name \"node_1\"" },
	{ "{\"host\": \"a..b\"}", LABEL ": host: invalid host name \"a..b\"" },
	{ "{\"host\": \"node.\"}", LABEL ": host: invalid host name \"node.\"" },
	{ "{\"host\": \"\"}", LABEL ": host: invalid host name \"\"" },
	{ "{\"host\": \"a b\"}", LABEL ": host: invalid host name \"a b\"" },
	/* paths */
	{ "{\"state_dir\": \"var/../etc\"}",
	  LABEL ": state_dir: \"var/../etc\" is not a path without '..'" },
	{ "{\"services_dir\": \"../services.d\"}",
	  LABEL ": services_dir: \"../services.d\" is not a path without '..'" },
	{ "{\"runtime_dir\": \"/run/caelum/..\"}",
	  LABEL ": runtime_dir: \"/run/caelum/..\" is not a path without '..'" },
	{ "{\"bpffs\": \"\"}", LABEL ": bpffs: empty path" },
	/* managed ranges */
	{ "{\"managed_ports\": [\"8200-8100\"]}",
	  LABEL ": managed_ports[0]: range 8200-8100: start is greater than end" },
	{ "{\"managed_ports\": [\"0\"]}", LABEL ": managed_ports[0]: port 0 out of range 1-65535" },
	{ "{\"managed_ports\": [\"8100\", \"70000\"]}",
	  LABEL ": managed_ports[1]: port 70000 out of range 1-65535" },
	{ "{\"managed_ports\": [\"8100-65536\"]}",
	  LABEL ": managed_ports[0]: port 65536 out of range 1-65535" },
	{ "{\"managed_ports\": [\"9000/sctp\"]}",
	  LABEL ": managed_ports[0]: unknown protocol 'sctp' (expected tcp or udp)" },
	{ "{\"managed_ports\": [\"9000/TCP\"]}",
	  LABEL ": managed_ports[0]: unknown protocol 'TCP' (expected tcp or udp)" },
	{ "{\"managed_ports\": [\"http\"]}", LABEL ": managed_ports[0]: invalid port 'http'" },
	{ "{\"managed_ports\": [\"+80\"]}", LABEL ": managed_ports[0]: invalid port '+80'" },
	{ "{\"managed_ports\": [\" 80\"]}", LABEL ": managed_ports[0]: invalid port ' 80'" },
	{ "{\"managed_ports\": [\"8100-\"]}",
	  LABEL ": managed_ports[0]: '8100-': missing port number" },
	{ "{\"managed_ports\": [\"1234567890\"]}",
	  LABEL ": managed_ports[0]: invalid port '1234567890'" },
	{ "{\"managed_ports\": [\"8100-8199\", \"8150/udp\"]}",
	  LABEL ": managed_ports[1]: 8150/udp overlaps managed_ports[0] 8100-8199" },
	{ "{\"managed_ports\": [\"9000/tcp\", \"8000-9000\"]}",
	  LABEL ": managed_ports[1]: 8000-9000 overlaps managed_ports[0] 9000/tcp" },
	/* journal bounds */
	{ "{\"journal\": {\"keep\": 0}}", LABEL ": journal.keep: 0 out of range 1-100" },
	{ "{\"journal\": {\"keep\": 101}}", LABEL ": journal.keep: 101 out of range 1-100" },
	{ "{\"journal\": {\"keep\": -1}}", LABEL ": journal.keep: -1 out of range 1-100" },
	{ "{\"journal\": {\"max_bytes\": 100}}",
	  LABEL ": journal.max_bytes: 100 out of range 4096-17179869184" },
	{ "{\"journal\": {\"max_bytes\": 17179869185}}",
	  LABEL ": journal.max_bytes: 17179869185 out of range 4096-17179869184" },
	/* ring buffer size */
	{ "{\"ringbuf_bytes\": 4095}", LABEL ": ringbuf_bytes: 4095 out of range 4096-268435456" },
	{ "{\"ringbuf_bytes\": 536870912}",
	  LABEL ": ringbuf_bytes: 536870912 out of range 4096-268435456" },
	{ "{\"ringbuf_bytes\": 12288}", LABEL ": ringbuf_bytes: 12288 is not a power of two" },
	{ "{\"ringbuf_bytes\": \"4MiB\"}",
	  LABEL ": ringbuf_bytes: expected integer, got string \"4MiB\"" },
	/* listeners */
	{ "{\"http\": \"127.0.0.1:8090\"}",
	  LABEL ": http: expected object, got string \"127.0.0.1:8090\"" },
	{ "{\"http\": {\"port\": 8090}}", LABEL ": http.port: unknown key" },
	{ "{\"http\": {\"listen\": \"8090\"}}",
	  LABEL ": http.listen: \"8090\": expected \"ADDRESS:PORT\" or \"off\"" },
	{ "{\"http\": {\"listen\": \"example.com:8090\"}}",
	  LABEL ": http.listen: \"example.com:8090\": \"example.com\" is not an IP address" },
	{ "{\"http\": {\"listen\": \"127.0.0.1:70000\"}}",
	  LABEL ": http.listen: \"127.0.0.1:70000\": port \"70000\" is not a number in 0-65535" },
	{ "{\"http\": {\"listen\": 8090}}",
	  LABEL ": http.listen: expected string, got integer 8090" },
	/* the dashboard/API and MCP on one socket: only one of them would answer */
	{ "{\"http\": {\"listen\": \"127.0.0.1:8095\"}, \"mcp\": {\"listen\": \"127.0.0.1:8095\"}}",
	  LABEL
	  ": mcp.listen: \"127.0.0.1:8095\" takes the socket of http.listen \"127.0.0.1:8095\": "
	  "the dashboard/API and MCP need a port each" },
	{ "{\"mcp\": {\"listen\": \"0.0.0.0:8090\"}}", LABEL
	  ": mcp.listen: \"0.0.0.0:8090\" takes the socket of http.listen \"127.0.0.1:8090\": "
	  "the dashboard/API and MCP need a port each" },
	{ "{\"http\": {\"cert\": \"/nonexistent/c.pem\", \"key\": \"/etc/hostname\"}}",
	  LABEL ": http.cert: \"/nonexistent/c.pem\": No such file or directory" },
	{ "{\"http\": {\"cert\": \"/etc/hostname\"}}",
	  LABEL ": http: \"cert\" and \"key\" go together: give both or neither (\"cert\" is given "
		"without \"key\")" },
	{ "{\"http\": {\"origins\": [\"evil.com\"]}}", LABEL
	  ": http.origins[0]: \"evil.com\" is not an origin (scheme://host[:port], no path)" },
	{ "{\"http\": {\"origins\": [\"https://a.example/x\"]}}",
	  LABEL ": http.origins[0]: \"https://a.example/x\" is not an origin "
		"(scheme://host[:port], no path)" },
	{ "{\"http\": {\"hosts\": [\"dash.example.com:8090\"]}}",
	  LABEL ": http.hosts[0]: \"dash.example.com:8090\": not a host name (letters, digits, "
		"'-' in dot-separated labels; no scheme, port or path)" },
	{ "{\"mcp\": {\"hosts\": [\"ok.example\", 7]}}",
	  LABEL ": mcp.hosts[1]: expected string, got integer 7" },
	{ "{\"http\": {\"hosts\": \"dash.example.com\"}}",
	  LABEL ": http.hosts: expected array, got string \"dash.example.com\"" },
	/* Found by fuzz_config: the scheme alone was read past its end. */
	{ "{\"http\": {\"origins\": [\"http://\"]}}",
	  LABEL ": http.origins[0]: \"http://\" is not an origin (scheme://host[:port], no path)" },
	{ "{\"http\": {\"origins\": [\"https://\"]}}", LABEL
	  ": http.origins[0]: \"https://\" is not an origin (scheme://host[:port], no path)" },
	{ "{\"http\": {\"origins\": [\"http://a/\"]}}", LABEL
	  ": http.origins[0]: \"http://a/\" is not an origin (scheme://host[:port], no path)" },
	{ "{\"bpf_stats\": 1}", LABEL ": bpf_stats: expected boolean, got integer 1" },
	{ "{\"mcp\": {\"auth\": \"maybe\"}}",
	  LABEL ": mcp.auth: \"maybe\": expected \"token\" or \"none\"" },
	{ "{\"mcp\": {\"listen\": \"0.0.0.0:8080\", \"auth\": \"none\"}}", LABEL
	  ": mcp.auth: \"none\" is only allowed on a loopback listener, not on 0.0.0.0:8080" },
	{ "{\"mcp\": {\"peers\": [{\"url\": \"ftp://x/y\"}]}}",
	  LABEL ": mcp.peers[0].url: \"ftp://x/y\": the scheme must be ws, wss, http or https" },
	{ "{\"mcp\": {\"peers\": [{\"token_file\": \"/etc/hostname\"}]}}",
	  LABEL ": mcp.peers[0].url: missing required key" },
	{ "{\"mcp\": {\"peers\": [{\"url\": \"ws://b:1/mcp\", \"queue_max\": 5}]}}",
	  LABEL ": mcp.peers[0].queue_max: 5 out of range 10-1000000" },
	{ "{\"mcp\": {\"peers\": {}}}", LABEL ": mcp.peers: expected array, got object {...}" },
	{ "{\"mcp\": {\"peer\": []}}", LABEL ": mcp.peer: unknown key" },
	{ "{\"mcp\": {\"peers\": \"all\"}}",
	  LABEL ": mcp.peers: \"all\": expected an array of peers or \"auto\"" },
	{ "{\"mcp\": {\"peers\": \"auto\"}}",
	  LABEL ": mcp.peers: \"auto\" needs the etcd backend (the machine registry): "
		"registry.backend is \"file\"" },
	{ "{\"mcp\": {\"peers\": [], \"peers_token_file\": \"/etc/hostname\"}}",
	  LABEL ": mcp.peers_token_file: only with \"peers\": \"auto\"" },
	/* network namespaces (existence is checked by config_resolve) */
	{ "{\"network_namespaces\": \"/run/netns/a\"}",
	  LABEL ": network_namespaces: expected array, got string \"/run/netns/a\"" },
	{ "{\"network_namespaces\": [7]}",
	  LABEL ": network_namespaces[0]: expected string, got integer 7" },
	{ "{\"network_namespaces\": [\"/run/netns/a\", \"/run/netns/a\"]}",
	  LABEL ": network_namespaces[1]: \"/run/netns/a\" is listed twice" },
	{ "{\"network_namespaces\": [\"/a\",\"/b\",\"/c\",\"/d\",\"/e\",\"/f\",\"/g\",\"/h\","
	  "\"/i\",\"/j\",\"/k\",\"/l\",\"/m\",\"/n\",\"/o\",\"/p\"]}",
	  LABEL ": network_namespaces: 16 namespaces, at most 15" },
	/* registry */
	{ "{\"registry\": \"etcd\"}", LABEL ": registry: expected object, got string \"etcd\"" },
	{ "{\"registry\": {\"backend\": \"consul\"}}",
	  LABEL ": registry.backend: \"consul\": expected \"file\" or \"etcd\"" },
	{ "{\"registry\": {\"backend\": \"etcd\"}}",
	  LABEL ": registry.endpoints: missing required key (backend \"etcd\")" },
	{ "{\"registry\": {\"backend\": \"file\", \"prefix\": \"x/\"}}",
	  LABEL ": registry.prefix: only with \"backend\": \"etcd\" (the backend is \"file\")" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": []}}",
	  LABEL ": registry.endpoints: 0 endpoints, expected 1 to 8" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"10.0.0.1:2379\"]}}",
	  LABEL ": registry.endpoints[0]: \"10.0.0.1:2379\": expected http://HOST:PORT or "
		"https://HOST:PORT" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379/v3\"]}}",
	  LABEL ": registry.endpoints[0]: \"http://a:2379/v3\": no path expected after the port" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\", "
	  "\"http://a:2379\"]}}",
	  LABEL ": registry.endpoints[1]: \"http://a:2379\" is listed twice" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\"], \"prefix\": "
	  "\"caelum\"}}",
	  LABEL ": registry.prefix: \"caelum\": must end with '/'" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\"], \"prefix\": "
	  "\"a b/\"}}",
	  LABEL ": registry.prefix: \"a b/\": only printable characters without spaces" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\"], "
	  "\"lease_ttl_s\": 2}}",
	  LABEL ": registry.lease_ttl_s: 2 out of range 5-3600" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\"], "
	  "\"timeout_ms\": \"5s\"}}",
	  LABEL ": registry.timeout_ms: expected integer, got string \"5s\"" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\"], "
	  "\"username\": \"n\"}}",
	  LABEL ": registry.password_file: missing: \"username\" needs it" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://a:2379\"], \"tls\": "
	  "{\"ca\": \"/c\"}}}",
	  LABEL ": registry.endpoints[0]: \"http://a:2379\": \"tls\" is set, expected https://" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"https://a:2379\"], \"tls\": "
	  "{\"cert\": \"/c\"}}}",
	  LABEL ": registry.tls: \"cert\" and \"key\" go together (\"cert\" is given without "
		"\"key\")" },
	{ "{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"https://a:2379\"], \"tls\": "
	  "{\"crt\": \"/c\"}}}",
	  LABEL ": registry.tls.crt: unknown key" },
	{ "{\"registry\": {\"backend\": \"file\", \"endpoint\": [\"http://a:2379\"]}}",
	  LABEL ": registry.endpoint: unknown key" },
	/* JSON syntax */
	{ "{\n  \"host\": \"node1\",\n  \"mode\": \"audit\"\n  \"bpffs\": \"/x\"\n}\n",
	  LABEL ": line 4, column 3: object value separator ',' expected" },
	{ "{\"mode\": \"audit\"} x", LABEL ": line 1, column 19: unexpected character" },
	{ "{\"mode\": \"audit\"}\n{\"mode\": \"enforce\"}",
	  LABEL ": line 2, column 1: unexpected character" },
	{ "{\"mode\": \"audit\"", LABEL ": line 1, column 17: unexpected end of input" },
	{ "{\n\"managed_ports\": [\"8100\",\n",
	  LABEL ": line 3, column 1: unexpected end of input" },
	{ "", LABEL ": line 1, column 1: unexpected end of input" },
	{ "{\"mode\": \"audit\",}", LABEL ": line 1, column 18: unexpected character" },
	{ "{\"mode\": \"audit\"]",
	  LABEL ": line 1, column 17: object value separator ',' expected" },
	{ "{\"mode\": audit}", LABEL ": line 1, column 10: unexpected character" },
};

static void test_bad_inputs(void **state)
{
	struct config *cfg = *state;

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct verr e = {};
		char what[256];
		int err = parse_cfg(bad_cases[i].json, cfg, &e);

		snprintf(what, sizeof(what), "case %zu %s", i, bad_cases[i].json);
		if (err != -EINVAL)
			fail_msg("%s: returned %d, expected -EINVAL", what, err);
		assert_verr_one(&e, bad_cases[i].msg, what);
		verr_free(&e);
	}
}

static void test_host_too_long(void **state)
{
	struct config *cfg = *state;
	char json[512], host[301];
	struct verr e = {};

	memset(host, 'a', 300);
	host[300] = '\0';
	snprintf(json, sizeof(json), "{\"host\": \"%s\"}", host);
	assert_int_equal(parse_cfg(json, cfg, &e), -EINVAL);
	assert_verr_one(&e,
			LABEL
			": host: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is too long (300 bytes, "
			"at most 255)",
			"long host");
	verr_free(&e);

	/* 64-character label: one over the RFC 1123 limit */
	memset(host, 'a', 64);
	host[64] = '\0';
	snprintf(json, sizeof(json), "{\"host\": \"%s.example\"}", host);
	assert_int_equal(parse_cfg(json, cfg, &e), -EINVAL);
	snprintf(json, sizeof(json), LABEL ": host: invalid host name \"%s.example\"", host);
	assert_verr_one(&e, json, "64-char label");
	verr_free(&e);
}

/* Every problem of a file is reported (top-level keys in document order), not just the first. */
static void test_all_errors_reported(void **state)
{
	static const char *const want[] = {
		LABEL ": bogus: unknown key",
		LABEL ": mode: invalid mode \"x\" (expected enforce or audit)",
		LABEL ": managed_ports[0]: port 0 out of range 1-65535",
		LABEL ": managed_ports[1]: port 70000 out of range 1-65535",
		LABEL ": journal.max_bytes: 100 out of range 4096-17179869184",
		LABEL ": journal.keep: 0 out of range 1-100",
		LABEL ": host: invalid host name \"bad_host\"",
		NULL,
	};
	struct config *cfg = *state;
	struct verr e = {};
	char *joined;

	assert_int_equal(parse_cfg("{\"bogus\": 1, \"mode\": \"x\", "
				   "\"managed_ports\": [\"0\", \"70000\", \"8100\"], "
				   "\"journal\": {\"keep\": 0, \"max_bytes\": 100}, "
				   "\"host\": \"bad_host\"}",
				   cfg, &e),
			 -EINVAL);
	assert_int_equal(e.n, 7);
	assert_verr_is(&e, want, "several errors");
	joined = verr_join(&e);
	assert_non_null(joined);
	assert_string_equal(joined + strlen(joined) - strlen(want[6]), want[6]);
	assert_int_equal(strncmp(joined, want[0], strlen(want[0])), 0);
	assert_int_equal(joined[strlen(want[0])], '\n');
	free(joined);
	verr_free(&e);
}

/*
 * The path of an overlap message is the item's index in the file, even when an earlier
 * item was refused and left out of cfg->managed.
 */
static void test_overlap_index_after_bad_item(void **state)
{
	static const char *const want[] = {
		LABEL ": managed_ports[0]: invalid port 'x'",
		LABEL ": managed_ports[2]: 8100/udp overlaps managed_ports[1] 8100",
		NULL,
	};
	struct config *cfg = *state;
	struct verr e = {};

	assert_int_equal(parse_cfg("{\"managed_ports\": [\"x\", \"8100\", \"8100/udp\"]}", cfg, &e),
			 -EINVAL);
	assert_verr_is(&e, want, "overlap after a bad item");
	verr_free(&e);
}

/* More than VERR_MAX problems: the first VERR_MAX are kept, the rest counted. */
static void test_error_overflow_counted(void **state)
{
	struct config *cfg = *state;
	size_t len = 0, cap = 16 + (VERR_MAX + 6) * 8;
	char *json = malloc(cap), *joined;
	struct verr e = {};

	assert_non_null(json);
	len += snprintf(json + len, cap - len, "{\"managed_ports\": [");
	for (int i = 0; i < VERR_MAX + 6; i++)
		len += snprintf(json + len, cap - len, "%s\"0\"", i ? "," : "");
	snprintf(json + len, cap - len, "]}");
	assert_int_equal(parse_cfg(json, cfg, &e), -EINVAL);
	assert_int_equal(e.n, VERR_MAX);
	assert_int_equal(e.dropped, 6);
	assert_string_equal(e.msgs[VERR_MAX - 1],
			    LABEL ": managed_ports[63]: port 0 out of range 1-65535");
	joined = verr_join(&e);
	assert_non_null(joined);
	assert_string_equal(strrchr(joined, '\n'), "\n(6 more errors)");
	free(joined);
	free(json);
	verr_free(&e);
}

static void test_defaults(void **state)
{
	struct config *cfg = *state;
	struct verr e = {};
	char host[256] = "";

	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_int_equal(parse_cfg("{}", cfg, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->path, LABEL);
	assert_string_equal(cfg->host, host);
	assert_int_equal(cfg->mode, CAELUM_MODE_ENFORCE);
	for (int c = 0; c < CAELUM_COMP_MAX; c++)
		assert_int_equal(cfg->comp_mode[c], CAELUM_MODE_ENFORCE);
	assert_string_equal(cfg->bpffs, "/sys/fs/bpf/caelum");
	assert_string_equal(cfg->state_dir, "/var/lib/caelum");
	assert_string_equal(cfg->runtime_dir, "/run/caelum");
	assert_string_equal(cfg->services_dir, "/etc/caelum/services.d");
	assert_string_equal(cfg->cgroup_root_cfg, "");
	assert_int_equal(cfg->n_managed, 0);
	assert_int_equal(cfg->journal_max_bytes, 16U << 20);
	assert_int_equal(cfg->journal_keep, 5);
	assert_int_equal(cfg->ringbuf_bytes, CAELUM_RINGBUF_BYTES);
}

static void test_modes_resolved(void **state)
{
	static const struct {
		const char *json;
		int mode, ports;
	} cases[] = {
		{ "{\"mode\": \"audit\"}", CAELUM_MODE_AUDIT, CAELUM_MODE_AUDIT },
		{ "{\"mode\": \"enforce\"}", CAELUM_MODE_ENFORCE, CAELUM_MODE_ENFORCE },
		{ "{\"mode\": \"audit\", \"components\": {\"ports\": \"off\"}}", CAELUM_MODE_AUDIT,
		  CAELUM_MODE_OFF },
		{ "{\"components\": {\"ports\": \"audit\"}}", CAELUM_MODE_ENFORCE,
		  CAELUM_MODE_AUDIT },
		{ "{\"mode\": \"audit\", \"components\": {\"ports\": \"enforce\"}}",
		  CAELUM_MODE_AUDIT, CAELUM_MODE_ENFORCE },
		{ "{\"mode\": \"audit\", \"components\": {}}", CAELUM_MODE_AUDIT,
		  CAELUM_MODE_AUDIT },
	};
	struct config *cfg = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct verr e = {};

		assert_int_equal(parse_cfg(cases[i].json, cfg, &e), 0);
		assert_int_equal(e.n, 0);
		assert_int_equal(cfg->mode, cases[i].mode);
		assert_int_equal(cfg->comp_mode[CAELUM_COMP_PORTS], cases[i].ports);
		/* components this build does not know follow the global mode */
		for (int c = CAELUM_COMP_PORTS + 1; c < CAELUM_COMP_MAX; c++)
			assert_int_equal(cfg->comp_mode[c], cases[i].mode);
	}
}

static void test_values_accepted(void **state)
{
	struct config *cfg = *state;
	struct verr e = {};

	assert_int_equal(parse_cfg("{\"host\": \"node-1.Example.com\", "
				   "\"bpffs\": \"/sys/fs/bpf/c2/\", \"state_dir\": \"/srv//\", "
				   "\"runtime_dir\": \"/\", \"cgroup_root\": \"/sys/fs/cgroup/x\", "
				   "\"managed_ports\": [\"8100-8199\", \"9000/udp\", \"9000/tcp\", "
				   "\"1\", \"65535/udp\"], "
				   "\"journal\": {\"max_bytes\": 4096, \"keep\": 100}}",
				   cfg, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->host, "node-1.Example.com");
	assert_string_equal(cfg->bpffs, "/sys/fs/bpf/c2");
	assert_string_equal(cfg->state_dir, "/srv");
	assert_string_equal(cfg->runtime_dir, "/");
	assert_string_equal(cfg->cgroup_root_cfg, "/sys/fs/cgroup/x");
	assert_int_equal(cfg->n_managed, 5);
	assert_int_equal(cfg->managed[0].lo, 8100);
	assert_int_equal(cfg->managed[0].hi, 8199);
	assert_int_equal(cfg->managed[0].proto, PROTO_BOTH);
	assert_int_equal(cfg->managed[1].lo, 9000);
	assert_int_equal(cfg->managed[1].hi, 9000);
	assert_int_equal(cfg->managed[1].proto, IPPROTO_UDP);
	assert_int_equal(cfg->managed[2].proto, IPPROTO_TCP);
	assert_int_equal(cfg->managed[3].lo, 1);
	assert_int_equal(cfg->managed[3].proto, PROTO_BOTH);
	assert_int_equal(cfg->managed[4].hi, 65535);
	assert_int_equal(cfg->journal_max_bytes, 4096);
	assert_int_equal(cfg->journal_keep, 100);

	assert_int_equal(
		parse_cfg("{\"journal\": {\"max_bytes\": 17179869184, \"keep\": 1}}", cfg, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(cfg->journal_max_bytes, 1ULL << 34);
	assert_int_equal(cfg->journal_keep, 1);

	assert_int_equal(
		parse_cfg("{\"http\": {\"hosts\": [\"dash.example.com\", \"*.corp.example\", "
			  "\"[fe80::1]\"]}}",
			  cfg, &e),
		0);
	assert_int_equal(cfg->http.n_hosts, 3);
	assert_string_equal(cfg->http.hosts[1], "*.corp.example");
	assert_int_equal(cfg->mcp.n_hosts, 0);

	assert_int_equal(parse_cfg("{\"ringbuf_bytes\": 4096}", cfg, &e), 0);
	assert_int_equal(cfg->ringbuf_bytes, 4096);
	assert_int_equal(parse_cfg("{\"ringbuf_bytes\": 268435456}", cfg, &e), 0);
	assert_int_equal(cfg->ringbuf_bytes, 1U << 28);
	assert_int_equal(e.n, 0);
}

/* A 63-character label is the longest allowed. */
static void test_registry_accepted(void **state)
{
	struct config *cfg = *state;
	struct verr e = {};

	assert_int_equal(parse_cfg("{}", cfg, &e), 0);
	assert_false(cfg->registry.etcd);
	assert_string_equal(cfg->registry.prefix, "caelum/");
	assert_int_equal(cfg->registry.lease_ttl_s, 10);
	assert_int_equal(cfg->registry.timeout_ms, 5000);
	assert_int_equal(parse_cfg("{\"registry\": {\"backend\": \"etcd\", \"endpoints\": "
				   "[\"http://10.0.0.1:2379\", \"https://[::1]:2379/\"], "
				   "\"prefix\": \"p/q/\", \"username\": \"node-a\", "
				   "\"password_file\": \"/etc/caelum/etcd.pass\", "
				   "\"tls\": {\"ca\": \"/etc/ca.pem\"}, \"lease_ttl_s\": 5, "
				   "\"timeout_ms\": 500}}",
				   cfg, &e),
			 -EINVAL);
	/* tls with an http:// endpoint is refused; the same with https only is fine */
	verr_free(&e);
	assert_int_equal(parse_cfg("{\"registry\": {\"backend\": \"etcd\", \"endpoints\": "
				   "[\"https://10.0.0.1:2379\", \"https://[::1]:2379/\"], "
				   "\"prefix\": \"p/q/\", \"username\": \"node-a\", "
				   "\"password_file\": \"/etc/caelum/etcd.pass\", "
				   "\"tls\": {\"ca\": \"/etc/ca.pem\"}, \"lease_ttl_s\": 5, "
				   "\"timeout_ms\": 500}}",
				   cfg, &e),
			 0);
	assert_true(cfg->registry.etcd);
	assert_int_equal(cfg->registry.n_endpoints, 2);
	assert_string_equal(cfg->registry.endpoints[1], "https://[::1]:2379");
	assert_string_equal(cfg->registry.prefix, "p/q/");
	assert_string_equal(cfg->registry.password_file, "/etc/caelum/etcd.pass");
	assert_string_equal(cfg->registry.ca, "/etc/ca.pem");
	assert_int_equal(cfg->registry.lease_ttl_s, 5);
	assert_int_equal(cfg->registry.timeout_ms, 500);
}

static void test_host_label_63(void **state)
{
	struct config *cfg = *state;
	char json[128], host[64];
	struct verr e = {};

	memset(host, 'z', 63);
	host[63] = '\0';
	snprintf(json, sizeof(json), "{\"host\": \"%s\"}", host);
	assert_int_equal(parse_cfg(json, cfg, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->host, host);
}

/* Relative paths are resolved against the directory of the config file, not the cwd. */
static void test_relative_path_from_file(void **state)
{
	struct config *cfg = *state;
	const char *dir = test_dir(state);
	char real[PATH_MAX], sub[PATH_MAX], path[PATH_MAX];
	char want[PATH_MAX + 32];
	struct verr e = {};

	snprintf(sub, sizeof(sub), "%s/etc", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_text(sub, "caelum.json",
		   "{\"services_dir\": \"services.d/\", \"state_dir\": \"./state\"}\n", path);
	assert_non_null(realpath(sub, real));
	assert_int_equal(config_load(path, cfg, &e), 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->path, path);
	snprintf(want, sizeof(want), "%s/services.d", real);
	assert_string_equal(cfg->services_dir, want);
	snprintf(want, sizeof(want), "%s/./state", real);
	assert_string_equal(cfg->state_dir, want);
}

/* A label that is not a file (tests, stdin) resolves against the working directory. */
static void test_relative_path_from_label(void **state)
{
	struct config *cfg = *state;
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	struct json_object *root = json_tokener_parse("{\"services_dir\": \"svc\"}");
	struct verr e = {};

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(config_from_json(root, "no/such/caelum.json", cfg, &e), 0);
	snprintf(want, sizeof(want), "%s/svc", cwd);
	assert_string_equal(cfg->services_dir, want);
	json_object_put(root);
}

static void test_load_file_errors(void **state)
{
	struct config *cfg = *state;
	const char *dir = test_dir(state);
	char path[PATH_MAX], want[PATH_MAX + 128];
	struct verr e = {};

	/* missing file: the errno, not -EINVAL */
	snprintf(path, sizeof(path), "%s/none.json", dir);
	assert_int_equal(config_load(path, cfg, &e), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
	assert_verr_one(&e, want, "missing file");
	verr_free(&e);

	/* a directory */
	assert_int_equal(config_load(dir, cfg, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file of at most 4194304 bytes", dir);
	assert_verr_one(&e, want, "directory");
	verr_free(&e);

	/* a syntax error names the real file */
	write_text(dir, "caelum.json",
		   "{\n  \"mode\": \"audit\",\n  \"host\": \"a\"\n  \"x\": 1\n}\n", path);
	assert_int_equal(config_load(path, cfg, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s: line 4, column 3: object value separator ',' expected",
		 path);
	assert_verr_one(&e, want, "syntax");
	verr_free(&e);

	/* a validation error too */
	write_text(dir, "caelum.json", "{\"managed_ports\": [\"8100\", \"70000\"]}", path);
	assert_int_equal(config_load(path, cfg, &e), -EINVAL);
	snprintf(want, sizeof(want), "%s: managed_ports[1]: port 70000 out of range 1-65535", path);
	assert_verr_one(&e, want, "validation");
	verr_free(&e);
}

/* Messages added before the call (an earlier file) do not make a good file fail. */
static void test_prior_errors_ignored(void **state)
{
	struct config *cfg = *state;
	struct verr e = {};

	verr_add(&e, "other.json", "x", "earlier problem");
	assert_int_equal(parse_cfg("{\"mode\": \"audit\"}", cfg, &e), 0);
	assert_int_equal(e.n, 1);
	assert_int_equal(cfg->mode, CAELUM_MODE_AUDIT);
	verr_free(&e);
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(mode_parse("enforce"), CAELUM_MODE_ENFORCE);
	assert_int_equal(mode_parse("audit"), CAELUM_MODE_AUDIT);
	assert_int_equal(mode_parse("off"), CAELUM_MODE_OFF);
	assert_int_equal(mode_parse("unset"), -1);
	assert_int_equal(mode_parse(""), -1);
	assert_string_equal(mode_name(CAELUM_MODE_ENFORCE), "enforce");
	assert_string_equal(mode_name(CAELUM_MODE_AUDIT), "audit");
	assert_string_equal(mode_name(CAELUM_MODE_OFF), "off");
	assert_string_equal(mode_name(CAELUM_MODE_UNSET), "unset");
	assert_int_equal(component_parse("ports"), CAELUM_COMP_PORTS);
	assert_int_equal(component_parse("Ports"), -1);
	assert_string_equal(component_name(CAELUM_COMP_PORTS), "ports");
	assert_string_equal(component_name(-1), "unknown");
	assert_string_equal(component_name(component_count()), "unknown");
	assert_int_equal(component_parse("devices"), CAELUM_COMP_DEVICES);
	assert_int_equal(component_parse("tasks"), CAELUM_COMP_TASKS);
	assert_int_equal(component_parse("cpu"), CAELUM_COMP_CPU);
	assert_string_equal(component_name(CAELUM_COMP_CPU), "cpu");
	assert_int_equal(component_parse("databases"), CAELUM_COMP_DATABASES);
	assert_int_equal(component_parse("bandwidth"), CAELUM_COMP_BANDWIDTH);
	assert_string_equal(component_name(CAELUM_COMP_BANDWIDTH), "bandwidth");
	assert_int_equal(component_count(), 6);
}

static void test_config_path(void **state)
{
	char sock[PATH_MAX];
	struct config *cfg = *state;

	assert_int_equal(setenv("CAELUM_CONFIG", "/env/caelum.json", 1), 0);
	assert_string_equal(config_path("/x/c.json"), "/x/c.json");
	assert_string_equal(config_path(NULL), "/env/caelum.json");
	assert_int_equal(setenv("CAELUM_CONFIG", "", 1), 0);
	assert_string_equal(config_path(NULL), CONFIG_DEFAULT_PATH);
	assert_int_equal(unsetenv("CAELUM_CONFIG"), 0);
	assert_string_equal(config_path(NULL), "/etc/caelum/caelum.json");

	strcpy(cfg->runtime_dir, "/run/x");
	config_socket_path(cfg, sock, sizeof(sock));
	assert_string_equal(sock, "/run/x/caelumd.sock");
}

#define T(f) cmocka_unit_test_setup_teardown(f, cfg_setup, cfg_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_bad_inputs),
		T(test_host_too_long),
		T(test_all_errors_reported),
		T(test_overlap_index_after_bad_item),
		T(test_error_overflow_counted),
		T(test_defaults),
		T(test_modes_resolved),
		T(test_values_accepted),
		T(test_host_label_63),
		T(test_registry_accepted),
		T(test_relative_path_from_file),
		T(test_relative_path_from_label),
		T(test_load_file_errors),
		T(test_prior_errors_ignored),
		T(test_names),
		T(test_config_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
