/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Network namespaces the rules apply in (ABI and semantics: include/caelum/netns.h): the
 * host's (caelumd's own) and those the config opts in with "network_namespaces", a list of
 * namespace files such as "/run/netns/blue" (ip netns add) or a bind mount of a container's
 * /proc/PID/ns/net. Each is named in the kernel by its cookie, read with SO_NETNS_COOKIE
 * (Linux >= 5.14) from a socket made inside it. A namespace removed and made again has a new
 * cookie: it is picked up by the next reload.
 */
#ifndef CAELUM_NETNS_USER_H
#define CAELUM_NETNS_USER_H

#include <stddef.h>
#include <stdint.h>

/* The cookie of the caller's network namespace. 0 or -errno. */
int netns_cookie_self(uint64_t *cookie);
/*
 * The cookie of the network namespace at path, read by a short-lived child that setns()es
 * into it (the caller's threads never change namespace). 0, or -errno with why filled
 * ("No such file or directory", "is not a network namespace").
 */
int netns_cookie_of(const char *path, uint64_t *cookie, char *why, size_t why_len);
/*
 * Make cm_netns (map_fd) hold the host's cookie and cookies[0..n), then the CONFIGURED
 * marker, then drop whatever else it held. Entries go in before stale ones go out, so a
 * namespace listed before and after is never unlisted in between. 0 or -errno.
 */
int netns_apply(int map_fd, const uint64_t *cookies, size_t n);

#endif /* CAELUM_NETNS_USER_H */
