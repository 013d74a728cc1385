// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The kernel/userspace ABI (include/caelum/common.h and ports.h): every struct size and the
 * offset of every field is pinned at compile time, so a change that moves a field fails the
 * build instead of silently misreading ring-buffer records or map values. The same facts are
 * checked at run time (so that the binary reports them), with the distinctness of constants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "caelum/bandwidth.h"
#include "caelum/cgfollow.h"
#include "caelum/common.h"
#include "caelum/connect.h"
#include "caelum/devices.h"
#include "caelum/netns.h"
#include "caelum/ports.h"
#include "caelum/cpu.h"
#include "caelum/tasks.h"

#define ABI_SIZE(type, size) _Static_assert(sizeof(struct type) == (size), #type " size")
#define ABI_OFF(type, field, off)                                                                  \
	_Static_assert(offsetof(struct type, field) == (off), #type "." #field " offset")

ABI_SIZE(caelum_event, 104);
ABI_OFF(caelum_event, time_ns, 0);
ABI_OFF(caelum_event, cgroup_id, 8);
ABI_OFF(caelum_event, svc_cgid, 16);
ABI_OFF(caelum_event, owner_cgid, 24);
ABI_OFF(caelum_event, type, 32);
ABI_OFF(caelum_event, action, 36);
ABI_OFF(caelum_event, pid, 40);
ABI_OFF(caelum_event, count, 44);
ABI_OFF(caelum_event, flags, 48);
ABI_OFF(caelum_event, reason, 49);
ABI_OFF(caelum_event, pad, 50);
ABI_OFF(caelum_event, comm, 56);
ABI_OFF(caelum_event, bind, 72);
ABI_OFF(caelum_event, dev, 72);
ABI_OFF(caelum_event, task, 72);

ABI_SIZE(caelum_ev_bind, 32);
ABI_OFF(caelum_ev_bind, port, 0);
ABI_OFF(caelum_ev_bind, proto, 2);
ABI_OFF(caelum_ev_bind, family, 3);
ABI_OFF(caelum_ev_bind, addr, 4);
ABI_OFF(caelum_ev_bind, pad, 20);

ABI_SIZE(caelum_ev_dev, 32);
ABI_OFF(caelum_ev_dev, major, 0);
ABI_OFF(caelum_ev_dev, minor, 4);
ABI_OFF(caelum_ev_dev, access, 8);
ABI_OFF(caelum_ev_dev, dev_type, 12);
ABI_OFF(caelum_ev_dev, pad, 16);

ABI_SIZE(caelum_ev_task, 32);
ABI_OFF(caelum_ev_task, live, 0);
ABI_OFF(caelum_ev_task, budget, 8);
ABI_OFF(caelum_ev_task, killed, 16);
ABI_OFF(caelum_ev_task, pad, 20);

ABI_SIZE(caelum_ev_conn, 32);

ABI_SIZE(caelum_ev_bw, 32);
ABI_OFF(caelum_ev_bw, rate_Bps, 0);
ABI_OFF(caelum_ev_bw, backlog_ns, 8);
ABI_OFF(caelum_ev_bw, len, 16);
ABI_OFF(caelum_ev_bw, dir, 20);
ABI_OFF(caelum_ev_bw, proto, 21);
ABI_OFF(caelum_ev_bw, verdict, 22);
ABI_OFF(caelum_ev_bw, pad, 23);
ABI_OFF(caelum_event, bw, 72);

/* include/caelum/bandwidth.h */
ABI_SIZE(caelum_bw_queue, 40);
ABI_OFF(caelum_bw_queue, rate_Bps, 0);
ABI_OFF(caelum_bw_queue, burst_ns, 8);
ABI_OFF(caelum_bw_queue, mark_ns, 16);
ABI_OFF(caelum_bw_queue, drop_ns, 24);
ABI_OFF(caelum_bw_queue, next_ns, 32);
ABI_SIZE(caelum_bw, 88);
ABI_OFF(caelum_bw, flags, 0);
ABI_OFF(caelum_bw, pad, 4);
ABI_OFF(caelum_bw, q, 8);
ABI_SIZE(caelum_bw_dir_count, 48);
ABI_OFF(caelum_bw_dir_count, bytes, 0);
ABI_OFF(caelum_bw_dir_count, over, 40);
/* a per-CPU value: a multiple of 8 bytes, as the kernel copies it */
ABI_SIZE(caelum_bw_count, 96);
ABI_OFF(caelum_ev_conn, db_id, 0);
ABI_OFF(caelum_ev_conn, port, 4);
ABI_OFF(caelum_ev_conn, family, 6);
ABI_OFF(caelum_ev_conn, op, 7);
ABI_OFF(caelum_ev_conn, addr, 8);
ABI_OFF(caelum_ev_conn, count, 24);
ABI_OFF(caelum_ev_conn, max, 28);

ABI_SIZE(caelum_db_addr_key, 20);
ABI_OFF(caelum_db_addr_key, port, 16);
ABI_OFF(caelum_db_addr_key, scope, 18);
ABI_SIZE(caelum_host_key, 16);
ABI_SIZE(caelum_host_addr, 8);
ABI_SIZE(caelum_db_addr, 8);
ABI_SIZE(caelum_db_decl_key, 16);
ABI_OFF(caelum_db_decl_key, db_id, 8);
ABI_SIZE(caelum_db_decl, 8);
ABI_SIZE(caelum_db_conns, 8);
ABI_SIZE(caelum_db_sk, 16);
ABI_OFF(caelum_db_sk, counted, 12);
ABI_SIZE(caelum_db_slot, 24);
ABI_OFF(caelum_db_slot, svc_cgid, 8);
ABI_OFF(caelum_db_slot, db_id, 16);
ABI_OFF(caelum_db_slot, pad, 20);
_Static_assert((CAELUM_MAX_DB_SLOTS & (CAELUM_MAX_DB_SLOTS - 1)) == 0,
	       "cm_db_slots is indexed by cookie & (CAELUM_MAX_DB_SLOTS - 1)");

ABI_SIZE(caelum_config, 40);
ABI_OFF(caelum_config, mode, 0);
ABI_OFF(caelum_config, svc_level, 32);
ABI_OFF(caelum_config, pad, 36);

ABI_SIZE(caelum_service, 8);
ABI_SIZE(caelum_netns, 8);
ABI_SIZE(caelum_cg_path, CAELUM_CG_PATH_MAX);
ABI_OFF(caelum_netns, flags, 0);
ABI_OFF(caelum_service, flags, 0);
ABI_OFF(caelum_service, pad, 4);

ABI_SIZE(caelum_agg_key, 24);
ABI_OFF(caelum_agg_key, cgroup_id, 0);
ABI_OFF(caelum_agg_key, subject, 8);
ABI_OFF(caelum_agg_key, type, 16);
ABI_OFF(caelum_agg_key, pad, 20);

ABI_SIZE(caelum_agg_val, 128);
ABI_OFF(caelum_agg_val, lock, 0);
ABI_OFF(caelum_agg_val, pad, 4);
ABI_OFF(caelum_agg_val, start_ns, 8);
ABI_OFF(caelum_agg_val, count, 16);
ABI_OFF(caelum_agg_val, last, 24);

ABI_SIZE(caelum_agg_flush_args, 8);
ABI_OFF(caelum_agg_flush_args, flushed, 0);
ABI_OFF(caelum_agg_flush_args, removed, 4);

ABI_SIZE(caelum_port_key, 4);
ABI_OFF(caelum_port_key, port, 0);
ABI_OFF(caelum_port_key, proto, 2);
ABI_OFF(caelum_port_key, pad, 3);

ABI_SIZE(caelum_port_rule, 16);
ABI_OFF(caelum_port_rule, owner_cgid, 0);
ABI_OFF(caelum_port_rule, owner_level, 8);
ABI_OFF(caelum_port_rule, flags, 10);
ABI_OFF(caelum_port_rule, pad, 12);
/* One word: written and read whole (include/caelum/ports.h). */
ABI_SIZE(caelum_port_entry, 8);
ABI_OFF(caelum_port_entry, owner, 0);
ABI_OFF(caelum_port_entry, level, 4);
ABI_OFF(caelum_port_entry, flags, 6);

ABI_SIZE(caelum_dev_key, 16);
ABI_OFF(caelum_dev_key, major, 0);
ABI_OFF(caelum_dev_key, minor, 4);
ABI_OFF(caelum_dev_key, type, 8);
ABI_OFF(caelum_dev_key, pad, 12);

ABI_SIZE(caelum_dev_rule, 16);
ABI_OFF(caelum_dev_rule, owner_cgid, 0);
ABI_OFF(caelum_dev_rule, owner_level, 8);
ABI_OFF(caelum_dev_rule, flags, 10);
ABI_OFF(caelum_dev_rule, gpu_index, 12);

ABI_SIZE(caelum_task, 24);
ABI_OFF(caelum_task, svc_cgid, 0);
ABI_OFF(caelum_task, cpu_svc, 8);
ABI_OFF(caelum_task, last_runtime, 16);
ABI_SIZE(caelum_task_live, 8);
_Static_assert(sizeof(caelum_cpu_ns) == 8, "cm_cpu_time value: __u64 ns per CPU");

/* Field widths that the decoding in user/daemon/events.c and the BPF side rely on. */
_Static_assert(sizeof(((struct caelum_ev_bind *)0)->addr) == 16, "addr holds an IPv6 address");
_Static_assert(sizeof(((struct caelum_event *)0)->comm) == CAELUM_COMM_LEN, "comm");
_Static_assert(sizeof(((struct caelum_config *)0)->mode) == CAELUM_COMP_MAX * 4, "modes");
_Static_assert(CAELUM_CGID_NONE == 0, "no service is cgroup id 0");
_Static_assert(CAELUM_MAX_PORT_RULES >= 65535 * 2, "every (port, proto) fits");
_Static_assert(CAELUM_DEV_CHAR == 2, "BPF_DEVCG_DEV_CHAR");

struct abi_size {
	const char *name;
	size_t size, want;
};

struct abi_off {
	const char *name;
	size_t off, want;
};

/* clang-format off */
#define SZ(type, want) { #type, sizeof(struct type), want }
#define OFF(type, field, want) { #type "." #field, offsetof(struct type, field), want }
/* clang-format on */

static void test_sizes(void **state)
{
	static const struct abi_size sizes[] = {
		SZ(caelum_event, 104),	      SZ(caelum_ev_bind, 32),  SZ(caelum_ev_dev, 32),
		SZ(caelum_ev_task, 32),	      SZ(caelum_ev_conn, 32),  SZ(caelum_db_addr_key, 20),
		SZ(caelum_db_decl_key, 16),   SZ(caelum_db_sk, 16),    SZ(caelum_config, 40),
		SZ(caelum_service, 8),	      SZ(caelum_agg_key, 24),  SZ(caelum_agg_val, 128),
		SZ(caelum_agg_flush_args, 8), SZ(caelum_port_key, 4),  SZ(caelum_port_rule, 16),
		SZ(caelum_port_entry, 8),     SZ(caelum_dev_key, 16),  SZ(caelum_dev_rule, 16),
		SZ(caelum_task, 24),	      SZ(caelum_task_live, 8), SZ(caelum_db_slot, 24),
		SZ(caelum_ev_bw, 32),	      SZ(caelum_bw_queue, 40), SZ(caelum_bw, 88),
		SZ(caelum_bw_dir_count, 48),  SZ(caelum_bw_count, 96),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i].size != sizes[i].want)
			fail_msg("sizeof(struct %s) = %zu, ABI says %zu", sizes[i].name,
				 sizes[i].size, sizes[i].want);
	/* no implicit padding: the fields add up to the size */
	assert_int_equal(8 * 4 + 4 * 4 + 1 + 1 + 6 + CAELUM_COMM_LEN + 32,
			 sizeof(struct caelum_event));
	assert_int_equal(2 + 1 + 1 + 16 + 12, sizeof(struct caelum_ev_bind));
	assert_int_equal(4 + 2 + 1 + 1 + 16 + 4 + 4, sizeof(struct caelum_ev_conn));
	assert_int_equal(8 + 8 + 4 + 1 + 1 + 1 + 9, sizeof(struct caelum_ev_bw));
	assert_int_equal(4 + 4 + 2 * 5 * 8, sizeof(struct caelum_bw));
	assert_int_equal(8 + 8 + 4 + 4, sizeof(struct caelum_agg_key));
	assert_int_equal(8 + 8 + 4 + 4, sizeof(struct caelum_db_slot));
	assert_int_equal(8 + 2 + 2 + 4, sizeof(struct caelum_port_rule));
	assert_int_equal(2 + 1 + 1, sizeof(struct caelum_port_key));
	assert_int_equal(4 + 4 + 8 + 8 + sizeof(struct caelum_event),
			 sizeof(struct caelum_agg_val));
}

static void test_offsets(void **state)
{
	static const struct abi_off offs[] = {
		OFF(caelum_event, time_ns, 0),	     OFF(caelum_event, cgroup_id, 8),
		OFF(caelum_event, svc_cgid, 16),     OFF(caelum_event, owner_cgid, 24),
		OFF(caelum_event, type, 32),	     OFF(caelum_event, action, 36),
		OFF(caelum_event, pid, 40),	     OFF(caelum_event, count, 44),
		OFF(caelum_event, flags, 48),	     OFF(caelum_event, reason, 49),
		OFF(caelum_event, comm, 56),	     OFF(caelum_event, bind, 72),
		OFF(caelum_ev_bind, addr, 4),	     OFF(caelum_ev_dev, access, 8),
		OFF(caelum_ev_task, killed, 16),     OFF(caelum_agg_key, subject, 8),
		OFF(caelum_agg_val, last, 24),	     OFF(caelum_port_rule, flags, 10),
		OFF(caelum_dev_rule, gpu_index, 12), OFF(caelum_task, last_runtime, 16),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (offs[i].off != offs[i].want)
			fail_msg("offsetof(%s) = %zu, ABI says %zu", offs[i].name, offs[i].off,
				 offs[i].want);
}

static void assert_distinct(const char *what, const unsigned long long *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (v[i] == v[j])
				fail_msg("%s: entries %zu and %zu are both %llu", what, j, i, v[i]);
}

/* flags[] are single bits, none shared */
static void assert_bits(const char *what, const unsigned long long *v, size_t n)
{
	unsigned long long seen = 0;

	for (size_t i = 0; i < n; i++) {
		if (!v[i] || (v[i] & (v[i] - 1)))
			fail_msg("%s: entry %zu (0x%llx) is not a single bit", what, i, v[i]);
		if (seen & v[i])
			fail_msg("%s: entry %zu (0x%llx) reuses a bit", what, i, v[i]);
		seen |= v[i];
	}
}

#define N(a) (sizeof(a) / sizeof(a[0]))

/* Where the rules apply (include/caelum/netns.h): fail closed until the table is written. */
static void test_netns_enforced(void **state)
{
	struct caelum_netns marker = { .flags = CAELUM_NETNS_F_CONFIGURED };
	struct caelum_netns host = { .flags = CAELUM_NETNS_F_HOST };

	(void)state;
	assert_int_equal(caelum_netns_enforced(NULL, NULL), 1);
	assert_int_equal(caelum_netns_enforced(NULL, &host), 1);
	assert_int_equal(caelum_netns_enforced(&marker, &host), 1);
	assert_int_equal(caelum_netns_enforced(&marker, NULL), 0);
	assert_int_equal(CAELUM_NETNS_KEY_CONFIGURED, 0);
	assert_true(CAELUM_MAX_NETNS >= 2);
}

/* A followed cgroup's identity (include/caelum/cgfollow.h). */
static void test_cg_identity(void **state)
{
	__u64 anchor = CAELUM_CG_ANCHOR_BIT | 42;

	(void)state;
	assert_true(caelum_cg_identity(977, &anchor) == anchor);
	assert_true(caelum_cg_identity(950, NULL) == 950);
	assert_true(caelum_cg_identity(0, NULL) == CAELUM_CGID_NONE);
}

static void test_constants(void **state)
{
	static const unsigned long long modes[] = { CAELUM_MODE_UNSET, CAELUM_MODE_OFF,
						    CAELUM_MODE_AUDIT, CAELUM_MODE_ENFORCE };
	static const unsigned long long stats[] = {
		CAELUM_STAT_DENIED,	   CAELUM_STAT_AUDITED,		 CAELUM_STAT_FOLDED,
		CAELUM_STAT_RB_LOST_FIRST, CAELUM_STAT_RB_LOST_FOLLOWUP, CAELUM_STAT_AGG_FULL,
	};
	static const unsigned long long actions[] = { 0, CAELUM_ACT_DENIED, CAELUM_ACT_AUDITED };
	static const unsigned long long reasons[] = { 0,
						      CAELUM_REASON_RESERVED,
						      CAELUM_REASON_MANAGED,
						      CAELUM_REASON_ASSIGNED,
						      CAELUM_REASON_UNASSIGNED,
						      CAELUM_REASON_UNDECLARED,
						      CAELUM_REASON_UNMANAGED,
						      CAELUM_REASON_CONN_LIMIT,
						      CAELUM_REASON_BW_RATE };
	static const unsigned long long comps[] = { CAELUM_COMP_PORTS,	   CAELUM_COMP_DEVICES,
						    CAELUM_COMP_TASKS,	   CAELUM_COMP_CPU,
						    CAELUM_COMP_DATABASES, CAELUM_COMP_BANDWIDTH };
	static const unsigned long long bwflags[] = { CAELUM_BW_F_EGRESS, CAELUM_BW_F_INGRESS };
	static const unsigned long long evflags[] = { CAELUM_EVF_FOLLOWUP,
						      CAELUM_EVF_UNAGGREGATED };
	static const unsigned long long portflags[] = { CAELUM_PORT_F_RESERVED,
							CAELUM_PORT_F_MANAGED };

	(void)state;
	assert_distinct("modes", modes, N(modes));
	/* a zeroed config must be UNSET, which the BPF side treats as enforce */
	assert_int_equal(CAELUM_MODE_UNSET, 0);
	assert_distinct("stats", stats, N(stats));
	for (size_t i = 0; i < N(stats); i++)
		assert_true(stats[i] < CAELUM_STAT_MAX);
	/* actions and reasons are never 0: a zeroed record decodes as nothing known */
	assert_distinct("actions", actions, N(actions));
	assert_distinct("reasons", reasons, N(reasons));
	assert_bits("event flags", evflags, N(evflags));
	assert_bits("port flags", portflags, N(portflags));
	assert_true((CAELUM_EVF_FOLLOWUP | CAELUM_EVF_UNAGGREGATED) <= 0xff); /* fits __u8 */
	assert_true(CAELUM_EV_BIND_DENIED != 0);
	assert_true(CAELUM_COMP_PORTS < CAELUM_COMP_MAX);
	assert_distinct("components", comps, N(comps));
	assert_true(CAELUM_COMP_BANDWIDTH < CAELUM_COMP_MAX);
	assert_bits("bandwidth flags", bwflags, N(bwflags));
	/* the direction indexes the flag: 1 << CAELUM_BW_<dir> */
	assert_int_equal(1U << CAELUM_BW_EGRESS, CAELUM_BW_F_EGRESS);
	assert_int_equal(1U << CAELUM_BW_INGRESS, CAELUM_BW_F_INGRESS);
	assert_true(CAELUM_BW_DIRS == 2);
	/* the queue's thresholds are ordered */
	assert_true(CAELUM_BW_MARK_NS < CAELUM_BW_DROP_NS);
	/* an idle window outlives the aggregation window by far */
	assert_true(CAELUM_AGG_IDLE_NS > CAELUM_AGG_WINDOW_NS);
	assert_int_equal(CAELUM_COMM_LEN, 16);
	assert_int_equal(CAELUM_MAX_PORT_RULES, 131072);
	assert_true(IPPROTO_TCP <= 0xff && IPPROTO_UDP <= 0xff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),	    cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_constants),   cmocka_unit_test(test_netns_enforced),
		cmocka_unit_test(test_cg_identity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
