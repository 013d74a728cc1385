// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The HTTP API's routing (user/transport/api.c) as a transport: method and path to handler, the
 * status codes of its answers and of the handlers' errors, /metrics, an SSE stream. The
 * handlers are the real ones over a file-backend registry (hxfix.h); the HTTP server
 * (http.c, a libwebsockets thread) is replaced by the functions below, which record what
 * would have been sent.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "hxfix.h"
#include "api.h"
#include "http.h"

/* ---- the HTTP server, as the API sees it ---- */

static struct {
	int status; /* of the last complete reply, 0 when none */
	char ctype[64];
	char *body;
	bool streaming;
	char *sent; /* bytes queued on the stream, concatenated */
	size_t sent_len;
} out;

static char server; /* its address stands for the server */

static void out_reset(void)
{
	free(out.body);
	free(out.sent);
	memset(&out, 0, sizeof(out));
}

int http_reply(struct http *h, uint64_t conn, int status, const char *ctype,
	       const struct http_header *hdrs, size_t n_hdrs, const void *body, size_t len)
{
	(void)conn;
	(void)hdrs;
	(void)n_hdrs;
	assert_ptr_equal(h, &server);
	out.status = status;
	snprintf(out.ctype, sizeof(out.ctype), "%s", ctype ? ctype : "");
	free(out.body);
	out.body = strndup(body ? body : "", len);
	return 0;
}

int http_reply_json(struct http *h, uint64_t conn, int status, struct json_object *o,
		    const struct http_header *hdrs, size_t n_hdrs)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

	return http_reply(h, conn, status, "application/json", hdrs, n_hdrs, s, strlen(s));
}

int http_stream_begin(struct http *h, uint64_t conn, const struct http_header *hdrs, size_t n_hdrs)
{
	(void)conn;
	(void)hdrs;
	(void)n_hdrs;
	assert_ptr_equal(h, &server);
	out.streaming = true;
	return 0;
}

int http_send(struct http *h, uint64_t conn, const void *data, size_t len)
{
	char *n;

	(void)conn;
	assert_ptr_equal(h, &server);
	n = realloc(out.sent, out.sent_len + len + 1);
	assert_non_null(n);
	memcpy(n + out.sent_len, data, len);
	out.sent_len += len;
	n[out.sent_len] = '\0';
	out.sent = n;
	return 0;
}

void http_end(struct http *h, uint64_t conn)
{
	(void)h;
	(void)conn;
	out.streaming = false;
}

uint16_t http_port(const struct http *h, int listener)
{
	(void)h;
	return listener == HTTP_DASH ? 8090 : 0;
}

/* ---- fixture ---- */

struct fx {
	struct hxfix *f;
	void *api;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct transport_env env = {};

	assert_non_null(x);
	x->f = hxfix_new();
	x->f->cfg.http.enabled = true;
	env.cfg = &x->f->cfg;
	env.hx = &x->f->hx;
	env.ev = x->f->ev;
	env.http = (struct http *)&server;
	assert_int_equal(api_transport.start(&env, &x->api), 0);
	assert_non_null(x->api);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	int err;

	api_transport.stop(x->api);
	err = hxfix_free(x->f);
	free(x);
	out_reset();
	return err;
}

/* One request; the status it was answered with; the JSON body (new reference) or NULL. */
static int request(struct fx *x, const char *method, const char *path, const char *query,
		   const char *body, struct json_object **json)
{
	struct http_request r = { .kind = HTTP_REQUEST, .conn = 1, .listener = HTTP_DASH };

	out_reset();
	snprintf(r.method, sizeof(r.method), "%s", method);
	snprintf(r.path, sizeof(r.path), "%s", path);
	snprintf(r.query, sizeof(r.query), "%s", query ? query : "");
	if (body) {
		snprintf(r.content_type, sizeof(r.content_type), "application/json");
		r.body = (char *)body;
		r.body_len = strlen(body);
	}
	api_transport.request(x->api, &r);
	if (json)
		*json = out.status && !strcmp(out.ctype, "application/json")
				? json_tokener_parse(out.body)
				: NULL;
	return out.status;
}

/* status and the error message of a refusal. */
static void assert_refused(struct fx *x, const char *method, const char *path, const char *query,
			   const char *body, int status, const char *needle)
{
	struct json_object *j = NULL, *e;
	int got = request(x, method, path, query, body, &j);

	if (got != status || !j || !json_object_object_get_ex(j, "error", &e) ||
	    !strstr(hxfix_str(e, "message") ? hxfix_str(e, "message") : "", needle))
		fail_msg("%s %s%s%s: %d %s, wanted %d with \"%s\"", method, path, query ? "?" : "",
			 query ? query : "", got, out.body, status, needle);
	assert_int_equal(hxfix_int(e, "status"), status);
	json_object_put(j);
}

#define WEB "{\"name\":\"web\",\"ports\":[\"47010/tcp\"]}"

static void test_routes_to_handlers(void **state)
{
	struct fx *x = *state;
	struct json_object *j;
	int64_t port;

	assert_int_equal(request(x, "POST", "/api/v1/services", NULL, WEB, &j), 201);
	assert_string_equal(hxfix_str(j, "name"), "web");
	assert_non_null(registry_service(x->f->reg, "web"));
	json_object_put(j);
	/* POST /ports with a port reserves it, without one allocates from the managed range. */
	assert_int_equal(request(x, "POST", "/api/v1/ports", NULL,
				 "{\"port\":47020,\"service\":\"web\"}", &j),
			 201);
	assert_int_equal(hxfix_int(j, "port"), 47020);
	json_object_put(j);
	assert_int_equal(request(x, "POST", "/api/v1/ports", NULL, "{\"service\":\"web\"}", &j),
			 201);
	port = hxfix_int(j, "port");
	assert_true(port >= 47100 && port <= 47199);
	json_object_put(j);
	assert_int_equal(request(x, "GET", "/api/v1/ports", NULL, NULL, &j), 200);
	assert_true(json_object_is_type(j, json_type_array));
	assert_int_equal(json_object_array_length(j), 3);
	json_object_put(j);
	assert_int_equal(request(x, "GET", "/api/v1/services/web", NULL, NULL, &j), 200);
	assert_string_equal(hxfix_str(j, "name"), "web");
	json_object_put(j);
	assert_int_equal(request(x, "DELETE", "/api/v1/ports/47020/tcp", NULL, NULL, &j), 200);
	assert_string_equal(hxfix_str(j, "service"), "web");
	json_object_put(j);
	assert_null(registry_owner(x->f->reg, 47020, IPPROTO_TCP, NULL));
	assert_int_equal(request(x, "GET", "/api/v1/events", "type=port_released", NULL, &j), 200);
	assert_int_equal(json_object_array_length(j), 1);
	json_object_put(j);
}

static void test_status_codes(void **state)
{
	struct fx *x = *state;

	assert_int_equal(request(x, "POST", "/api/v1/services", NULL, WEB, NULL), 201);
	/* the router's own refusals */
	assert_refused(x, "GET", "/api/v1/nothing", NULL, NULL, 404, "no such resource");
	assert_refused(x, "PUT", "/api/v1/ports", NULL, NULL, 405, "use GET or POST");
	assert_refused(x, "POST", "/api/v1/status", NULL, NULL, 405, "use GET");
	assert_refused(x, "GET", "/api/v1/ports", "x=1", NULL, 400, "takes no parameters");
	assert_refused(x, "GET", "/api/v1/events", "limit=abc", NULL, 400, "is not an integer");
	assert_refused(x, "GET", "/api/v1/events", "limit=1&limit=2", NULL, 400, "given twice");
	assert_refused(x, "GET", "/api/v1/events", "color=red", NULL, 400, "unknown parameter");
	assert_refused(x, "DELETE", "/api/v1/ports/http", NULL, NULL, 400, "is not a port");
	assert_refused(x, "POST", "/api/v1/ports", NULL, "[1]", 400, "body");
	assert_refused(x, "POST", "/api/v1/ports", NULL, "{", 400, "body");
	/* the handlers' errors, mapped */
	assert_refused(x, "POST", "/api/v1/ports", NULL, "{\"port\":0,\"service\":\"web\"}", 400,
		       "port");
	assert_refused(x, "DELETE", "/api/v1/ports/47999", NULL, NULL, 404, "47999");
	assert_refused(x, "GET", "/api/v1/services/ghost", NULL, NULL, 404, "ghost");
	assert_refused(x, "POST", "/api/v1/services", NULL,
		       "{\"name\":\"other\",\"ports\":[\"47010/tcp\"]}", 422, "47010");
	assert_refused(x, "GET", "/api/v1/status", NULL, NULL, 503, "not available");
}

static void test_content_type(void **state)
{
	struct fx *x = *state;
	struct http_request r = { .kind = HTTP_REQUEST, .conn = 1, .listener = HTTP_DASH };

	snprintf(r.method, sizeof(r.method), "POST");
	snprintf(r.path, sizeof(r.path), "/api/v1/services");
	snprintf(r.content_type, sizeof(r.content_type), "text/plain");
	r.body = (char *)WEB;
	r.body_len = strlen(WEB);
	out_reset();
	api_transport.request(x->api, &r);
	assert_int_equal(out.status, 415);
	assert_null(registry_service(x->f->reg, "web"));
}

static int fake_status(void *owner, struct json_object **o)
{
	struct hxfix *f = owner;

	*o = json_object_new_object();
	json_object_object_add(*o, "host", json_object_new_string(f->cfg.host));
	json_object_object_add(*o, "uptime_s", json_object_new_int(12));
	return 0;
}

/* /metrics renders the status document the status handler gives. */
static void test_metrics_route(void **state)
{
	struct fx *x = *state;

	x->f->ops.status = fake_status;
	assert_int_equal(request(x, "GET", "/metrics", NULL, NULL, NULL), 200);
	assert_string_equal(out.ctype, "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(out.body, "host=\"unit-host\""));
	assert_non_null(strstr(out.body, "\ncaelum_uptime_seconds 12\n"));
	x->f->ops.status = NULL;
	assert_int_equal(request(x, "GET", "/metrics", NULL, NULL, NULL), 500);
}

/* An event stream: the backlog asked for, then live events matching its filter. */
static void test_event_stream(void **state)
{
	struct fx *x = *state;
	struct http_request closed = { .kind = HTTP_CLOSED, .conn = 1, .listener = HTTP_DASH };

	assert_int_equal(request(x, "POST", "/api/v1/services", NULL, WEB, NULL), 201);
	request(x, "GET", "/api/v1/events/stream", "type=port_reserved&since=0", NULL, NULL);
	assert_int_equal(out.status, 0);
	assert_true(out.streaming);
	assert_string_equal(out.sent, "retry: 2000\n\n");
	assert_int_equal(request(x, "POST", "/api/v1/ports", NULL,
				 "{\"port\":47030,\"service\":\"web\"}", NULL),
			 201);
	/* request() cleared what was sent before: this is what the event itself sent. */
	assert_non_null(out.sent);
	assert_int_equal(strncmp(out.sent, "id: ", 4), 0);
	assert_non_null(strstr(out.sent, "\ndata: {"));
	assert_non_null(strstr(out.sent, "\"type\":\"port_reserved\""));
	assert_null(strstr(out.sent, "service_applied"));
	api_transport.request(x->api, &closed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_routes_to_handlers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_route, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_stream, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
