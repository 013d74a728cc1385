// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caelumctl token { show | rotate }: the API token (HTTP mutations, MCP). */
#include <stdio.h>

#include "ctl.h"
#include "rpc.h"

/* One token method, its token printed. */
static int token_cmd(const char *method, int argc)
{
	struct json_object *res;
	int rc;

	if (argc)
		return ctl_usage("token %s takes no arguments", method + 6);
	rc = ctl_call_show(method, NULL, &res);
	if (rc || !res)
		return rc;
	printf("%s\n", jstr(res, "token"));
	json_object_put(res);
	return 0;
}

static int do_token_show(int argc, char **argv)
{
	(void)argv;
	return token_cmd("token.show", argc);
}

static int do_token_rotate(int argc, char **argv)
{
	(void)argv;
	return token_cmd("token.rotate", argc);
}

int do_token(int argc, char **argv)
{
	static const struct cmd cmds[] = {
		{ "show", do_token_show },
		{ "rotate", do_token_rotate },
		{ "help", NULL },
		{},
	};

	return ctl_object(cmds, NULL,
			  "token { show | rotate }\n"
			  "  show    print the API token (Authorization: Bearer TOKEN)\n"
			  "  rotate  replace it; the old one stops working at once",
			  argc, argv);
}
