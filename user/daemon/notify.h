/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Readiness, status and watchdog reports to the service manager (systemd Type=notify), through
 * libsystemd's sd_notify(3). Without $NOTIFY_SOCKET (not started by systemd) every call is a
 * no-op; nothing here changes what caelumd enforces. Messages and their meaning:
 * sd_notify(3) ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=", "WATCHDOG=1").
 */
#ifndef CAELUM_NOTIFY_H
#define CAELUM_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Programs are attached and the policy of registry revision registry_rev applied: READY=1 and
 * a STATUS line naming the revision and the number of services. Also used after a reload.
 */
void notify_ready(uint64_t registry_rev, size_t n_services);

/* A reload (SIGHUP) starts: RELOADING=1. Follow with notify_ready() or notify_status(). */
void notify_reloading(void);

/* caelumd is stopping; the pinned programs stay attached: STOPPING=1 and a STATUS saying so. */
void notify_stopping(void);

/* A free-form STATUS line (printf format), e.g. a rejected reload. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Called every loop tick with CLOCK_MONOTONIC now_ns: sends WATCHDOG=1 at half of
 * $WATCHDOG_USEC when the unit has WatchdogSec=, and a new STATUS when registry_rev differs
 * from the last one reported (registry changes made through caelumctl or the API).
 */
void notify_tick(uint64_t now_ns, uint64_t registry_rev, size_t n_services);

#endif /* CAELUM_NOTIFY_H */
