/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the probe kinds (probe.c, probe_http.c); not for other modules. */
#ifndef CAELUM_PROBE_INT_H
#define CAELUM_PROBE_INT_H

#include <stdint.h>

#include "probe.h"

/* Milliseconds until deadline (monotonic ms), 0 when it passed. */
unsigned int probe_ms_left(uint64_t deadline);
/* The probe ran: its verdict and why. Returns 0, so that a probe can return verdict(...). */
int probe_verdict(struct probe_result *r, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A local failure (or, -EINVAL, a spec that cannot be probed): err, and why in the detail. */
int probe_failed(struct probe_result *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define verdict probe_verdict
#define failed	probe_failed
#define ms_left probe_ms_left

/*
 * GET url with libcurl (probe_http.c): ok for a 2xx/3xx answer within timeout_ms, by
 * deadline (monotonic ms). 0 (the verdict is in r) or -errno. A weak symbol: NULL in
 * programs that do not link probe_http.o (caelumctl).
 */
int probe_http(const char *url, unsigned int timeout_ms, uint64_t deadline, struct probe_result *r)
	__attribute__((weak));

#endif /* CAELUM_PROBE_INT_H */
