// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Bandwidth per service: cgroup_skb/egress and cgroup_skb/ingress attached at cgroup_root.
 * A packet of a service with an entry in cm_bw is counted per CPU and passed through the
 * service's virtual queue for its direction (include/caelum/bandwidth.h for the semantics).
 * The queue is shared by every CPU and moved with atomic adds, no lock: the cost of a limited
 * packet is two atomics on one cache line. A packet of any other cgroup costs one lookup.
 */
#include "common.bpf.h"
#include "netns.bpf.h"
#include "caelum/bandwidth.h"

#define IPPROTO_TCP   6
#define ETH_P_IP      0x0800
#define ETH_P_IPV6    0x86DD
#define INET_ECN_MASK 3

/* cgroup_skb return values (kernel/bpf/cgroup.c, __cgroup_bpf_run_filter_skb): bit 0 keeps
 * the packet; bit 1, on egress, is the congestion notification (NET_XMIT_CN / _DROP). */
#define SKB_DROP 0
#define SKB_PASS 1
#define SKB_CN	 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Entries are made by caelumd only, so they need not be preallocated: memory for the
 * services that reserve bandwidth, not for CAELUM_MAX_BW_SERVICES times every CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAELUM_MAX_BW_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct caelum_bw);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_bw SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CAELUM_MAX_BW_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct caelum_bw_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_bw_count SEC(".maps");

struct pkt {
	__u8 proto; /* IP protocol, 0 when not IP */
	__u8 ecn;   /* the packet's ECN field */
};

static __always_inline void pkt_parse(struct __sk_buff *skb, struct pkt *p)
{
	__u8 h[10];

	p->proto = 0;
	p->ecn = 0;
	if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
		return;
	if (skb->protocol == bpf_htons(ETH_P_IP) && (h[0] >> 4) == 4) {
		p->proto = h[9];
		p->ecn = h[1] & INET_ECN_MASK;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6) && (h[0] >> 4) == 6) {
		p->proto = h[6];
		p->ecn = (h[1] >> 4) & INET_ECN_MASK;
	}
}

/* The service of the packet's socket, if it has a bandwidth entry: its cgroup id in *cgid. */
static __always_inline struct caelum_bw *bw_of_skb(struct __sk_buff *skb, __u32 *mode, __u64 *cgid)
{
	__u32 zero = 0;
	struct caelum_config *cfg = bpf_map_lookup_elem(&cm_config, &zero);

	if (!cfg || !cfg->svc_level)
		return NULL;
	*mode = cfg->mode[CAELUM_COMP_BANDWIDTH];
	if (*mode == CAELUM_MODE_OFF)
		return NULL;
	*cgid = bpf_skb_ancestor_cgroup_id(skb, cfg->svc_level);
	if (!*cgid)
		return NULL;
	return bpf_map_lookup_elem(&cm_bw, cgid);
}

static __always_inline bool netns_enforced_skb(struct __sk_buff *skb)
{
	__u64 marker = CAELUM_NETNS_KEY_CONFIGURED;
	__u64 cookie = bpf_get_netns_cookie(skb);

	return caelum_netns_enforced(bpf_map_lookup_elem(&cm_netns, &marker),
				     bpf_map_lookup_elem(&cm_netns, &cookie));
}

/*
 * Move the queue by the packet's cost; returns its backlog in ns (see the ABI header). An
 * idle queue keeps at most burst_ns of credit: catching up is one compare-and-swap, which
 * only the first CPU to see the queue idle needs to win.
 */
static __always_inline __s64 queue_take(struct caelum_bw_queue *q, __u64 now, __u64 cost)
{
	__u64 floor = now > q->burst_ns ? now - q->burst_ns : 0;
	__u64 old = *(volatile __u64 *)&q->next_ns;

	if (old < floor)
		__sync_val_compare_and_swap(&q->next_ns, old, floor);
	return (__s64)(__sync_fetch_and_add(&q->next_ns, cost) + cost - now);
}

static __always_inline void bw_report(struct __sk_buff *skb, __u64 cgid, __u32 dir,
				      const struct caelum_bw_queue *q, const struct pkt *p,
				      __s64 backlog, __u32 verdict, __u32 action)
{
	struct caelum_event ev = {};
	struct caelum_agg_key key = {};

	ev.time_ns = bpf_ktime_get_ns();
	ev.cgroup_id = bpf_skb_cgroup_id(skb);
	ev.svc_cgid = cgid;
	ev.type = CAELUM_EV_BW_EXCEEDED;
	ev.action = action;
	ev.count = 1;
	ev.reason = CAELUM_REASON_BW_RATE;
	ev.bw.rate_Bps = q->rate_Bps;
	ev.bw.backlog_ns = backlog > 0 ? (__u64)backlog : 0;
	ev.bw.len = skb->len;
	ev.bw.dir = dir;
	ev.bw.proto = p->proto;
	ev.bw.verdict = verdict;
	/* Folded per service and direction, whichever of its cgroups sent it. */
	key.cgroup_id = cgid;
	key.subject = dir;
	key.type = CAELUM_EV_BW_EXCEEDED;
	event_report(&key, &ev);
}

static __always_inline void count_pass(struct caelum_bw_dir_count *c, __u32 len)
{
	if (!c)
		return;
	c->bytes += len;
	c->packets++;
}

static __always_inline int bw_check(struct __sk_buff *skb, __u32 dir)
{
	struct caelum_bw_dir_count *c = NULL;
	struct caelum_bw_count *cnt;
	struct caelum_bw_queue *q;
	struct caelum_bw *bw;
	__u32 mode = 0, verdict, len = skb->len;
	struct pkt p;
	__u64 cgid = 0, cost;
	__s64 backlog;

	bw = bw_of_skb(skb, &mode, &cgid);
	if (!bw || !netns_enforced_skb(skb))
		return SKB_PASS;
	cnt = bpf_map_lookup_elem(&cm_bw_count, &cgid);
	if (cnt)
		c = &cnt->dir[dir & 1];
	q = &bw->q[dir & 1];
	if (!(bw->flags & (1U << dir)) || !q->rate_Bps) {
		count_pass(c, len);
		return SKB_PASS;
	}
	cost = caelum_bw_cost_ns(len, q->rate_Bps);
	backlog = queue_take(q, bpf_ktime_get_ns(), cost);
	if (backlog <= (__s64)q->mark_ns) { /* the common case: no need to look at the packet */
		count_pass(c, len);
		return SKB_PASS;
	}
	pkt_parse(skb, &p);
	verdict = caelum_bw_verdict(q, backlog, p.proto == IPPROTO_TCP);
	if (verdict == CAELUM_BW_V_DROP) /* a dropped packet takes nothing from the queue */
		__sync_fetch_and_add(&q->next_ns, -cost);
	if (mode == CAELUM_MODE_AUDIT) {
		if (c)
			c->over++;
		count_pass(c, len);
		bw_report(skb, cgid, dir, q, &p, backlog, verdict, CAELUM_ACT_AUDITED);
		return SKB_PASS;
	}
	bw_report(skb, cgid, dir, q, &p, backlog, verdict, CAELUM_ACT_DENIED);
	if (verdict == CAELUM_BW_V_DROP) {
		if (c) {
			c->dropped++;
			c->dropped_bytes += len;
		}
		/* TCP egress: the drop also tells the sender's TCP to slow down. */
		return dir == CAELUM_BW_EGRESS && p.proto == IPPROTO_TCP ? SKB_DROP | SKB_CN
									 : SKB_DROP;
	}
	if (c)
		c->signalled++;
	count_pass(c, len);
	if (p.ecn && bpf_skb_ecn_set_ce(skb))
		return SKB_PASS;
	return dir == CAELUM_BW_EGRESS ? SKB_PASS | SKB_CN : SKB_PASS;
}

SEC("cgroup_skb/egress")
int cm_bw_egress(struct __sk_buff *skb)
{
	return bw_check(skb, CAELUM_BW_EGRESS);
}

SEC("cgroup_skb/ingress")
int cm_bw_ingress(struct __sk_buff *skb)
{
	return bw_check(skb, CAELUM_BW_INGRESS);
}
