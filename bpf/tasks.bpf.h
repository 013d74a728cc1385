/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The task -> service storage shared by bpf/tasks.bpf.c and bpf/cpu.bpf.c (pinned). */
#ifndef CAELUM_TASKS_BPF_H
#define CAELUM_TASKS_BPF_H

#include "caelum/tasks.h"

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct caelum_task);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cm_task_svc SEC(".maps");

#endif /* CAELUM_TASKS_BPF_H */
