// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "token.h"

static int token_new(char out[TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[TOKEN_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -errno;
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[TOKEN_LEN] = '\0';
	return 0;
}

int token_rotate(const char *state_dir, char out[TOKEN_LEN + 1])
{
	char tok[TOKEN_LEN + 2];
	int err = token_new(tok);

	if (err)
		return err;
	tok[TOKEN_LEN] = '\n';
	err = file_write_atomic(state_dir, TOKEN_FILE, tok, TOKEN_LEN + 1, 0600);
	if (err)
		return err;
	memcpy(out, tok, TOKEN_LEN);
	out[TOKEN_LEN] = '\0';
	return 0;
}

int token_load(const char *state_dir, char out[TOKEN_LEN + 1])
{
	char path[4096], *buf = NULL;
	struct stat st;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/%s", state_dir, TOKEN_FILE);
	err = file_read_all(path, 4096, &buf, &len);
	if (err == -ENOENT)
		return token_rotate(state_dir, out);
	if (err)
		return err;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (len != TOKEN_LEN || strspn(buf, "0123456789abcdef") != TOKEN_LEN) {
		free(buf);
		return -EINVAL;
	}
	memcpy(out, buf, TOKEN_LEN + 1);
	free(buf);
	if (!stat(path, &st) && (st.st_mode & 077)) {
		p_warn("%s was readable by others (mode %04o): set to 0600", path,
		       st.st_mode & 07777);
		if (chmod(path, 0600))
			return -errno;
	}
	return 0;
}

bool token_equal(const char *presented, size_t len, const char *token)
{
	unsigned char diff = len != TOKEN_LEN;

	/* Always compare TOKEN_LEN bytes so that the time does not depend on the input. */
	for (size_t i = 0; i < TOKEN_LEN; i++)
		diff |= (unsigned char)((i < len ? presented[i] : 0) ^ token[i]);
	return diff == 0;
}

bool token_from_bearer(const char *header, const char **tok, size_t *len)
{
	const char *p = header;

	if (strncasecmp(p, "Bearer", 6) || (p[6] != ' ' && p[6] != '\t'))
		return false;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	*tok = p;
	*len = strcspn(p, " \t\r\n");
	return *len > 0 && p[*len] == '\0';
}
