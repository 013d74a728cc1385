/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Sorted arrays: where an element is, or would go (binary search, as bsearch(3) but with the
 * insertion point when absent). */
#ifndef CAELUM_SORTED_H
#define CAELUM_SORTED_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Index in base[n] (elements of size bytes, sorted by cmp) of the element equal to key
 * (*found = true), or of the first element greater than key (*found = false: where key
 * would be inserted). cmp(element, key) as for bsearch, with the arguments swapped.
 */
static inline size_t sorted_find(const void *base, size_t n, size_t size, const void *key,
				 int (*cmp)(const void *elem, const void *key), bool *found)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp((const char *)base + mid * size, key);

		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

#endif /* CAELUM_SORTED_H */
