// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>

#include "applylog.h"

void apply_log_record(struct apply_log *l, uint64_t rev, int err)
{
	if (rev > l->applied_rev)
		l->applied_rev = rev;
	if (!err)
		return;
	l->fail[l->head % APPLY_LOG_FAILURES].rev = rev;
	l->fail[l->head % APPLY_LOG_FAILURES].err = err;
	l->head++;
}

int apply_log_result(const struct apply_log *l, uint64_t rev)
{
	if (rev > l->applied_rev)
		return -EAGAIN;
	for (unsigned int i = 0; i < APPLY_LOG_FAILURES; i++)
		if (l->fail[i].err && l->fail[i].rev == rev)
			return l->fail[i].err;
	return 0;
}
