// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "hostaddr.h"

struct hostaddr {
	int fd;
};

int hostaddr_open(struct hostaddr **out)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR };
	struct hostaddr *h = calloc(1, sizeof(*h));
	int err;

	if (!h)
		return -ENOMEM;
	h->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (h->fd < 0 || bind(h->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		if (h->fd >= 0)
			close(h->fd);
		free(h);
		return err;
	}
	*out = h;
	return 0;
}

void hostaddr_close(struct hostaddr *h)
{
	if (!h)
		return;
	close(h->fd);
	free(h);
}

bool hostaddr_changed(struct hostaddr *h)
{
	char buf[8192];
	bool changed = false;

	for (;;) {
		ssize_t len = recv(h->fd, buf, sizeof(buf), 0);

		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0)
			return changed || errno == ENOBUFS; /* overrun: something was missed */
		if (len == 0)
			return changed;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)len);
		     nh = NLMSG_NEXT(nh, len))
			if (nh->nlmsg_type == RTM_NEWADDR || nh->nlmsg_type == RTM_DELADDR)
				changed = true;
	}
}

static bool addr_of(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(&out[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

int hostaddr_list(struct host_addr *out, size_t max, size_t *n, bool *truncated)
{
	struct ifaddrs *ifa, *i;

	*n = 0;
	*truncated = false;
	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		uint8_t a[16];
		bool dup = false;

		if (!i->ifa_addr || !addr_of(i->ifa_addr, a))
			continue;
		for (size_t j = 0; j < *n && !dup; j++)
			dup = !memcmp(out[j].addr, a, 16);
		if (dup)
			continue;
		if (*n == max) {
			*truncated = true;
			break;
		}
		memcpy(out[*n].addr, a, 16);
		out[*n].ifindex = if_nametoindex(i->ifa_name);
		(*n)++;
	}
	freeifaddrs(ifa);
	return 0;
}
