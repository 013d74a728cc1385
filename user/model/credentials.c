// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "credentials.h"
#include "daemon.h"
#include "fingerprint.h"

/* What a file looked like at one observation. */
struct cred_seen {
	char service[SERVICE_NAME_MAX + 1];
	char file[CRED_PATH_MAX + 1];
	int exists;
	mode_t mode;
	uid_t uid;
	char sha256[FINGERPRINT_HEX];
	int mark;
};

static const char *user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	snprintf(buf, len, "%s", pw ? pw->pw_name : "?");
	return buf;
}

static void check_file(const struct service_spec *s, size_t i, const struct spec_cred *cr,
		       struct json_object *o, struct verr *e)
{
	char p[JV_PATH_MAX], hex[FINGERPRINT_HEX], have[8], want[8], u[64];
	struct stat st;
	bool ok = false;

	jv_path_idx(p, "credentials", i);
	if (stat(cr->file, &st)) {
		verr_add(e, s->name, p, "%s: %s", cr->file, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		verr_add(e, s->name, p, "%s is not a regular file", cr->file);
	} else if (!st.st_size) {
		verr_add(e, s->name, p, "%s is empty", cr->file);
	} else if (cr->mode >= 0 && (st.st_mode & 07777 & ~(mode_t)cr->mode)) {
		cred_mode_fmt((int)st.st_mode, have, sizeof(have));
		cred_mode_fmt(cr->mode, want, sizeof(want));
		verr_add(e, s->name, p, "%s has mode %s, looser than %s", cr->file, have, want);
	} else if (cr->owner_uid >= 0 && st.st_uid != (uid_t)cr->owner_uid) {
		verr_add(e, s->name, p, "%s is owned by %s (uid %u), expected %s", cr->file,
			 user_name(st.st_uid, u, sizeof(u)), st.st_uid, cr->owner);
	} else {
		ok = true;
	}
	if (ok && !fingerprint_file(cr->file, hex))
		json_object_object_add(o, "sha256", json_object_new_string(hex));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
}

struct json_object *credentials_check(const struct service_spec *s, struct verr *e)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->n_creds; i++) {
		const struct spec_cred *cr = &s->creds[i];
		struct json_object *o = json_object_new_object();

		if (cr->kind == CRED_ENV) {
			json_object_object_add(o, "env", json_object_new_string(cr->env));
		} else {
			json_object_object_add(o, "file", json_object_new_string(cr->file));
			check_file(s, i, cr, o, e);
		}
		json_object_array_add(arr, o);
	}
	return arr;
}

/* ---- drift ---- */

/* Every credential file as last seen (the daemon's d->cred_watch). */
struct cred_watch {
	struct cred_seen *v;
	size_t n;
};

static struct cred_seen *seen_find(struct cred_watch *w, const char *svc, const char *file)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->v[i].service, svc) && !strcmp(w->v[i].file, file))
			return &w->v[i];
	return NULL;
}

static void observe(const char *file, struct cred_seen *now)
{
	struct stat st;

	memset(now->sha256, 0, sizeof(now->sha256));
	now->exists = !stat(file, &st);
	now->mode = now->exists ? st.st_mode & 07777 : 0;
	now->uid = now->exists ? st.st_uid : 0;
	if (now->exists && fingerprint_file(file, now->sha256))
		now->sha256[0] = '\0';
}

/* "mode 0600 -> 0644", "owner root -> alice", "content changed", "removed", "created". */
static void drift_describe(const struct cred_seen *a, const struct cred_seen *b, char *buf,
			   size_t len)
{
	char x[64], y[64];

	if (a->exists && !b->exists)
		snprintf(buf, len, "removed");
	else if (!a->exists && b->exists)
		snprintf(buf, len, "created");
	else if (a->mode != b->mode)
		snprintf(buf, len, "mode %04o -> %04o", a->mode, b->mode);
	else if (a->uid != b->uid)
		snprintf(buf, len, "owner %s -> %s", user_name(a->uid, x, sizeof(x)),
			 user_name(b->uid, y, sizeof(y)));
	else
		snprintf(buf, len, "content changed");
}

static void emit_drift(struct daemon *d, const struct cred_seen *old, const struct cred_seen *now)
{
	struct json_object *e = event_new(d->ev, "credential_drift", "detected");
	char what[128];

	drift_describe(old, now, what, sizeof(what));
	json_object_object_add(e, "service", json_object_new_string(now->service));
	json_object_object_add(e, "file", json_object_new_string(now->file));
	json_object_object_add(e, "change", json_object_new_string(what));
	if (old->sha256[0])
		json_object_object_add(e, "sha256_before", json_object_new_string(old->sha256));
	if (now->sha256[0])
		json_object_object_add(e, "sha256", json_object_new_string(now->sha256));
	events_emit(d->ev, e);
}

static void watch_one(struct daemon *d, struct cred_watch *w, const char *svc, const char *file)
{
	struct cred_seen now = { 0 }, *old = seen_find(w, svc, file), *tmp;

	snprintf(now.service, sizeof(now.service), "%s", svc);
	snprintf(now.file, sizeof(now.file), "%s", file);
	observe(file, &now);
	now.mark = 1;
	if (old) {
		if (old->exists != now.exists || old->mode != now.mode || old->uid != now.uid ||
		    strcmp(old->sha256, now.sha256))
			emit_drift(d, old, &now);
		*old = now;
		return;
	}
	/* First sight: this is the baseline. */
	tmp = realloc(w->v, (w->n + 1) * sizeof(*w->v));
	if (!tmp)
		return;
	w->v = tmp;
	w->v[w->n++] = now;
}

void credentials_watch(struct daemon *d)
{
	const struct reg_state *st = registry_state(d->reg);
	struct cred_watch *w = d->cred_watch;
	size_t k = 0;

	if (!w && !(w = d->cred_watch = calloc(1, sizeof(*w))))
		return;
	for (size_t i = 0; i < w->n; i++)
		w->v[i].mark = 0;
	for (size_t i = 0; i < st->n_svcs; i++)
		for (size_t j = 0; j < st->svcs[i].spec.n_creds; j++)
			if (st->svcs[i].spec.creds[j].kind == CRED_FILE)
				watch_one(d, w, st->svcs[i].spec.name,
					  st->svcs[i].spec.creds[j].file);
	/* Forget what no service declares any more. */
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].mark)
			w->v[k++] = w->v[i];
	w->n = k;
}

void credentials_close(struct daemon *d)
{
	if (d->cred_watch)
		free(d->cred_watch->v);
	free(d->cred_watch);
	d->cred_watch = NULL;
}
