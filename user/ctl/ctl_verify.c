// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl verify: every enabled enforcement path exercised for real. */
#include <stdbool.h>
#include <stdio.h>

#include "ctl.h"
#include "rpc.h"

/* caelumctl verify: exit 0 only if every enabled component proved itself. */
int do_verify(int argc, char **argv)
{
	struct json_object *res, *comps;
	bool ok;
	int rc;

	(void)argv;
	if (argc)
		return ctl_usage("verify takes no arguments");
	rc = ctl_call("verify", NULL, &res);
	if (rc)
		return rc;
	ok = json_object_get_boolean(json_object_object_get(res, "ok"));
	if (ctl.json) {
		ctl_json_print(res);
		return ok ? EXIT_OK : EXIT_FAIL;
	}
	comps = json_object_object_get(res, "components");
	json_object_object_foreach (comps, name, v) {
		if (json_object_is_type(v, json_type_string))
			printf("  %-10s %s\n", name, json_object_get_string(v));
		else
			printf("  %-10s %-6s %s\n", name,
			       json_object_get_boolean(json_object_object_get(v, "ok")) ? "ok"
											: "FAILED",
			       jstr(v, "detail"));
	}
	printf("%s\n", ok ? "verified: every enabled component denied what it must"
			  : "verification FAILED");
	json_object_put(res);
	return ok ? EXIT_OK : EXIT_FAIL;
}
