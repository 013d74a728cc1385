/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Credential files of services: checked before a service starts (exists, regular, not
 * empty, mode no looser than required, owner) and watched afterwards for drift. Values are
 * never read into messages: only a SHA-256 fingerprint is shown.
 */
#ifndef CAELUM_CREDENTIALS_H
#define CAELUM_CREDENTIALS_H

#include <json-c/json.h>

#include "jsonv.h"
#include "spec.h"

struct daemon;

/* Check every credential file of s (env credentials are listed for caelumctl to check);
 * failures into e, labelled with the service. The credentials as JSON (new reference). */
struct json_object *credentials_check(const struct service_spec *s, struct verr *e);
/* Compare every service's credential files with what was seen before: credential_drift. */
void credentials_watch(struct daemon *d);
void credentials_close(struct daemon *d);

#endif /* CAELUM_CREDENTIALS_H */
