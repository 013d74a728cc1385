/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelumctl's half of the mandatory startup validation (ctl_validate.c). */
#ifndef CAELUM_VALIDATE_H
#define CAELUM_VALIDATE_H

#include <json-c/json.h>

#include "jsonv.h"

struct rpc_client;

struct validation {
	struct json_object *check;	  /* caelumd's run.check result */
	struct json_object *fingerprints; /* [{"env", "sha256"}] of the environment credentials */
	struct json_object *databases;	  /* [{"name", "ok", "detail"}] */
	struct verr fails;		  /* every failure, both halves */
};

/* 0 (failures, if any, in v->fails) or the exit code of a failed call (already printed). */
int validate_service(struct rpc_client *c, const char *name, unsigned int wait_s,
		     struct validation *v);
void validation_free(struct validation *v);

#endif /* CAELUM_VALIDATE_H */
