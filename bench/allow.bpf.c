// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Baseline for bench/bind_bench.c: bind hooks that allow everything. What they cost is the
 * price of having any cgroup/bind program at all; bpf/ports.bpf.c is measured against it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define BIND_ALLOW 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/bind4")
int cm_bench_allow4(struct bpf_sock_addr *ctx)
{
	return BIND_ALLOW;
}

SEC("cgroup/bind6")
int cm_bench_allow6(struct bpf_sock_addr *ctx)
{
	return BIND_ALLOW;
}

/* Baseline for bench/bandwidth_bench.c: the price of any cgroup_skb program at all. */
SEC("cgroup_skb/egress")
int cm_bench_skb_eg(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/ingress")
int cm_bench_skb_in(struct __sk_buff *skb)
{
	return 1;
}
