// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The Prometheus exposition (user/transport/metrics.c) of given status, resources and service.list
 * documents: exact sample lines, families once, label escaping, what a missing part does. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"
#include "version.h"

static const char status_doc[] =
	"{\"host\":\"h\\\"1\\\\x\",\"uptime_s\":75,\"bpf_stats_enabled\":true,"
	"\"components\":[{\"name\":\"ports\",\"mode\":\"enforce\",\"attached\":true,"
	"  \"programs\":[{\"name\":\"cm_bind4\",\"run_time_ns\":1500000000,\"run_cnt\":9}]},"
	" {\"name\":\"devices\",\"mode\":\"audit\",\"attached\":false,\"programs\":[]}],"
	"\"maps\":[{\"name\":\"cm_events\",\"max_entries\":4096},"
	"  {\"name\":\"cm_port_rules\",\"entries\":12,\"max_entries\":131072}],"
	"\"verification\":{\"components\":{\"ports\":{\"ok\":true},\"devices\":{\"ok\":false}}},"
	"\"registry\":{\"reservations\":3},"
	"\"policy\":{\"managed\":100,\"registry_revision\":17},"
	"\"events\":{\"kernel_records\":40,\"folded\":5,"
	"  \"lost\":{\"kernel_ringbuf_first\":2,\"kernel_ringbuf_followup\":0,\"journal\":1,"
	"    \"subscribers\":4},"
	"  \"types\":[{\"type\":\"bind_denied\",\"action\":\"denied\",\"events\":3,"
	"      \"occurrences\":8},"
	"    {\"type\":\"bind_denied\",\"action\":\"audited\",\"events\":1,\"occurrences\":1},"
	"    {\"type\":\"db_connect_denied\",\"action\":\"denied\",\"events\":2,\"occurrences\":2},"
	"    {\"type\":\"port_reserved\",\"action\":\"changed\",\"events\":6,\"occurrences\":6}]},"
	"\"http\":{\"enabled\":true,\"connections\":5,\"websockets\":1,\"streams\":2,"
	"  \"stream_drops\":7,\"requests_by_listener\":{\"dashboard\":30,\"mcp\":11},"
	"  \"responses\":{\"1xx\":0,\"2xx\":35,\"3xx\":0,\"4xx\":6,\"5xx\":0},"
	"  \"refused\":{\"unauthorized\":4,\"forbidden_origin_or_host\":2},"
	"  \"connections_refused\":{\"total\":1,\"unauthenticated\":0,\"per_address\":3},"
	"  \"body_incomplete\":1,\"fd_limit\":1024,"
	"  \"connection_limits\":{\"connections\":768,\"unauthenticated\":512,\"per_address\":128},"
	"  \"mcp\":{\"sessions_http\":2,\"sessions_websocket\":1,\"sessions_stdio\":0,"
	"    \"sessions_evicted_lru\":0,\"sessions_evicted_per_client\":0,\"sessions_refused\":0,"
	"    \"modern_requests\":9,\"era_refused\":1,\"listens_opened\":0,"
	"    \"notifications_sent\":3,\"notifications_dropped\":0,"
	"    \"peers\":[{\"url\":\"ws://peer:8080/mcp\",\"state\":\"ready\",\"sent\":50,"
	"      \"dropped\":2,\"refused\":1,\"queued\":4}]}}}";

static const char services_doc[] =
	"[{\"name\":\"web\",\"state\":\"running\"},{\"name\":\"db\",\"state\":\"stopped\"},"
	" {\"name\":\"job\",\"state\":\"stopped\"}]";

static const char resources_doc[] =
	"{\"dimensions\":{\"cpus\":{\"capacity\":4,\"allocated\":1.5},"
	"  \"memory_mb\":{\"capacity\":8192,\"allocated\":1024},\"gpus\":{\"capacity\":0,"
	"  \"allocated\":0}},"
	"\"services\":[{\"name\":\"web\",\"reservation\":{\"cpus\":1.5,\"memory_mb\":1024},"
	"  \"cpu_usage\":0.25,\"live_tasks\":3,\"bandwidth\":null},"
	" {\"name\":\"s\\\"q\\\\\",\"reservation\":{\"egress_mbit\":20},"
	"  \"bandwidth\":{\"limited\":true,\"sample_ns\":1000000000,"
	"   \"egress\":{\"reserved_mbit\":20,\"measured_mbit\":18.5,\"bytes\":7500000,"
	"     \"packets\":120,\"signalled\":9,\"dropped\":4,\"dropped_bytes\":262144,"
	"     \"over\":0},"
	"   \"ingress\":{\"reserved_mbit\":null,\"measured_mbit\":null,\"bytes\":6000,"
	"     \"packets\":100,\"signalled\":0,\"dropped\":0,\"dropped_bytes\":0,"
	"     \"over\":0}}}]}";

static char *render(const char *status, const char *res, const char *svcs, int *err)
{
	struct json_object *s = status ? json_tokener_parse(status) : NULL;
	struct json_object *r = res ? json_tokener_parse(res) : NULL;
	struct json_object *v = svcs ? json_tokener_parse(svcs) : NULL;
	char *text = NULL;
	size_t len = 0;

	if (status)
		assert_non_null(s);
	*err = metrics_render(s, r, v, &text, &len);
	if (!*err)
		assert_int_equal(strlen(text), len);
	json_object_put(s);
	json_object_put(r);
	json_object_put(v);
	return text;
}

static void assert_line(const char *text, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_exposition(void **state)
{
	int err;
	char *t = render(status_doc, resources_doc, services_doc, &err);

	(void)state;
	assert_int_equal(err, 0);
	/* the first line, and label values escaped (\" and \\) */
	assert_int_equal(strncmp(t, "# HELP caelum_build_info ", 25), 0);
	assert_line(t, "caelum_build_info{version=\"" CAELUM_VERSION "\",host=\"h\\\"1\\\\x\"} 1");
	assert_line(t, "caelum_uptime_seconds 75");
	assert_line(t, "caelum_bpf_stats_enabled 1");
	/* events by type and action; denials by component from the denied occurrences */
	assert_line(t, "caelum_events_total{type=\"bind_denied\",action=\"denied\"} 3");
	assert_line(t, "caelum_events_total{type=\"port_reserved\",action=\"changed\"} 6");
	assert_line(t, "caelum_denials_total{component=\"ports\"} 8");
	assert_line(t, "caelum_denials_total{component=\"databases\"} 2");
	assert_line(t, "caelum_denials_total{component=\"devices\"} 0");
	assert_line(t, "caelum_events_lost_total{stage=\"kernel\",reason=\"ringbuf_full\"} 2");
	assert_line(t, "caelum_events_lost_total{stage=\"sse\",reason=\"slow_consumer\"} 7");
	assert_line(t, "caelum_events_lost_total{stage=\"peer\",reason=\"queue_full\"} 2");
	assert_line(t, "caelum_events_lost_total{stage=\"peer\",reason=\"refused\"} 1");
	/* registry and services */
	assert_line(t, "caelum_reservations 3");
	assert_line(t, "caelum_registry_revision 17");
	assert_line(t, "caelum_services{state=\"running\"} 1");
	assert_line(t, "caelum_services{state=\"stopped\"} 2");
	/* components, programs (ns to seconds), maps, verification */
	assert_line(t, "caelum_component_attached{component=\"ports\",mode=\"enforce\"} 1");
	assert_line(t, "caelum_component_attached{component=\"devices\",mode=\"audit\"} 0");
	assert_line(t, "caelum_bpf_prog_run_time_seconds_total{component=\"ports\","
		       "program=\"cm_bind4\"} 1.5");
	assert_line(t, "caelum_bpf_map_entries{map=\"cm_port_rules\"} 12");
	assert_line(t, "caelum_bpf_map_capacity{map=\"cm_events\"} 4096");
	assert_line(t, "caelum_verification_ok{component=\"devices\"} 0");
	/* resources */
	assert_line(t, "caelum_resource_allocated{dimension=\"cpus\"} 1.5");
	assert_line(t, "caelum_resource_reservation{service=\"web\",dimension=\"memory_mb\"} 1024");
	assert_line(t, "caelum_resource_usage{service=\"web\",dimension=\"tasks\"} 3");
	/* bandwidth per service and direction: bit/s gauges, counters; null = no sample */
	assert_line(t, "caelum_bandwidth_reserved_bits_per_second{service=\"s\\\"q\\\\\","
		       "direction=\"egress\"} 20000000");
	assert_line(t, "caelum_bandwidth_measured_bits_per_second{service=\"s\\\"q\\\\\","
		       "direction=\"egress\"} 18500000");
	assert_line(t, "caelum_bandwidth_bytes_total{service=\"s\\\"q\\\\\","
		       "direction=\"egress\"} 7500000");
	assert_line(t, "caelum_bandwidth_bytes_total{service=\"s\\\"q\\\\\","
		       "direction=\"ingress\"} 6000");
	assert_line(t, "caelum_bandwidth_packets_total{service=\"s\\\"q\\\\\","
		       "direction=\"ingress\"} 100");
	assert_line(t, "caelum_bandwidth_signalled_packets_total{service=\"s\\\"q\\\\\","
		       "direction=\"egress\"} 9");
	assert_line(t, "caelum_bandwidth_dropped_packets_total{service=\"s\\\"q\\\\\","
		       "direction=\"egress\"} 4");
	assert_line(t, "caelum_bandwidth_dropped_bytes_total{service=\"s\\\"q\\\\\","
		       "direction=\"egress\"} 262144");
	assert_line(t, "caelum_bandwidth_over_packets_total{service=\"s\\\"q\\\\\","
		       "direction=\"ingress\"} 0");
	assert_int_equal(count(t, "# TYPE caelum_bandwidth_bytes_total counter\n"), 1);
	assert_int_equal(count(t, "# TYPE caelum_bandwidth_measured_bits_per_second gauge\n"), 1);
	assert_null(strstr(t, "caelum_bandwidth_reserved_bits_per_second{service=\"s\\\"q\\\\\","
			      "direction=\"ingress\"}"));
	assert_null(strstr(t, "caelum_bandwidth_measured_bits_per_second{service=\"s\\\"q\\\\\","
			      "direction=\"ingress\"}"));
	assert_null(strstr(t, "{service=\"web\",direction="));
	/* HTTP, MCP and peers from status.http */
	assert_line(t, "caelum_http_requests_total{listener=\"mcp\"} 11");
	assert_line(t, "caelum_http_responses_total{code=\"4xx\"} 6");
	assert_line(t, "caelum_http_connections_refused_total{limit=\"per_address\"} 3");
	assert_line(t, "caelum_http_connection_limit{limit=\"per_address\"} 128");
	assert_line(t, "caelum_http_connections{kind=\"event_stream\"} 2");
	assert_line(t, "caelum_mcp_sessions 3");
	assert_line(t, "caelum_mcp_era_refused_total 1");
	assert_line(t, "caelum_peer_up{peer=\"ws://peer:8080/mcp\"} 1");
	assert_line(t, "caelum_peer_queue{peer=\"ws://peer:8080/mcp\"} 4");
	/* every family is introduced once, before its samples */
	assert_int_equal(count(t, "# TYPE caelum_events_total counter\n"), 1);
	assert_int_equal(count(t, "# TYPE caelum_denials_total counter\n"), 1);
	assert_int_equal(count(t, "# HELP caelum_http_connections "), 1);
	assert_true(strstr(t, "# TYPE caelum_peer_up gauge") < strstr(t, "\ncaelum_peer_up{"));
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);
}

/* Without an HTTP server, resources or services: those families are left out. */
static void test_partial_documents(void **state)
{
	int err;
	char *t = render("{\"host\":\"h\",\"http\":{\"enabled\":false}}", NULL, NULL, &err);

	(void)state;
	assert_int_equal(err, 0);
	assert_line(t, "caelum_build_info{version=\"" CAELUM_VERSION "\",host=\"h\"} 1");
	assert_line(t, "caelum_services{state=\"running\"} 0");
	assert_null(strstr(t, "caelum_http_"));
	assert_null(strstr(t, "caelum_mcp_"));
	assert_null(strstr(t, "caelum_peer_"));
	assert_null(strstr(t, "caelum_resource_"));
	free(t);
	assert_null(render(NULL, NULL, NULL, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(render("[1]", NULL, NULL, &err));
	assert_int_equal(err, -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition),
		cmocka_unit_test(test_partial_documents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
