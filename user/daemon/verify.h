/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Integrity repair and self-verification of the enforcement (verify.c). */
#ifndef CAELUM_VERIFY_H
#define CAELUM_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "registry.h"

struct daemon;

#define INTEGRITY_INTERVAL_NS (5ULL * 1000000000ULL)

int verify_setup(struct daemon *d);
/* (Re)install the canary rules (after every policy apply). */
int verify_canaries(struct daemon *d);
/* The canary port claim for the port policy, if verification is set up. */
bool verify_port_claim(struct daemon *d, struct reg_claim *claim);
void integrity_check(struct daemon *d);
/* Run every probe now; the result (new reference) is also kept as the last one. */
struct json_object *verify_now(struct daemon *d);
void verify_tick(struct daemon *d, uint64_t now);
void verify_close(struct daemon *d);

#endif /* CAELUM_VERIFY_H */
