/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Foreign writers. caelumd remembers what it last put into the kernel's policy maps: the id
 * of the port table in slot 0 of cm_port_outer and the contents of cm_config. The integrity
 * check (verify.c, every few seconds) compares the kernel with that; a difference means
 * someone else wrote the pinned maps (an older caelumd ignoring the pin lock, bpftool, a
 * script), and caelumd applies its policy again and reports an integrity_repaired event
 * naming the object and what it found, e.g.
 *   {"type":"integrity_repaired","object":"port policy",
 *    "problem":"cm_port_outer[0] holds map id 812, caelumd applied 790"}
 */
#ifndef CAELUM_POLICYGUARD_H
#define CAELUM_POLICYGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caelum/common.h"

struct policy_guard {
	bool armed;		  /* something was applied and recorded */
	uint32_t table_id;	  /* map id of the port table caelumd swapped in */
	struct caelum_config cfg; /* cm_config as caelumd wrote it */
};

struct events;
struct ports;

/* After a successful apply: remember in g what the kernel holds now (ports' maps). */
void policyguard_record(struct policy_guard *g, struct ports *ports);
/*
 * Compare the kernel with the record in g; on a difference invalidate ports' tables (the next
 * install reads both back), call apply(ctx, "repair") (the daemon's full apply: this module never
 * calls up) and report an integrity_repaired event to ev.
 */
void policyguard_check(struct policy_guard *g, struct ports *ports, struct events *ev,
		       int (*apply)(void *ctx, const char *why), void *ctx);

/*
 * Pure: describe how (table_id, cfg) as found in the kernel differs from what was applied,
 * into buf. Returns true when they differ (buf says how), false when equal or not armed.
 */
bool policyguard_diff(const struct policy_guard *g, uint32_t table_id,
		      const struct caelum_config *cfg, char *buf, size_t len);

#endif /* CAELUM_POLICYGUARD_H */
