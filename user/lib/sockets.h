/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which processes hold a local port right now, in the caller's network namespace.
 *
 * `caelumctl port reserve` refuses a port that a process outside the service holds;
 * `caelumctl port who` lists the holders. Example: a python http.server on 127.0.0.1:8080
 * gives, for sockets_find(8080, IPPROTO_TCP, ...), one entry { pid 4242, comm "python3",
 * cgroup "/user.slice/...", AF_INET, "127.0.0.1", listening 1 }; a socket that two processes
 * share after fork() gives two entries with the same inode; a socket whose holder we cannot
 * see (another pid namespace, a process we may not inspect) gives one entry with pid 0.
 */
#ifndef CAELUM_SOCKETS_H
#define CAELUM_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_holder {
	uint64_t inode;	   /* socket inode; 0 for a TCP request socket (SYN_RECV) */
	pid_t pid;	   /* 0 when no process holding it was found (e.g. other user ns, orphan) */
	char comm[16];	   /* from /proc/PID/comm, "" when pid is 0 */
	char cgroup[4096]; /* cgroup v2 path from the "0::" line of /proc/PID/cgroup, "" if none */
	int family;	   /* AF_INET or AF_INET6 */
	int proto;	   /* IPPROTO_TCP or IPPROTO_UDP */
	char addr[46];	   /* local address as text (inet_ntop), e.g. "127.0.0.1", "::" */
	uint16_t port;
	int listening; /* 1 for TCP LISTEN, 0 otherwise */
	int state;     /* idiag_state: TCP_* (netinet/tcp.h); a bound-only TCP socket and an
			* unconnected UDP one are TCP_CLOSE, a connected UDP one ESTABLISHED */
};

/*
 * All sockets (tcp: every state, timewait and request sockets (inode 0, pid 0) and
 * bound-only sockets included; udp: all) whose local port is `port` and protocol `proto`, across
 * IPv4 and IPv6. *out is malloc'd (caller frees with free()), *n its length; *out is NULL when *n
 * is 0. A socket held by several processes appears once per process (pid differs); order is
 * unspecified. Bound-but-not-listening TCP sockets are only visible on Linux >= 6.7.
 * Returns 0 or -errno (-EINVAL for port 0 or a protocol other than TCP/UDP).
 */
int sockets_find(uint16_t port, int proto, struct sock_holder **out, size_t *n);

/*
 * Would h make bind() of its port fail, for a socket that sets SO_REUSEADDR (reuseaddr true,
 * what servers restarting on their port do) or for a plain one (false)?
 *   reuseaddr: LISTEN, bound-only, ESTABLISHED, SYN_SENT, every UDP socket -> true;
 *              closing states (FIN_WAIT1/2, TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING) -> false.
 *   plain:     every socket on the port, TIME_WAIT included -> true.
 *   both:      a request socket (SYN_RECV, inode 0) -> false (its listener is listed itself).
 * Example: a service killed while a client held a connection leaves a FIN_WAIT2 socket with
 * pid 0 on its port for up to tcp_fin_timeout: false for reuseaddr (the new instance may
 * bind), true for plain (`port alloc` must not hand the port out).
 * Kernel: net/ipv4/inet_connection_sock.c inet_bind_conflict(). (An old socket that did not
 * set SO_REUSEADDR itself still blocks; sock_diag does not report that flag.)
 */
bool sock_blocks_bind(const struct sock_holder *h, bool reuseaddr);
/* "listen", "established", "time_wait", "bound", ... for `port who`; UDP: "bound"/"connected". */
const char *sock_state_name(const struct sock_holder *h);

#endif /* CAELUM_SOCKETS_H */
