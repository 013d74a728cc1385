// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "health.h"
#include "probe.h"

const char *health_state_name(int state)
{
	switch (state) {
	case HEALTH_STATE_PASSING:
		return "passing";
	case HEALTH_STATE_WARNING:
		return "warning";
	case HEALTH_STATE_CRITICAL:
		return "critical";
	}
	return "unknown";
}

struct health_ctx {
	struct daemon *d;
	char name[SERVICE_NAME_MAX + 1];
	int64_t threshold;
};

static void emit_change(struct daemon *d, struct svc_rt *rt, int from)
{
	struct json_object *e = event_new(d->ev, "health_changed", "detected");

	json_object_object_add(e, "service", json_object_new_string(rt->name));
	json_object_object_add(e, "from", json_object_new_string(health_state_name(from)));
	json_object_object_add(e, "to", json_object_new_string(health_state_name(rt->health)));
	json_object_object_add(e, "failures", json_object_new_int(rt->health_failures));
	json_object_object_add(e, "detail",
			       json_object_new_string(rt->health_detail ? rt->health_detail : ""));
	events_emit(d->ev, e);
}

static void on_result(void *ctx, const struct probe_result *r)
{
	struct health_ctx *hc = ctx;
	struct svc_rt *rt = svcs_find(&hc->d->svcs, hc->name);
	int from;

	if (rt) {
		rt->health_probe = NULL;
		from = rt->health;
		rt->health_failures = r->ok ? 0 : rt->health_failures + 1;
		if (r->ok)
			rt->health = HEALTH_STATE_PASSING;
		else if (rt->health_failures >= hc->threshold)
			rt->health = HEALTH_STATE_CRITICAL;
		else
			rt->health = HEALTH_STATE_WARNING;
		free(rt->health_detail);
		rt->health_detail = r->detail[0] ? strdup(r->detail) : NULL;
		if (rt->health != from) {
			rt->health_since_ns = time_now_ns();
			emit_change(hc->d, rt, from);
		}
	}
	free(hc);
}

/* Who an exec check runs as: health.user, "nobody" when unset; a uid without a passwd entry
 * runs with the gid of the same number. 0, or -ENOENT for a name nobody has. */
static int check_user(const char *user, uid_t *uid, gid_t *gid)
{
	const char *name = user ? user : "nobody";
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (strspn(name, "0123456789") == strlen(name)) {
		*uid = (uid_t)strtoul(name, NULL, 10);
		getpwuid_r(*uid, &pw, buf, sizeof(buf), &res);
		*gid = res ? res->pw_gid : (gid_t)*uid;
		return 0;
	}
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

static void start(struct daemon *d, struct svc_rt *rt, const struct spec_health *h)
{
	struct probe_spec ps = { .timeout_ms = (unsigned int)h->timeout_s * 1000 };
	struct health_ctx *hc = calloc(1, sizeof(*hc));

	if (!hc)
		return;
	hc->d = d;
	hc->threshold = h->failures_before_critical;
	snprintf(hc->name, sizeof(hc->name), "%s", rt->name);
	ps.kind = h->kind == HEALTH_TCP	   ? PROBE_TCP
		  : h->kind == HEALTH_HTTP ? PROBE_HTTP
					   : PROBE_EXEC;
	snprintf(ps.target, sizeof(ps.target), "%s", h->target ? h->target : "");
	ps.argv = h->argv;
	snprintf(ps.cgroup, sizeof(ps.cgroup), "%s", d->probe_cgroup);
	if (ps.kind == PROBE_EXEC) {
		ps.run_as = true;
		if (check_user(h->user, &ps.uid, &ps.gid)) {
			struct probe_result r = { .ok = 0 };

			snprintf(r.detail, sizeof(r.detail), "health.user \"%s\": no such user",
				 h->user ? h->user : "nobody");
			rt->health_probe = NULL;
			on_result(hc, &r);
			return;
		}
	}
	if (probe_start(d->loop, &ps, on_result, hc, &rt->health_probe)) {
		rt->health_probe = NULL;
		free(hc);
	}
}

void health_stop(struct svc_rt *rt)
{
	probe_cancel(rt->health_probe);
	rt->health_probe = NULL;
	rt->health = HEALTH_STATE_UNKNOWN;
	rt->health_failures = 0;
	free(rt->health_detail);
	rt->health_detail = NULL;
}

void health_tick(struct daemon *d, uint64_t now)
{
	const struct reg_state *st = registry_state(d->reg);

	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct spec_health *h = &st->svcs[i].spec.health;
		struct svc_rt *rt = svcs_find(&d->svcs, st->svcs[i].spec.name);

		if (!rt || h->kind == HEALTH_NONE || !rt->running || rt->health_probe ||
		    now - rt->health_last_ns < (uint64_t)h->interval_s * 1000000000ULL)
			continue;
		rt->health_last_ns = now;
		start(d, rt, h);
	}
}

struct json_object *health_json(const struct svc_rt *rt)
{
	struct json_object *o = json_object_new_object();
	char ts[64];

	json_object_object_add(o, "state", json_object_new_string(health_state_name(rt->health)));
	json_object_object_add(o, "failures", json_object_new_int(rt->health_failures));
	json_object_object_add(
		o, "detail", rt->health_detail ? json_object_new_string(rt->health_detail) : NULL);
	if (rt->health_since_ns) {
		time_format_rfc3339(rt->health_since_ns, ts, sizeof(ts));
		json_object_object_add(o, "since", json_object_new_string(ts));
	}
	return o;
}
