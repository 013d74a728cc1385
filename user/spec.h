/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Service specs: {"name": "alpha", "ports": ["8100/tcp", "8101/udp", "9000"]}, one file per
 * service (services_dir/NAME.json) or applied through caelumctl. Protocol defaults to tcp;
 * "A-B" reserves a range.
 */
#ifndef CAELUM_SPEC_H
#define CAELUM_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "capacity.h"
#include "jsonv.h"
#include "portrange.h"

#define SERVICE_NAME_MAX 63
#define SPEC_MAX_PORT_ITEMS 4096 /* entries in "ports" (each may be a range) */

struct service_spec {
	char name[SERVICE_NAME_MAX + 1];
	struct port_range *ports; /* proto is IPPROTO_TCP or IPPROTO_UDP */
	size_t n_ports;
	char *source; /* the file it came from, NULL when applied through the API */
	struct spec_resources res; /* all zero when the spec has no "resources" */
};

/* [a-z0-9][a-z0-9-]{0,62} */
bool service_name_valid(const char *s);
int spec_from_json(struct json_object *obj, const char *file, struct service_spec *s,
		   struct verr *e);
/* Load services_dir/NAME.json; the name inside must match NAME. */
int spec_load_file(const char *path, struct service_spec *s, struct verr *e);
/* Every *.json in dir, sorted by name, with cross-service conflicts reported. A missing
 * dir is an empty set. */
int spec_load_dir(const char *dir, struct service_spec **out, size_t *n, struct verr *e);
/* Conflicts between specs: same port/proto claimed twice (within or across services). */
int spec_check_conflicts(const struct service_spec *specs, size_t n, struct verr *e);
/* {"name": ..., "ports": [...]} (new reference). */
struct json_object *spec_to_json(const struct service_spec *s);
void spec_free(struct service_spec *s);
void specs_free(struct service_spec *specs, size_t n);
int spec_copy(struct service_spec *dst, const struct service_spec *src);
bool spec_has_resources(const struct service_spec *s);
/* Number of (port, proto) pairs the spec reserves. */
size_t spec_port_count(const struct service_spec *s);

#endif /* CAELUM_SPEC_H */
