/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * /metrics in the Prometheus text format (0.0.4): a pure function of the documents the
 * handlers "status", "resources" and "service.list" give (the event counts by type are in
 * status.events.types, the HTTP, MCP and peer counters in status.http). Labels are
 * bounded: components, programs, maps, event types, services and dimensions; never pids.
 */
#ifndef CAELUM_METRICS_H
#define CAELUM_METRICS_H

#include <stddef.h>

#include <json-c/json.h>

/*
 * The exposition of status (required), resources and services (the service.list array;
 * either may be NULL: their families are then left out or zero) as a malloc'd buffer in
 * *out, *len bytes. The documents are borrowed. 0 or -errno.
 */
int metrics_render(struct json_object *status, struct json_object *resources,
		   struct json_object *services, char **out, size_t *len);

#endif /* CAELUM_METRICS_H */
