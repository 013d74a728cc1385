/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ABI shared by every Caelum BPF program and caelumd: the event record sent over the ring
 * buffer, the loss counters, the per-component mode switch and the bounds of every map.
 *
 * Events
 *   Every enforcement decision worth reporting becomes one struct caelum_event in cm_events.
 *   The first occurrence is sent at once with count = 1 and opens a window in cm_agg.
 *   Identical ones (same cgroup, port, proto) within the following CAELUM_AGG_WINDOW_NS are
 *   folded into that window in the kernel and reported by one follow-up event
 *   (flags & CAELUM_EVF_FOLLOWUP) whose count is the number folded. The follow-up is written
 *   by the kernel, either by cm_agg_flush (a syscall program caelumd runs every few hundred
 *   milliseconds) once the window has expired, or by the next occurrence after it.
 *   Example: a process retries bind(8150) 50 times in 0.3 s -> one event count=1 at once,
 *   one follow-up count=49 about a second later, then silence until it retries again.
 *   While caelumd is down nothing flushes: folded counts wait in cm_agg, never lost.
 *
 * Identities
 *   Services are cgroups: a service's identity in the kernel is the 64-bit id of its cgroup
 *   (<cgroup_root>/caelum/<name>). CAELUM_CGID_NONE means "no service" (an unmanaged task,
 *   or a port that no service owns), never "any".
 *
 * Loss accounting
 *   Whatever the kernel side cannot report (ring buffer full, aggregation table full) is
 *   counted in cm_stats (per-CPU array, CAELUM_STAT_*); caelumd sums and exports them.
 */
#ifndef CAELUM_COMMON_H
#define CAELUM_COMMON_H

#ifndef __VMLINUX_H__ /* BPF side: vmlinux.h already has these */
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

#ifndef __always_inline /* host builds of the shared decision predicates */
#define __always_inline inline __attribute__((always_inline))
#endif

#define CAELUM_CGID_NONE 0ULL

/* Bounds. */
#define CAELUM_MAX_SERVICES  16384
#define CAELUM_MAX_AGG_KEYS  8192
#define CAELUM_RINGBUF_BYTES (4U << 20)
#define CAELUM_AGG_WINDOW_NS 1000000000ULL
#define CAELUM_COMM_LEN	     16

/* Component indices into caelum_config.mode[]. */
#define CAELUM_COMP_PORTS     0
#define CAELUM_COMP_DEVICES   1
#define CAELUM_COMP_TASKS     2
#define CAELUM_COMP_CPU	      3
#define CAELUM_COMP_DATABASES 4
#define CAELUM_COMP_BANDWIDTH 5
#define CAELUM_COMP_MAX	      8

/* Component modes. UNSET (a zeroed config) is treated as ENFORCE: fail closed. */
#define CAELUM_MODE_UNSET   0
#define CAELUM_MODE_OFF	    1
#define CAELUM_MODE_AUDIT   2
#define CAELUM_MODE_ENFORCE 3

/* Event types. */
#define CAELUM_EV_BIND_DENIED	1
#define CAELUM_EV_DEVICE_DENIED 2
#define CAELUM_EV_TASK_BUDGET	3
#define CAELUM_EV_DB_DENIED	4
#define CAELUM_EV_DB_LIMIT	5
#define CAELUM_EV_BW_EXCEEDED	6 /* include/caelum/bandwidth.h */

/* Event actions. */
#define CAELUM_ACT_DENIED  1
#define CAELUM_ACT_AUDITED 2

/* Event flags. */
#define CAELUM_EVF_FOLLOWUP	0x01 /* count = identical events folded since the first */
#define CAELUM_EVF_UNAGGREGATED 0x02 /* aggregation table full: reported one by one */

/* Why a bind was refused. */
#define CAELUM_REASON_RESERVED	 1 /* the port is reserved by another service */
#define CAELUM_REASON_MANAGED	 2 /* the port lies in a managed range and nobody reserved it */
#define CAELUM_REASON_ASSIGNED	 3 /* the device is assigned to another service */
#define CAELUM_REASON_UNASSIGNED 4 /* the device is listed but assigned to nobody */
#define CAELUM_REASON_UNDECLARED 5 /* the service did not declare the database */
#define CAELUM_REASON_UNMANAGED	 6 /* not a service, and the database denies unmanaged */
#define CAELUM_REASON_CONN_LIMIT 7 /* the service's connections to it are at max */
#define CAELUM_REASON_BW_RATE	 8 /* over the service's bandwidth (include/caelum/bandwidth.h) */

/* Device access bits as in the kernel's BPF_DEVCG_ACC_* (cgroup/dev programs). */
#define CAELUM_DEV_ACC_MKNOD 1
#define CAELUM_DEV_ACC_READ  2
#define CAELUM_DEV_ACC_WRITE 4

/* Per-type payloads of struct caelum_event. */
struct caelum_ev_bind {
	__u16 port;    /* host byte order */
	__u8 proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;   /* AF_INET or AF_INET6 */
	__u8 addr[16]; /* bind address: IPv4 in the first 4 bytes, or IPv6 */
	__u8 pad[12];
};

struct caelum_ev_dev {
	__u32 major;
	__u32 minor;
	__u32 access;	/* BPF_DEVCG_ACC_* bits */
	__u32 dev_type; /* BPF_DEVCG_DEV_CHAR or BPF_DEVCG_DEV_BLOCK */
	__u8 pad[16];
};

struct caelum_ev_task {
	__u64 live;   /* live tasks of the service after the fork */
	__u64 budget; /* its budget */
	__u32 killed; /* 1: the new task was sent SIGKILL */
	__u32 pad[3];
};

struct caelum_ev_conn {
	__u32 db_id;   /* db_id_of(name) */
	__u16 port;    /* host byte order */
	__u8 family;   /* AF_INET or AF_INET6 */
	__u8 op;       /* CAELUM_CONN_OP_* */
	__u8 addr[16]; /* IPv6, or IPv4-mapped */
	__u32 count;   /* open connections of the service to it */
	__u32 max;     /* its max_connections (0 = none) */
};

/* Payload of CAELUM_EV_BW_EXCEEDED (struct caelum_event.bw). */
struct caelum_ev_bw {
	__u64 rate_Bps;	  /* the service's rate in that direction */
	__u64 backlog_ns; /* how far over its queue was (of the latest occurrence) */
	__u32 len;	  /* bytes of the latest packet */
	__u8 dir;	  /* CAELUM_BW_EGRESS or CAELUM_BW_INGRESS */
	__u8 proto;	  /* IPPROTO_TCP, IPPROTO_UDP, ... (0: not IP) */
	__u8 verdict;	  /* CAELUM_BW_V_* */
	__u8 pad[9];
};

#define CAELUM_CONN_OP_CONNECT 1
#define CAELUM_CONN_OP_SENDMSG 2

struct caelum_event {
	__u64 time_ns;	  /* bpf_ktime_get_ns() of the (latest) occurrence */
	__u64 cgroup_id;  /* cgroup of the offending task */
	__u64 svc_cgid;	  /* service cgroup of the offender or CAELUM_CGID_NONE */
	__u64 owner_cgid; /* service cgroup owning the resource or CAELUM_CGID_NONE */
	__u32 type;	  /* CAELUM_EV_* */
	__u32 action;	  /* CAELUM_ACT_* */
	__u32 pid;	  /* tgid of the (last) offender */
	__u32 count;	  /* occurrences this record stands for */
	__u8 flags;	  /* CAELUM_EVF_* */
	__u8 reason;	  /* CAELUM_REASON_* */
	__u8 pad[6];
	char comm[CAELUM_COMM_LEN];
	union {
		struct caelum_ev_bind bind; /* CAELUM_EV_BIND_DENIED */
		struct caelum_ev_dev dev;   /* CAELUM_EV_DEVICE_DENIED */
		struct caelum_ev_task task; /* CAELUM_EV_TASK_BUDGET */
		struct caelum_ev_conn conn; /* CAELUM_EV_DB_DENIED, CAELUM_EV_DB_LIMIT */
		struct caelum_ev_bw bw;	    /* CAELUM_EV_BW_EXCEEDED */
	};
};

/* Indices into cm_stats (per-CPU __u64 counters). */
#define CAELUM_STAT_DENIED	     0 /* binds refused */
#define CAELUM_STAT_AUDITED	     1 /* binds that would have been refused (audit mode) */
#define CAELUM_STAT_FOLDED	     2 /* events folded into a follow-up */
#define CAELUM_STAT_RB_LOST_FIRST    3 /* ring buffer full: first event lost */
#define CAELUM_STAT_RB_LOST_FOLLOWUP 4 /* ring buffer full: follow-up lost (count too) */
#define CAELUM_STAT_AGG_FULL	     5 /* aggregation table full: event sent unfolded */
#define CAELUM_STAT_TASK_STORAGE     6 /* task storage could not be created: task uncounted */
#define CAELUM_STAT_DB_UNCOUNTED     7 /* a database connection allowed without a place to count it */
#define CAELUM_STAT_MAX		     8

/* Single entry of cm_config (ARRAY, key 0). Written by caelumd, read by every program. */
struct caelum_config {
	__u32 mode[CAELUM_COMP_MAX]; /* CAELUM_MODE_* per CAELUM_COMP_* */
	__u32 svc_level;	     /* cgroup level of <cgroup_root>/caelum/<name> */
	__u32 pad;
};

/* Value of cm_services (HASH, key: service cgroup id). Presence = the cgroup is a service. */
struct caelum_service {
	__u32 flags; /* CAELUM_SVC_F_* */
	__u32 pad;
};

#define CAELUM_SVC_F_REGISTERED 0x01
#define CAELUM_SVC_F_INTERNAL	0x02 /* Caelum's own probe/verification cgroup */

/*
 * Key of cm_agg (HASH): what makes two events identical. subject is per type:
 * bind: port | proto << 16; device: major << 32 | minor; task budget: 0;
 * bandwidth: the direction (CAELUM_BW_EGRESS, CAELUM_BW_INGRESS).
 */
struct caelum_agg_key {
	__u64 cgroup_id;
	__u64 subject;
	__u32 type;
	__u32 pad;
};

/*
 * Value of cm_agg: one aggregation window, every field under lock. The window is open while
 * now - start_ns < CAELUM_AGG_WINDOW_NS; count is what was folded and not yet reported.
 */
struct caelum_agg_val {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 start_ns;		  /* bpf_ktime_get_ns() of the occurrence that opened the window */
	__u64 count;		  /* folded since, not yet reported */
	struct caelum_event last; /* the latest folded occurrence: template of the follow-up */
};

/* In/out argument of the cm_agg_flush syscall program (BPF_PROG_RUN ctx). */
struct caelum_agg_flush_args {
	__u32 flushed; /* follow-ups written */
	__u32 removed; /* idle windows removed */
};

/* Windows idle this long with nothing pending are removed by cm_agg_flush. */
#define CAELUM_AGG_IDLE_NS (60ULL * 1000000000ULL)

#endif /* CAELUM_COMMON_H */
