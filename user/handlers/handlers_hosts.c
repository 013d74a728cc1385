// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* host.list, host.show NAME, service.where NAME: the machine registry and discovery. */
#include <string.h>

#include "handlers_int.h"
#include "registry.h"

static int no_machine_registry(struct hcall *c)
{
	return hc_fail(c, EXIT_FAIL,
		       "no machine registry: the registry backend is '%s' (it needs \"registry\": "
		       "{\"backend\": \"etcd\"}, caelum.json(5))",
		       registry_backend_name(c->x->reg));
}

int h_host_list(struct hcall *c)
{
	if (hc_params_check(c, (const char *const[]){ NULL }))
		return -1;
	c->result = c->x->ops->hosts ? c->x->ops->hosts(c->x->owner) : NULL;
	return c->result ? 0 : no_machine_registry(c);
}

int h_host_show(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	struct json_object *all;
	const char *name;

	if (hc_params_check(c, keys) || hc_param_str(c, "name", true, &name))
		return -1;
	all = c->x->ops->hosts ? c->x->ops->hosts(c->x->owner) : NULL;
	if (!all)
		return no_machine_registry(c);
	for (size_t i = 0; i < json_object_array_length(all) && !c->result; i++) {
		struct json_object *h = json_object_array_get_idx(all, i);

		if (!strcmp(json_object_get_string(json_object_object_get(h, "name")), name))
			c->result = json_object_get(h);
	}
	json_object_put(all);
	return c->result ? 0 : hc_not_found(c, "no host '%s' in the machine registry", name);
}

int h_service_where(struct hcall *c)
{
	static const char *const keys[] = { "name", NULL };
	const char *name;

	if (hc_params_check(c, keys) || hc_param_service(c, "name", &name))
		return -1;
	if (!registry_service(c->x->reg, name))
		return hc_not_found(c, "service '%s' not found", name);
	c->result = c->x->ops->service_where ? c->x->ops->service_where(c->x->owner, name) : NULL;
	return c->result ? 0 : no_machine_registry(c);
}
