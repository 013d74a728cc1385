/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The API token: <state_dir>/api.token, 64 hex characters from getrandom(), mode 0600.
 * Created on first start; mutations over HTTP and every MCP request present it as
 * "Authorization: Bearer <token>".
 */
#ifndef CAELUM_TOKEN_H
#define CAELUM_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_LEN  64
#define TOKEN_FILE "api.token"

/* Read the token, creating it when absent. 0 or -errno (-EINVAL: not a token). */
int token_load(const char *state_dir, char out[TOKEN_LEN + 1]);
/* Replace it with a new random one. */
int token_rotate(const char *state_dir, char out[TOKEN_LEN + 1]);
/* Constant-time comparison of a presented token (any length) with the real one. */
bool token_equal(const char *presented, size_t len, const char *token);
/* The token of an "Authorization" header value ("Bearer X", scheme case-insensitive). */
bool token_from_bearer(const char *header, const char **tok, size_t *len);

#endif /* CAELUM_TOKEN_H */
