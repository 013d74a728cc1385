/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Bandwidth per service: the component that loads bpf/bandwidth.bpf.c, keeps cm_bw equal to
 * the services' "egress_mbit"/"ingress_mbit" and samples cm_bw_count for the measured rates
 * (ABI and semantics: include/caelum/bandwidth.h). Everything goes through its ops table.
 */
#ifndef CAELUM_BANDWIDTH_USER_H
#define CAELUM_BANDWIDTH_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "caelum/bandwidth.h"
#include "component.h"

extern const struct component_ops bandwidth_component;

#define BANDWIDTH_NPROGS    2		  /* egress, ingress */
#define BANDWIDTH_SAMPLE_NS 1000000000ULL /* the measured rate is over the last second */

struct spec_resources;

/*
 * The cm_bw entry for a reservation (rates in kbit/s, 0 = that direction not limited),
 * thresholds from include/caelum/bandwidth.h, an empty queue. false when neither direction
 * is limited (then the service has no entry). Shared with the unit tests.
 */
bool bandwidth_entry(const struct spec_resources *r, struct caelum_bw *out);

/*
 * The self-verification's canary (verify.c): limit cgid's egress to egress_kbit kbit/s
 * outside the registry, with an idle queue and its counts at zero. self is the component's
 * state (daemon_bandwidth()). It lasts until bandwidth_canary_clear() or the next sync,
 * which keeps only the registry's services. 0 or -errno.
 */
int bandwidth_canary_set(void *self, uint64_t cgid, int64_t egress_kbit);
void bandwidth_canary_clear(void *self, uint64_t cgid);
/* What cm_bw_count holds for cgid, summed over the CPUs, per direction (CAELUM_BW_*).
 * 0, or -ENOENT when cgid has no counts, or -errno. */
int bandwidth_counts(void *self, uint64_t cgid, struct caelum_bw_dir_count out[CAELUM_BW_DIRS]);

#endif /* CAELUM_BANDWIDTH_USER_H */
