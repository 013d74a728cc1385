/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A handler context without a daemon (handlers.h), for the unit tests of the handlers, the
 * HTTP API routing and the MCP dispatcher: a file-backend registry and an events journal in
 * a fresh temporary directory, a config with a host name and one managed range, no service
 * cgroups, and a registry watcher standing in for the kernel side: it records each
 * revision in the apply log with fx->apply_err (0: applied), as caelumd's
 * on_registry_change does. The daemon's ops are fx->ops, empty until a test fills them.
 * Include after <cmocka.h> and testutil.h.
 */
#ifndef CAELUM_HXFIX_H
#define CAELUM_HXFIX_H

#include <netinet/in.h>
#include <poll.h>

#include "applylog.h"
#include "config.h"
#include "events.h"
#include "handlers.h"
#include "registry.h"
#include "services.h"
#include "token.h"

struct hxfix {
	char *dir;
	struct config cfg;
	struct registry *reg;
	struct events *ev;
	struct svcs svcs;
	struct apply_log applied;
	int apply_err;	      /* what the stand-in kernel apply answers for the next revisions */
	unsigned int applies; /* revisions it was told about */
	char token[TOKEN_LEN + 1];
	struct handler_ops ops;
	struct handler_ctx hx;
};

static inline void hxfix_on_change(void *ctx, const struct reg_state *st,
				   const struct reg_delta *dl)
{
	struct hxfix *f = ctx;

	(void)st;
	f->applies++;
	apply_log_record(&f->applied, dl->rev, f->apply_err);
}

static inline const char *hxfix_no_name(void *ctx, uint64_t cgid)
{
	(void)ctx;
	(void)cgid;
	return NULL;
}

static inline struct hxfix *hxfix_new(void)
{
	struct hxfix *f = calloc(1, sizeof(*f));
	struct registry_backend *b = NULL;
	struct events_opts eo = { .host = "unit-host",
				  .journal_max_bytes = 1 << 20,
				  .journal_keep = 1,
				  .name_of = hxfix_no_name };
	struct verr e = {};

	assert_non_null(f);
	f->dir = tmpdir_new("hx");
	snprintf(f->cfg.host, sizeof(f->cfg.host), "unit-host");
	snprintf(f->cfg.state_dir, sizeof(f->cfg.state_dir), "%s", f->dir);
	f->cfg.managed[0] = (struct port_range){ 47100, 47199, IPPROTO_TCP };
	f->cfg.n_managed = 1;
	f->svcs.inotify_fd = -1;
	f->svcs.map_fd = -1;
	assert_int_equal(registry_file_open(f->dir, &b), 0);
	if (registry_open(b, &f->reg, &e)) {
		char *all = verr_join(&e);

		fail_msg("registry_open: %s", all ? all : "(no message)");
	}
	registry_set_capacity(f->reg, &f->cfg.cap);
	registry_watch(f->reg, hxfix_on_change, f);
	eo.state_dir = f->dir;
	assert_int_equal(events_open(&f->ev, &eo), 0);
	snprintf(f->token, sizeof(f->token), "%064d", 7);
	f->hx = (struct handler_ctx){
		.cfg = &f->cfg,
		.reg = f->reg,
		.ev = f->ev,
		.svcs = &f->svcs,
		.applied = &f->applied,
		.probe_cgroup = "",
		.token = f->token,
		.ops = &f->ops,
		.owner = f,
	};
	return f;
}

static inline int hxfix_free(struct hxfix *f)
{
	int err;

	events_close(f->ev);
	registry_close(f->reg);
	err = tmpdir_remove(f->dir);
	free(f);
	return err;
}

/* Run the registry as caelumd's loop does (its watch fd readable: registry_poll) until
 * *answered is non-zero, at most timeout_ms. */
static inline void hxfix_settle(struct hxfix *f, const volatile int *answered, int timeout_ms)
{
	struct pollfd pfd = { .fd = registry_watch_fd(f->reg), .events = POLLIN };

	for (int waited = 0; !*answered && waited < timeout_ms; waited += 10) {
		poll(&pfd, 1, 10);
		registry_poll(f->reg);
	}
}

/* Call method with params given as JSON text (NULL: none). Returns handlers_call's answer;
 * *res is the result (or NULL), err the error. */
static inline int hxfix_call(struct hxfix *f, const char *method, const char *params,
			     const char *transport, struct json_object **res, struct herr *err)
{
	struct caller who = { .uid = 0, .pid = 1, .transport = transport };
	struct json_object *p = params ? json_tokener_parse(params) : NULL;
	int rc;

	if (params)
		assert_non_null(p);
	rc = handlers_call(&f->hx, method, p, &who, res, err, NULL);
	json_object_put(p);
	return rc;
}

/* The call must succeed: its result (new reference); *rev (when not NULL) the revision
 * it committed. */
static inline struct json_object *hxfix_ok_rev(struct hxfix *f, const char *method,
					       const char *params, uint64_t *rev)
{
	struct json_object *res = NULL;
	struct herr err;

	if (hxfix_call(f, method, params, "socket", &res, &err))
		fail_msg("%s %s: %s", method, params ? params : "", err.message);
	assert_non_null(res);
	if (rev)
		*rev = err.revision;
	return res;
}

static inline struct json_object *hxfix_ok(struct hxfix *f, const char *method, const char *params)
{
	return hxfix_ok_rev(f, method, params, NULL);
}

static inline const char *hxfix_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static inline int64_t hxfix_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		fail_msg("\"%s\" is not an integer in %s", key, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

#endif /* CAELUM_HXFIX_H */
