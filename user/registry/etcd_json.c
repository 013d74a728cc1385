// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * etcd's JSON gateway, read strictly: base64 keys and values, int64 as strings, defaults
 * omitted (an absent field is its zero value: rpc.proto3 semantics). The shapes are
 * etcdserverpb's RangeResponse, TxnResponse, LeaseKeepAliveResponse and WatchResponse as
 * grpc-gateway 1.x renders them (streams wrap each message in {"result": ...}, errors come
 * as {"error": "...", "code": N} on unary calls and {"error": {"grpc_code": N, ...}} in a
 * stream).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "etcd.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_b64_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = b64_alphabet[(v >> 18) & 63];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char ch)
{
	const char *p = ch ? strchr(b64_alphabet, ch) : NULL;

	return p ? (int)(p - b64_alphabet) : -1;
}

int etcd_b64_decode(const char *text, char **out, size_t *len)
{
	size_t n = strlen(text), o = 0;
	uint32_t acc = 0;
	int bits = 0;
	char *buf;

	while (n && text[n - 1] == '=')
		n--;
	if (strlen(text) - n > 2)
		return -EINVAL;
	buf = malloc(n / 4 * 3 + 4);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(text[i]);

		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*len = o;
	return 0;
}

int etcd_json_u64(struct json_object *obj, const char *field, uint64_t *out)
{
	struct json_object *v;
	const char *s;
	char *end;

	*out = 0;
	if (!obj || !json_object_object_get_ex(obj, field, &v) || !v)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) < 0)
			return -EINVAL;
		*out = (uint64_t)json_object_get_int64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-')
		return -EINVAL;
	return 0;
}

/* gRPC status code -> -errno. Unauthenticated (16) is -EKEYEXPIRED: a token to renew. */
static int grpc_errno(uint64_t code)
{
	switch (code) {
	case 1:	 /* Canceled */
	case 10: /* Aborted */
		return -ECANCELED;
	case 2:	 /* Unknown: etcd 3.4 answers a write without quorum so after ~7 s */
	case 4:	 /* DeadlineExceeded */
	case 14: /* Unavailable: no leader, request timed out, member stopping */
		return -ETIMEDOUT;
	case 3: /* InvalidArgument: also a wrong user or password */
		return -EINVAL;
	case 5: /* NotFound: "lease not found" */
		return -ENOENT;
	case 6:
		return -EEXIST;
	case 7: /* PermissionDenied */
		return -EACCES;
	case 8: /* ResourceExhausted: too many requests, database space exceeded */
		return -ENOSPC;
	case 9: /* FailedPrecondition: authentication is not enabled */
		return -EPERM;
	case 11: /* OutOfRange: revision compacted */
		return -ERANGE;
	case 12:
		return -EOPNOTSUPP;
	case 16: /* Unauthenticated: invalid auth token */
		return -EKEYEXPIRED;
	default:
		return -EIO;
	}
}

static void copy_msg(struct json_object *v, char *msg, size_t msg_len)
{
	if (msg_len && v && json_object_is_type(v, json_type_string))
		snprintf(msg, msg_len, "%s", json_object_get_string(v));
}

int etcd_json_error(struct json_object *obj, char *msg, size_t msg_len)
{
	struct json_object *err, *m = NULL;
	uint64_t code = 0;

	if (msg_len)
		msg[0] = '\0';
	if (!obj || !json_object_object_get_ex(obj, "error", &err) || !err)
		return 0;
	if (json_object_is_type(err, json_type_object)) { /* in a stream */
		if (etcd_json_u64(err, "grpc_code", &code))
			return -EIO;
		json_object_object_get_ex(err, "message", &m);
	} else {
		if (etcd_json_u64(obj, "code", &code))
			return -EIO;
		if (!json_object_object_get_ex(obj, "message", &m))
			m = err;
	}
	copy_msg(m, msg, msg_len);
	return code ? grpc_errno(code) : -EIO;
}

static int b64_field(struct json_object *obj, const char *field, bool required, char **out)
{
	struct json_object *v;
	size_t len;

	*out = NULL;
	if (!json_object_object_get_ex(obj, field, &v) || !v) {
		if (required)
			return -EINVAL;
		*out = strdup("");
		return *out ? 0 : -ENOMEM;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	return etcd_b64_decode(json_object_get_string(v), out, &len);
}

static int header_rev(struct json_object *resp, uint64_t *rev)
{
	struct json_object *h;

	if (!json_object_object_get_ex(resp, "header", &h) ||
	    !json_object_is_type(h, json_type_object))
		return -EINVAL;
	return etcd_json_u64(h, "revision", rev);
}

static int parse_kv(struct json_object *o, struct etcd_kv *kv)
{
	uint64_t lease;
	int err;

	memset(kv, 0, sizeof(*kv));
	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	err = b64_field(o, "key", true, &kv->key);
	if (!err)
		err = b64_field(o, "value", false, &kv->value);
	if (!err)
		err = etcd_json_u64(o, "mod_revision", &kv->mod_rev);
	if (!err)
		err = etcd_json_u64(o, "lease", &lease);
	if (!err && (kv->mod_rev == 0 || lease > INT64_MAX))
		err = -EINVAL;
	kv->lease = (int64_t)lease;
	if (err) {
		free(kv->key);
		free(kv->value);
		memset(kv, 0, sizeof(*kv));
	}
	return err;
}

void etcd_kvs_free(struct etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; kvs && i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}

void etcd_events_free(struct etcd_event *ev, size_t n)
{
	for (size_t i = 0; ev && i < n; i++) {
		free(ev[i].key);
		free(ev[i].value);
	}
	free(ev);
}

int etcd_parse_range(struct json_object *resp, struct etcd_kv **kvs, size_t *n, uint64_t *rev)
{
	struct json_object *arr = NULL;
	size_t cnt = 0;
	int err = header_rev(resp, rev);

	*kvs = NULL;
	*n = 0;
	if (err)
		return err;
	if (json_object_object_get_ex(resp, "kvs", &arr) && arr &&
	    !json_object_is_type(arr, json_type_array))
		return -EINVAL;
	cnt = arr ? json_object_array_length(arr) : 0;
	*kvs = calloc(cnt + 1, sizeof(**kvs));
	if (!*kvs)
		return -ENOMEM;
	for (size_t i = 0; i < cnt && !err; i++) {
		err = parse_kv(json_object_array_get_idx(arr, i), &(*kvs)[i]);
		if (!err)
			(*n)++;
	}
	if (err) {
		etcd_kvs_free(*kvs, *n);
		*kvs = NULL;
		*n = 0;
	}
	return err;
}

int etcd_parse_txn(struct json_object *resp, bool *succeeded, uint64_t *rev)
{
	struct json_object *v;

	*succeeded = false;
	if (json_object_object_get_ex(resp, "succeeded", &v) && v) {
		if (!json_object_is_type(v, json_type_boolean))
			return -EINVAL;
		*succeeded = json_object_get_boolean(v);
	}
	return header_rev(resp, rev);
}

int etcd_parse_keepalive(struct json_object *resp, int64_t *ttl_s)
{
	struct json_object *r;
	uint64_t ttl;
	int err;

	if (json_object_object_get_ex(resp, "result", &r) && r)
		resp = r;
	if (!json_object_is_type(resp, json_type_object))
		return -EINVAL;
	err = etcd_json_u64(resp, "TTL", &ttl);
	if (err || ttl > INT64_MAX)
		return -EINVAL;
	*ttl_s = (int64_t)ttl;
	return 0;
}

static int parse_event(struct json_object *o, struct etcd_event *ev)
{
	struct json_object *type, *kvo;
	struct etcd_kv kv;
	int err;

	memset(ev, 0, sizeof(*ev));
	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "kv", &kvo))
		return -EINVAL;
	if (json_object_object_get_ex(o, "type", &type) && type) {
		const char *t = json_object_get_string(type);

		if (!json_object_is_type(type, json_type_string) ||
		    (strcmp(t, "DELETE") && strcmp(t, "PUT")))
			return -EINVAL;
		ev->del = !strcmp(t, "DELETE");
	}
	err = parse_kv(kvo, &kv);
	if (err)
		return err;
	ev->key = kv.key;
	ev->mod_rev = kv.mod_rev;
	if (ev->del)
		free(kv.value);
	else
		ev->value = kv.value;
	return 0;
}

static int parse_watch_result(struct json_object *r, struct etcd_watch_msg *m)
{
	struct json_object *h = NULL, *v, *evs = NULL;
	int err = 0;

	if (!json_object_is_type(r, json_type_object))
		return -EINVAL;
	if (json_object_object_get_ex(r, "header", &h) && h) {
		err = etcd_json_u64(h, "revision", &m->header_rev);
		if (!err)
			err = etcd_json_u64(h, "raft_term", &m->raft_term);
	}
	if (!err)
		err = etcd_json_u64(r, "compact_revision", &m->compact_rev);
	if (err)
		return err;
	m->created = json_object_object_get_ex(r, "created", &v) && json_object_get_boolean(v);
	m->canceled = json_object_object_get_ex(r, "canceled", &v) && json_object_get_boolean(v);
	if (json_object_object_get_ex(r, "cancel_reason", &v))
		copy_msg(v, m->reason, sizeof(m->reason));
	if (json_object_object_get_ex(r, "events", &evs) && evs &&
	    !json_object_is_type(evs, json_type_array))
		return -EINVAL;
	if (!evs || !json_object_array_length(evs))
		return 0;
	m->ev = calloc(json_object_array_length(evs), sizeof(*m->ev));
	if (!m->ev)
		return -ENOMEM;
	for (size_t i = 0; i < json_object_array_length(evs) && !err; i++) {
		err = parse_event(json_object_array_get_idx(evs, i), &m->ev[i]);
		if (!err)
			m->n_ev++;
	}
	return err;
}

int etcd_parse_watch(const char *line, size_t len, struct etcd_watch_msg *m)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o, *r;
	int err;

	memset(m, 0, sizeof(*m));
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EINVAL;
	}
	m->error = etcd_json_error(o, m->reason, sizeof(m->reason));
	if (m->error)
		err = 0;
	else if (json_object_object_get_ex(o, "result", &r) && r)
		err = parse_watch_result(r, m);
	else
		err = -EINVAL;
	json_object_put(o);
	if (err)
		etcd_watch_msg_free(m);
	return err;
}

void etcd_watch_msg_free(struct etcd_watch_msg *m)
{
	etcd_events_free(m->ev, m->n_ev);
	m->ev = NULL;
	m->n_ev = 0;
}
