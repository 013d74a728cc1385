/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Network bandwidth per service (bpf/bandwidth.bpf.c <-> user/enforce/bandwidth.c).
 *
 * A service that reserves bandwidth ("resources": {"egress_mbit": 20, "ingress_mbit": 40},
 * megabits per second, 10^6 bit/s) is held to it in the kernel by two cgroup_skb programs
 * attached at cgroup_root, cm_bw_egress and cm_bw_ingress. A packet belongs to the service
 * whose cgroup is the ancestor, at the service level, of the cgroup of its socket
 * (bpf_skb_ancestor_cgroup_id(): the socket's cgroup, not the task that happens to run when
 * the packet leaves or arrives, which for ingress is any task or none).
 *
 *   cm_bw       (HASH)        key: service cgroup id, value: struct caelum_bw
 *                             the limits and, per direction, the virtual queue
 *   cm_bw_count (PERCPU_HASH) key: service cgroup id, value: struct caelum_bw_count
 *                             bytes, packets and what was done to them, per CPU
 *
 *   no entry                 not limited and not counted (the common case costs one lookup)
 *   entry, no CAELUM_BW_F_<dir> in flags
 *                            counted in that direction, never throttled
 *   entry with the flag      held to rate_Bps in that direction
 *
 * The limiter is a virtual queue (a token bucket seen from the other side): next_ns is the
 * time at which the queue would have sent the last byte it accepted. A packet of len bytes
 * moves it by len * 10^9 / rate_Bps ns from max(next_ns, now - burst_ns); the packet's
 * backlog is how far that lies in the future. No packet waits: the backlog only decides
 *   backlog <= mark_ns              pass
 *   mark_ns < backlog <= drop_ns    TCP: pass with a congestion signal (CE mark when the
 *                                   packet is ECN-capable, else, on egress, the
 *                                   congestion-notification return value, which makes the
 *                                   sender's TCP enter CWR: net/ipv4/tcp_output.c,
 *                                   __tcp_transmit_skb()); on ingress a TCP packet that
 *                                   is not ECN-capable passes unsignalled (there is no
 *                                   other signal there); anything else: dropped
 *   backlog > drop_ns               dropped (TCP egress: dropped with the signal)
 * A dropped packet does not move the queue. Mode audit (components.bandwidth) decides the
 * same, counts it as "over" and passes everything.
 *
 * Worked example: egress 20 Mbit/s = 2,500,000 B/s; a 64 KiB loopback TCP segment moves the
 * queue by 26.2 ms. An idle service may send burst_ns of traffic at once; a sender faster
 * than the rate is signalled once the queue holds mark_ns and dropped past drop_ns. UDP at
 * 100 Mbit/s from that service: 4 datagrams in 5 are dropped (counted, bandwidth_exceeded).
 * A service with ingress_mbit only: its egress is counted, not throttled.
 *
 * Events: every throttled packet (signalled or dropped; in audit: would have been) is one
 * occurrence of CAELUM_EV_BW_EXCEEDED for (service, direction), folded in the kernel like
 * the denials (include/caelum/common.h): one event at once, then one follow-up a second
 * with the count while it lasts. cgroup_id is the socket's cgroup; pid and comm are 0 and
 * empty: a packet is often sent or received in softirq, on behalf of no task one can name.
 *
 * Namespaces: only sockets in a network namespace listed in cm_netns (include/caelum/netns.h)
 * are limited and counted; traffic inside a container's own network namespace is not the
 * host's bandwidth.
 */
#ifndef CAELUM_BANDWIDTH_H
#define CAELUM_BANDWIDTH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "caelum/common.h"

#define CAELUM_MAX_BW_SERVICES CAELUM_MAX_SERVICES

#define CAELUM_BW_EGRESS  0
#define CAELUM_BW_INGRESS 1
#define CAELUM_BW_DIRS	  2

/* flags: the directions that are limited (bit = 1 << CAELUM_BW_<dir>). */
#define CAELUM_BW_F_EGRESS  0x0001
#define CAELUM_BW_F_INGRESS 0x0002

/*
 * The queue's thresholds caelumd writes, in ns at the service's rate (so they scale with it).
 * Measured on loopback (RTT ~20 us, 64 KiB segments), where a congestion signal cannot
 * bring TCP under 2 segments per RTT (Gbit/s): TCP is held there by the drops, and a
 * sender whose segment was dropped locally with nothing in flight waits for its probe
 * timer, at least TCP_RTO_MIN (200 ms; include/net/tcp.h, tcp_check_probe_timer() and
 * tcp_probe0_base()).
 * burst + drop must cover that wait or the credit of the wait is lost: with 5 + 200 ms a
 * 20 Mbit/s sender got 18.2 Mbit/s, with 5 + 50 ms 3.9; with 100 + 150 ms 21.0.
 */
#define CAELUM_BW_BURST_NS (100ULL * 1000000ULL)
#define CAELUM_BW_MARK_NS  (5ULL * 1000000ULL)
#define CAELUM_BW_DROP_NS  (150ULL * 1000000ULL)

/* rate_Bps of a rate in kbit/s (1 kbit/s = 125 B/s). */
#define CAELUM_BW_KBIT_TO_BPS(k) ((k)*125ULL)

/* The queue of one direction. next_ns is written by the programs only (atomically). */
struct caelum_bw_queue {
	__u64 rate_Bps; /* bytes per second; meaningful when the direction's flag is set */
	__u64 burst_ns; /* credit an idle service keeps, in ns at the rate */
	__u64 mark_ns;	/* backlog from which TCP is signalled and other traffic dropped */
	__u64 drop_ns;	/* backlog from which everything is dropped */
	__u64 next_ns;	/* bpf_ktime_get_ns() time the virtual queue is busy until */
};

struct caelum_bw {
	__u32 flags; /* CAELUM_BW_F_* */
	__u32 pad;
	struct caelum_bw_queue q[CAELUM_BW_DIRS];
};

/* What happened to a service's packets in one direction (one CPU's share). */
struct caelum_bw_dir_count {
	__u64 bytes;	 /* passed (what the service really sent or received) */
	__u64 packets;	 /* passed */
	__u64 signalled; /* passed with a congestion signal (CE or CN) */
	__u64 dropped;	 /* dropped */
	__u64 dropped_bytes;
	__u64 over; /* audit: would have been signalled or dropped */
};

struct caelum_bw_count {
	struct caelum_bw_dir_count dir[CAELUM_BW_DIRS];
};

/* What was done to an over-rate packet (struct caelum_ev_bw.verdict, in common.h). */
#define CAELUM_BW_V_PASS   0
#define CAELUM_BW_V_SIGNAL 1 /* passed with CE or CN */
#define CAELUM_BW_V_DROP   2

/*
 * The verdict for a packet whose virtual-queue backlog is backlog_ns (signed: negative =
 * the queue is idle before it). tcp: the packet is TCP (it can be signalled). Shared by the
 * programs and the host unit tests.
 */
static __always_inline __u32 caelum_bw_verdict(const struct caelum_bw_queue *q, __s64 backlog_ns,
					       int tcp)
{
	if (backlog_ns <= (__s64)q->mark_ns)
		return CAELUM_BW_V_PASS;
	if (tcp && backlog_ns <= (__s64)q->drop_ns)
		return CAELUM_BW_V_SIGNAL;
	return CAELUM_BW_V_DROP;
}

/* ns the queue needs for len bytes at rate_Bps (rate_Bps > 0). */
static __always_inline __u64 caelum_bw_cost_ns(__u64 len, __u64 rate_Bps)
{
	return len * 1000000000ULL / rate_Bps;
}

#endif /* CAELUM_BANDWIDTH_H */
