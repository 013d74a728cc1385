/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * /metrics in the Prometheus text format (0.0.4). Everything comes from the same handler
 * results that status/resources/service.list give, plus the event counters. Labels are
 * bounded: components, programs, maps, event types, services and dimensions; never pids.
 */
#ifndef CAELUM_METRICS_H
#define CAELUM_METRICS_H

#include <stddef.h>

struct daemon;

/* The exposition as a malloc'd buffer. 0 or -errno. */
int metrics_render(struct daemon *d, char **out, size_t *len);

#endif /* CAELUM_METRICS_H */
