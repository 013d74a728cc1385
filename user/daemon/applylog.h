/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The outcome of applying each registry revision to the kernel. A handler that committed at
 * revision R asks apply_log_result(R) instead of reading shared daemon fields: the answer is
 * 0 (applied), -errno (that revision's apply failed) or -EAGAIN (not applied yet).
 * Failures are kept for the last APPLY_LOG_FAILURES failed revisions.
 */
#ifndef CAELUM_APPLYLOG_H
#define CAELUM_APPLYLOG_H

#include <stdint.h>

#define APPLY_LOG_FAILURES 32

struct apply_log {
	uint64_t applied_rev; /* highest revision whose apply finished (well or not) */
	struct {
		uint64_t rev;
		int err; /* -errno */
	} fail[APPLY_LOG_FAILURES];
	unsigned int head;
};

/* Revision rev was applied with err (0 or -errno); revisions only move forward. */
void apply_log_record(struct apply_log *l, uint64_t rev, int err);
/* 0, the -errno of rev's apply, or -EAGAIN when rev > applied_rev. */
int apply_log_result(const struct apply_log *l, uint64_t rev);

#endif /* CAELUM_APPLYLOG_H */
