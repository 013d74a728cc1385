/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef CAELUM_FSUTIL_H
#define CAELUM_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Replace dir/name with data: write a temporary file, fsync it, rename it over the old
 * one and fsync the directory. A crash leaves either the old or the new file, whole.
 */
int file_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode);
/* Whole file into a NUL-terminated malloc'd buffer (at most max bytes). */
int file_read_all(const char *path, size_t max, char **out, size_t *len);
/* mkdir -p with mode for the components it creates. */
int mkdir_p(const char *path, mode_t mode);

#endif /* CAELUM_FSUTIL_H */
