/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loader and sync for bpf/devices.bpf.c (ABI: include/caelum/devices.h). */
#ifndef CAELUM_DEVICES_USER_H
#define CAELUM_DEVICES_USER_H

#include "bpfpin.h"
#include "capacity.h"
#include "ports_user.h"
#include "registry.h"

struct devices;

/* The self-verification's canary device (verify.c opens it, the policy never allows it). */
#define VERIFY_DEV_MAJOR 1
#define VERIFY_DEV_MINOR 250 /* unused by the mem driver: a device nobody opens */

int devices_load(const struct bpf_env *env, struct devices **out);
int devices_attach(struct devices *d, const struct bpf_env *env);
/* Make cm_devices list every configured GPU device with its assigned service. */
int devices_sync(struct devices *d, const struct capacity *cap, const struct reg_state *st,
		 svc_ident_fn ident, void *ctx);
int devices_map_fd(const struct devices *d);
void devices_close(struct devices *d);

#endif /* CAELUM_DEVICES_USER_H */
