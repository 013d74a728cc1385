/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The host's own interface addresses, for the LOCAL class of the database rules
 * (include/caelum/connect.h): listed with getifaddrs(3), changes noticed on an rtnetlink
 * socket subscribed to RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR (RTM_NEWADDR,
 * RTM_DELADDR; rtnetlink(7)). A change is only a trigger: the whole list is read again,
 * so a lost message (ENOBUFS) loses nothing.
 */
#ifndef CAELUM_HOSTADDR_H
#define CAELUM_HOSTADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "connect_user.h"

struct hostaddr;

/* Open the netlink watch (non-blocking). 0 or -errno. */
int hostaddr_open(struct hostaddr **out);
void hostaddr_close(struct hostaddr *h);
/* Drain pending netlink messages without blocking: true when an address may have changed. */
bool hostaddr_changed(struct hostaddr *h);
/* Every IPv4 and IPv6 address of every interface, deduplicated, at most max. 0 or -errno;
 * *truncated set when there were more. */
int hostaddr_list(struct host_addr *out, size_t max, size_t *n, bool *truncated);

#endif /* CAELUM_HOSTADDR_H */
