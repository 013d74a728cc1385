// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sd_notify(3) reports for systemd's Type=notify (see notify.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static struct {
	bool ready; /* READY=1 sent: STATUS updates follow revision changes */
	bool wd_checked;
	uint64_t wd_interval_ns; /* 0: no watchdog */
	uint64_t wd_last_ns;
	uint64_t rev;
} nt;

/* sd_notify() returns > 0 when sent, 0 without $NOTIFY_SOCKET, -errno on failure. */
static void send_state(const char *state)
{
	int err = sd_notify(0, state);

	if (err < 0)
		p_warn("failed to notify the service manager ('%.*s'): %s",
		       (int)strcspn(state, "\n"), state, strerror(-err));
}

void notify_status(const char *fmt, ...)
{
	char buf[512] = "STATUS=";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + 7, sizeof(buf) - 7, fmt, ap);
	va_end(ap);
	send_state(buf);
}

void notify_ready(uint64_t registry_rev, size_t n_services)
{
	char buf[256];

	nt.ready = true;
	nt.rev = registry_rev;
	snprintf(buf, sizeof(buf),
		 "READY=1\nSTATUS=enforcing registry revision %llu (%zu services)",
		 (unsigned long long)registry_rev, n_services);
	send_state(buf);
}

void notify_reloading(void)
{
	send_state("RELOADING=1\nSTATUS=reloading the configuration");
}

void notify_stopping(void)
{
	nt.ready = false;
	send_state("STOPPING=1\nSTATUS=stopping; the pinned programs stay attached");
}

/* sd_watchdog_enabled(3): > 0 and the interval when WatchdogSec= is set for this pid. */
static void watchdog_check(void)
{
	uint64_t usec = 0;
	int r;

	nt.wd_checked = true;
	r = sd_watchdog_enabled(0, &usec);
	if (r < 0)
		p_warn("invalid $WATCHDOG_USEC or $WATCHDOG_PID: %s; no watchdog pings",
		       strerror(-r));
	if (r > 0)
		nt.wd_interval_ns = usec * 1000;
}

void notify_tick(uint64_t now_ns, uint64_t registry_rev, size_t n_services)
{
	if (!nt.ready)
		return;
	if (!nt.wd_checked)
		watchdog_check();
	if (nt.wd_interval_ns && now_ns - nt.wd_last_ns >= nt.wd_interval_ns / 2) {
		nt.wd_last_ns = now_ns;
		send_state("WATCHDOG=1");
	}
	if (registry_rev != nt.rev) {
		nt.rev = registry_rev;
		notify_status("enforcing registry revision %llu (%zu services)",
			      (unsigned long long)registry_rev, n_services);
	}
}
