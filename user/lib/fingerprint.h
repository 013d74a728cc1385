/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* SHA-256 fingerprints of secrets: the only thing about a credential Caelum ever shows. */
#ifndef CAELUM_FINGERPRINT_H
#define CAELUM_FINGERPRINT_H

#include <stddef.h>

#define FINGERPRINT_HEX 65 /* 64 hex digits + NUL */

/* "sha256:" is not prepended: callers label it. */
void fingerprint_data(const void *data, size_t len, char hex[FINGERPRINT_HEX]);
/* 0, or -errno when the file cannot be read. */
int fingerprint_file(const char *path, char hex[FINGERPRINT_HEX]);

#endif /* CAELUM_FINGERPRINT_H */
