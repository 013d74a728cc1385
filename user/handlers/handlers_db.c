// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* db.list, db.show, db.apply, db.delete, db.resolve. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dbspec.h"
#include "handlers_int.h"

int h_db_list(struct hcall *c)
{
	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	if (!c->x->ops || !c->x->ops->databases)
		return hc_unavailable(c, "the databases view");
	c->result = c->x->ops->databases(c->x->owner);
	return 0;
}

int h_db_show(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	const char *name;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	if (!c->x->ops || !c->x->ops->database)
		return hc_unavailable(c, "the databases view");
	c->result = c->x->ops->database(c->x->owner, name);
	if (!c->result)
		return hc_not_found(c, "database '%s' not found", name);
	return 0;
}

static void emit_db_event(const struct handler_ctx *x, const char *type, const char *name)
{
	struct json_object *e = event_new(x->ev, type, "changed");

	json_object_object_add(e, "database", json_object_new_string(name));
	events_emit(x->ev, e);
}

static int db_applied(struct hcall *c)
{
	if (c->committed) /* a no-op changed nothing: no event */
		emit_db_event(c->x, "db_applied", c->name);
	c->result = c->x->ops && c->x->ops->database ? c->x->ops->database(c->x->owner, c->name)
						     : json_object_new_object();
	return 0;
}

int h_db_apply(struct hcall *c)
{
	static const char *const keys[] = { "spec", "file", "host", NULL };
	struct json_object *obj = hc_param(c, "spec");
	struct verr e = {};
	struct db_spec spec;
	const char *file, *on;
	int rc;

	if (hc_params_check(c, keys) || hc_param_str(c, "file", false, &file) ||
	    hc_param_host(c, &on))
		return -1;
	if (!obj)
		return hc_fail(c, EXIT_USAGE, "params: spec: missing required key");
	if (dbspec_from_json(obj, file ? file : "spec", &spec, &e))
		return hc_fail_verr(c, EXIT_CONFIG, &e);
	snprintf(c->name, sizeof(c->name), "%s", spec.name);
	rc = registry_db_apply_async(c->x->reg, &spec, ORIGIN_API, on, hc_async(c), &c->commit, &e);
	dbspec_free(&spec);
	if (rc < 0)
		return hc_fail_verr(
			c, registry_err_unavailable(rc) ? EXIT_UNAVAILABLE : EXIT_CONFIG, &e);
	return hc_commit(c, rc, db_applied);
}

static int db_deleted(struct hcall *c)
{
	if (c->committed) /* a no-op changed nothing: no event */
		emit_db_event(c->x, "db_deleted", c->name);
	c->result = json_object_new_object();
	json_object_object_add(c->result, "deleted", json_object_new_string(c->name));
	return 0;
}

int h_db_delete(struct hcall *c)
{
	static const char *const keys[] = { "name", "host", NULL };
	struct verr e = {};
	const char *name, *on;
	int rc;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name) || hc_param_host(c, &on))
		return -1;
	snprintf(c->name, sizeof(c->name), "%s", name);
	rc = registry_db_delete_async(c->x->reg, name, on, hc_async(c), &c->commit, &e);
	if (rc < 0) {
		c->err->not_found = rc == -ENOENT;
		return hc_fail_verr(c, hc_registry_exit(rc), &e);
	}
	return hc_commit(c, rc, db_deleted);
}

/*
 * Look NAME up again now. The lookup runs off the loop: the result carries "resolutions",
 * and db.show's "resolutions" passes it once the answer is in (caelumctl db resolve waits).
 */
int h_db_resolve(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	const char *name;
	uint64_t before;
	int err;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	if (!c->x->ops || !c->x->ops->database_resolve)
		return hc_unavailable(c, "name resolution");
	err = c->x->ops->database_resolve(c->x->owner, name, &before);
	if (err == -ENOENT)
		return hc_not_found(c, "database '%s' not found", name);
	if (err)
		return hc_fail(c, EXIT_FAIL, "failed to start resolving database '%s': %s", name,
			       strerror(-err));
	c->result = json_object_new_object();
	json_object_object_add(c->result, "name", json_object_new_string(name));
	json_object_object_add(c->result, "resolutions", json_object_new_int64((int64_t)before));
	return 0;
}
