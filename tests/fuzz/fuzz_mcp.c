// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer harness for the MCP dispatcher (user/transport/mcp.c) and its era edge
 * (user/transport/mcp_era.c), both eras: legacy sessions (initialize, subscribe, setLevel, eviction
 * of idle HTTP sessions) and 2026-07-28 (envelope, header cross-checks, discover, listen, cancel).
 *
 * Input: lines. A line starting with "H " sets the Streamable HTTP headers for what follows:
 * "H version|method|name" (the request then goes through mcp_handle_edge() statelessly, as
 * a POST without a session does); "H -" returns to the session (WebSocket/stdio path). A line
 * "S peer" makes a legacy HTTP session for that client address (eviction at the limits). A
 * line "E type" publishes an event (notifications to subscriptions and listens). Any other
 * line is one JSON-RPC message.
 *
 * The handler layer (handlers.c: the registry, BPF maps) is not linked: the dispatcher's
 * seam to it, handlers_call(), is answered here by refusing every call with an error that
 * names the method, or, for a message whose id is a multiple of 3, with an empty object
 * (which the dispatcher must refuse against the tool's outputSchema). Both are paths the
 * dispatcher has to get right; the handlers have harnesses of their own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "handlers.h"
#include "mcp.h"
#include "mcp_era.h"

static events_sub_fn sub_fn;
static void *sub_ctx;
static int empty_result;
static size_t delivered;

int events_subscribe(struct events *ev, events_sub_fn fn, void *ctx)
{
	(void)ev;
	sub_fn = fn;
	sub_ctx = ctx;
	return 1;
}

void events_unsubscribe(struct events *ev, int id)
{
	(void)ev;
	(void)id;
	sub_fn = NULL;
}

uint64_t time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int handlers_call(const struct handler_ctx *hx, const char *method, struct json_object *params,
		  const struct caller *who, struct json_object **result, struct herr *err,
		  struct hstream *stream)
{
	(void)hx;
	(void)params;
	(void)who;
	(void)stream;
	memset(err, 0, sizeof(*err));
	*result = NULL;
	if (empty_result) {
		*result = json_object_new_object();
		return 0;
	}
	snprintf(err->message, sizeof(err->message), "%s: not linked in the fuzzer", method);
	err->errors = json_object_new_array();
	json_object_array_add(err->errors, json_object_new_string(err->message));
	json_object_array_add(err->errors, json_object_new_string("second error"));
	return -1;
}

/* The session's sender: serialize what the server sends, as a transport would. */
static bool sink(void *ctx, struct json_object *msg)
{
	(void)ctx;
	delivered += strlen(json_object_to_json_string(msg)) > 0;
	return true;
}

static void one_message(struct mcp *m, struct mcp_session *s, const char *line, size_t len,
			const struct mcp_edge *edge)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *msg = json_tokener_parse_ex(tok, line, (int)len), *reply, *id;
	int status;

	json_tokener_free(tok);
	if (!msg)
		return;
	empty_result = json_object_object_get_ex(msg, "id", &id) &&
		       json_object_is_type(id, json_type_int) && json_object_get_int(id) % 3 == 0;
	if (edge)
		reply = mcp_handle_edge(m, NULL, msg, edge, &status);
	else
		reply = mcp_handle(m, s, msg);
	if (reply)
		json_object_to_json_string(reply);
	json_object_put(reply);
	json_object_put(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct handler_ctx hx;
	char hv[64] = "", hm[128] = "", hn[512] = "";
	struct mcp_edge edge = { hv, hm, hn };
	bool use_edge = false;
	struct mcp_session *s;
	struct mcp *m;
	char *buf;

	if (size > 1 << 16 || mcp_open(&m, &hx, NULL))
		return 0;
	s = mcp_session_new(m, "stdio", sink, NULL);
	buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		size_t len;

		next = strchr(line, '\n');
		len = next ? (size_t)(next - line) : strlen(line);
		if (next)
			*next++ = '\0';
		if (!strncmp(line, "H -", 3)) {
			use_edge = false;
		} else if (!strncmp(line, "H ", 2)) {
			sscanf(line + 2, "%63[^|]|%127[^|]|%511[^\n]", hv, hm, hn);
			use_edge = true;
		} else if (!strncmp(line, "S ", 2)) {
			mcp_session_new_http(m, line + 2);
		} else if (!strncmp(line, "E ", 2) && sub_fn) {
			struct json_object *ev = json_object_new_object();

			json_object_object_add(ev, "type", json_object_new_string(line + 2));
			sub_fn(sub_ctx, ev);
			json_object_put(ev);
			mcp_tick(m, time_now_ns() + 200000000ULL);
		} else {
			one_message(m, s, line, len, use_edge ? &edge : NULL);
		}
	}
	free(buf);
	json_object_put(mcp_status_json(m));
	mcp_close(m);
	return 0;
}
