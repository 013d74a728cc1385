// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd's JSON gateway as etcd 3.4.23 writes it (the answers below were captured from it):
 * base64 keys and values, int64 as strings, fields at their default omitted (a failed txn
 * has no "succeeded", a PUT event no "type", an expired lease's keepalive no "TTL"), a
 * watch from a compacted revision canceled with "compact_revision", errors in both shapes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "etcd.h"

static struct json_object *parse(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

static void test_base64(void **state)
{
	static const struct {
		const char *plain, *enc;
	} cases[] = { { "", "" },	 { "f", "Zg==" },   { "fo", "Zm8=" },
		      { "foo", "Zm9v" }, { "p/a", "cC9h" }, { "{\"x\":1}", "eyJ4IjoxfQ==" } };
	char *out;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = etcd_b64_encode(cases[i].plain, strlen(cases[i].plain));

		assert_string_equal(e, cases[i].enc);
		free(e);
		assert_int_equal(etcd_b64_decode(cases[i].enc, &out, &len), 0);
		assert_int_equal(len, strlen(cases[i].plain));
		assert_string_equal(out, cases[i].plain);
		free(out);
	}
	/* the "\0" range end of "every key" */
	out = etcd_b64_encode("", 1);
	assert_string_equal(out, "AA==");
	free(out);
	assert_int_equal(etcd_b64_decode("Zm9v!", &out, &len), -EINVAL);
	assert_int_equal(etcd_b64_decode("Zg===", &out, &len), -EINVAL);
}

static void test_prefix_end(void **state)
{
	char buf[64];
	size_t len;

	(void)state;
	assert_string_equal(etcd_prefix_end("caelum/", buf, sizeof(buf), &len), "caelum0");
	assert_int_equal(len, 7);
	etcd_prefix_end("", buf, sizeof(buf), &len);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], '\0');
}

static void test_u64(void **state)
{
	struct json_object *o = parse("{\"a\":\"42\",\"b\":7,\"c\":\"-1\",\"d\":\"x\",\"e\":true}");
	uint64_t v = 99;

	(void)state;
	assert_int_equal(etcd_json_u64(o, "a", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(etcd_json_u64(o, "b", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(etcd_json_u64(o, "missing", &v), 0); /* omitted default */
	assert_int_equal(v, 0);
	assert_int_equal(etcd_json_u64(o, "c", &v), -EINVAL);
	assert_int_equal(etcd_json_u64(o, "d", &v), -EINVAL);
	assert_int_equal(etcd_json_u64(o, "e", &v), -EINVAL);
	json_object_put(o);
}

static void test_range(void **state)
{
	struct json_object *o =
		parse("{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":"
		      "\"3319814642761637952\","
		      "\"revision\":\"2\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"cC9h\",\"create_"
		      "revision\":\"2\","
		      "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"eyJ4IjoxfQ==\"},"
		      "{\"key\":\"cC9i\",\"create_revision\":\"2\",\"mod_revision\":\"2\","
		      "\"version\":\"1\","
		      "\"lease\":\"7587879\"}],\"count\":\"2\"}");
	struct etcd_kv *kvs;
	uint64_t rev;
	size_t n;

	(void)state;
	assert_int_equal(etcd_parse_range(o, &kvs, &n, &rev), 0);
	assert_int_equal(rev, 2);
	assert_int_equal(n, 2);
	assert_string_equal(kvs[0].key, "p/a");
	assert_string_equal(kvs[0].value, "{\"x\":1}");
	assert_int_equal(kvs[0].mod_rev, 2);
	assert_int_equal(kvs[0].lease, 0);
	assert_string_equal(kvs[1].value, ""); /* an empty value is omitted */
	assert_int_equal(kvs[1].lease, 7587879);
	etcd_kvs_free(kvs, n);
	json_object_put(o);

	/* no keys: "kvs" and "count" omitted */
	o = parse("{\"header\":{\"revision\":\"3\",\"raft_term\":\"2\"}}");
	assert_int_equal(etcd_parse_range(o, &kvs, &n, &rev), 0);
	assert_int_equal(n, 0);
	assert_int_equal(rev, 3);
	etcd_kvs_free(kvs, n);
	json_object_put(o);

	/* a key that is not base64, or without mod_revision, is refused */
	o = parse("{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"**\",\"mod_revision\":"
		  "\"1\"}]}");
	assert_int_equal(etcd_parse_range(o, &kvs, &n, &rev), -EINVAL);
	json_object_put(o);
	o = parse("{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"cC9h\"}]}");
	assert_int_equal(etcd_parse_range(o, &kvs, &n, &rev), -EINVAL);
	json_object_put(o);
	o = parse("{\"kvs\":[]}");
	assert_int_equal(etcd_parse_range(o, &kvs, &n, &rev), -EINVAL); /* no header */
	json_object_put(o);
}

static void test_txn(void **state)
{
	struct json_object *o;
	bool ok = true;
	uint64_t rev;

	(void)state;
	/* compare failed: no "succeeded" at all */
	o = parse("{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"2\",\"raft_"
		  "term\":\"2\"}}");
	assert_int_equal(etcd_parse_txn(o, &ok, &rev), 0);
	assert_false(ok);
	assert_int_equal(rev, 2);
	json_object_put(o);
	o = parse("{\"header\":{\"revision\":\"3\",\"raft_term\":\"2\"},\"succeeded\":true,"
		  "\"responses\":"
		  "[{\"response_put\":{\"header\":{\"revision\":\"3\"}}}]}");
	assert_int_equal(etcd_parse_txn(o, &ok, &rev), 0);
	assert_true(ok);
	assert_int_equal(rev, 3);
	json_object_put(o);
	o = parse("{\"header\":{\"revision\":\"3\"},\"succeeded\":\"yes\"}");
	assert_int_equal(etcd_parse_txn(o, &ok, &rev), -EINVAL);
	json_object_put(o);
}

static void test_keepalive(void **state)
{
	struct json_object *o;
	int64_t ttl = -1;

	(void)state;
	o = parse(
		"{\"result\":{\"header\":{\"revision\":\"4\"},\"ID\":\"7587879\",\"TTL\":\"10\"}}");
	assert_int_equal(etcd_parse_keepalive(o, &ttl), 0);
	assert_int_equal(ttl, 10);
	json_object_put(o);
	/* expired: no TTL */
	o = parse(
		"{\"result\":{\"header\":{\"revision\":\"4\",\"raft_term\":\"2\"},\"ID\":\"1\"}}");
	assert_int_equal(etcd_parse_keepalive(o, &ttl), 0);
	assert_int_equal(ttl, 0);
	json_object_put(o);
}

static void test_errors(void **state)
{
	struct json_object *o;
	char msg[128];

	(void)state;
	o = parse("{\"error\":\"etcdserver: authentication is not enabled\","
		  "\"message\":\"etcdserver: authentication is not enabled\",\"code\":9}");
	assert_int_equal(etcd_json_error(o, msg, sizeof(msg)), -EPERM);
	assert_string_equal(msg, "etcdserver: authentication is not enabled");
	json_object_put(o);
	o = parse("{\"error\":\"etcdserver: invalid auth token\",\"code\":16}");
	assert_int_equal(etcd_json_error(o, msg, sizeof(msg)), -EKEYEXPIRED);
	json_object_put(o);
	o = parse("{\"error\":\"etcdserver: request timed out\",\"code\":2}");
	assert_int_equal(etcd_json_error(o, msg, sizeof(msg)), -ETIMEDOUT);
	assert_true(etcd_unavailable(etcd_json_error(o, NULL, 0)));
	json_object_put(o);
	o = parse("{\"error\":\"etcdserver: requested lease not found\",\"code\":5}");
	assert_int_equal(etcd_json_error(o, msg, sizeof(msg)), -ENOENT);
	assert_false(etcd_unavailable(-ENOENT));
	json_object_put(o);
	o = parse("{\"header\":{\"revision\":\"1\"}}");
	assert_int_equal(etcd_json_error(o, msg, sizeof(msg)), 0);
	json_object_put(o);
}

static void test_watch(void **state)
{
	struct etcd_watch_msg m;
	const char *line;

	(void)state;
	line = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":"
	       "\"3\","
	       "\"raft_term\":\"2\"},\"created\":true}}";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), 0);
	assert_true(m.created);
	assert_false(m.canceled);
	assert_int_equal(m.header_rev, 3);
	assert_int_equal(m.raft_term, 2);
	assert_int_equal(m.n_ev, 0);
	etcd_watch_msg_free(&m);

	/* a PUT has no "type"; a DELETE's kv has key and mod_revision only */
	line = "{\"result\":{\"header\":{\"revision\":\"5\",\"raft_term\":\"3\"},\"events\":["
	       "{\"kv\":{\"key\":\"cC9j\",\"create_revision\":\"4\",\"mod_revision\":\"4\","
	       "\"version\":\"1\",\"value\":\"dg==\"}},"
	       "{\"type\":\"DELETE\",\"kv\":{\"key\":\"cC9h\",\"mod_revision\":\"5\"}}]}}";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), 0);
	assert_int_equal(m.n_ev, 2);
	assert_false(m.ev[0].del);
	assert_string_equal(m.ev[0].key, "p/c");
	assert_string_equal(m.ev[0].value, "v");
	assert_int_equal(m.ev[0].mod_rev, 4);
	assert_true(m.ev[1].del);
	assert_string_equal(m.ev[1].key, "p/a");
	assert_null(m.ev[1].value);
	assert_int_equal(m.ev[1].mod_rev, 5);
	assert_int_equal(m.raft_term, 3);
	etcd_watch_msg_free(&m);

	/* from a compacted revision: canceled, compact_revision, no header revision */
	line = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"raft_term\":"
	       "\"2\"},"
	       "\"canceled\":true,\"compact_revision\":\"3\"}}";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), 0);
	assert_true(m.canceled);
	assert_int_equal(m.compact_rev, 3);
	assert_int_equal(m.header_rev, 0);
	etcd_watch_msg_free(&m);

	/* canceled for another reason (no leader) */
	line = "{\"result\":{\"header\":{},\"canceled\":true,\"cancel_reason\":\"etcdserver: no "
	       "leader\"}}";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), 0);
	assert_true(m.canceled);
	assert_int_equal(m.compact_rev, 0);
	assert_string_equal(m.reason, "etcdserver: no leader");
	etcd_watch_msg_free(&m);

	/* an error in the stream */
	line = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
	       "leader\","
	       "\"http_status\":\"Service Unavailable\"}}";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), 0);
	assert_int_equal(m.error, -ETIMEDOUT);
	assert_string_equal(m.reason, "etcdserver: no leader");
	etcd_watch_msg_free(&m);

	/* malformed */
	line = "{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":\"cC9h\",\"mod_"
	       "revision\":\"5\"}}]}}";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), -EINVAL);
	line = "{\"result\":";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), -EINVAL);
	line = "[1]";
	assert_int_equal(etcd_parse_watch(line, strlen(line), &m), -EINVAL);
}

/* Nothing listens at any endpoint: every connect is refused at once. The call still takes
 * its budget, and goes round the endpoints at most once per RETRY_MIN_MS instead of
 * spinning (it made ~100,000 attempts in 2 s, a whole CPU, during an etcd outage). */
static void test_refused_endpoints_do_not_spin(void **state)
{
	struct etcd_cfg cfg = { .n_endpoints = 2, .timeout_ms = 600 };
	struct etcd_kv *kvs = NULL;
	struct etcd_stats st;
	struct timespec a, b;
	struct etcd *c;
	uint64_t rev;
	size_t n = 0;
	double s;

	(void)state;
	/* port 1 on loopback: tcpmux, not served here */
	snprintf(cfg.endpoints[0], sizeof(cfg.endpoints[0]), "http://127.0.0.1:1");
	snprintf(cfg.endpoints[1], sizeof(cfg.endpoints[1]), "http://[::1]:1");
	assert_int_equal(etcd_open(&cfg, &c), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_true(etcd_unavailable(etcd_range(c, "k", NULL, false, &kvs, &n, &rev)));
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	etcd_stats_get(c, &st);
	assert_true(s >= 0.55 && s < 2.0);
	if (st.failovers > 20)
		fail_msg("%llu endpoint switches in %.2f s: a spin",
			 (unsigned long long)st.failovers, s);
	assert_true(st.failovers >= 4);
	etcd_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_prefix_end),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_txn),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_watch),
		cmocka_unit_test(test_refused_endpoints_do_not_spin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
