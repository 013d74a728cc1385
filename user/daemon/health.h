/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Health checks of running services: every interval_s a probe (tcp, http or exec) out of
 * process; passing on success, warning after a failure, critical after
 * failures_before_critical in a row. Each change is a health_changed event.
 */
#ifndef CAELUM_HEALTH_H
#define CAELUM_HEALTH_H

#include <stdint.h>
#include <json-c/json.h>

struct daemon;
struct svc_rt;

void health_tick(struct daemon *d, uint64_t now);
/* A service stopped: its health becomes unknown, any probe in flight is dropped. */
void health_stop(struct svc_rt *rt);
struct json_object *health_json(const struct svc_rt *rt);
const char *health_state_name(int state);

#endif /* CAELUM_HEALTH_H */
