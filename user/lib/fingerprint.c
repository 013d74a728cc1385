// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * SHA-256 through OpenSSL's libcrypto (already on the host under libcurl and
 * libwebsockets; Debian's libwebsockets is built without its own hash API).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "fingerprint.h"

static void hex_of(const unsigned char *d, char hex[FINGERPRINT_HEX])
{
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
}

void fingerprint_data(const void *data, size_t len, char hex[FINGERPRINT_HEX])
{
	unsigned char d[EVP_MAX_MD_SIZE] = { 0 };
	unsigned int n = 0;

	if (!EVP_Digest(data, len, d, &n, EVP_sha256(), NULL))
		memset(d, 0, sizeof(d));
	hex_of(d, hex);
}

int fingerprint_file(const char *path, char hex[FINGERPRINT_HEX])
{
	unsigned char d[EVP_MAX_MD_SIZE], buf[16384];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), err = 0;
	unsigned int n = 0;
	ssize_t got;

	if (fd < 0 || !ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		err = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		if (!EVP_DigestUpdate(ctx, buf, (size_t)got)) {
			err = -EIO;
			break;
		}
	if (got < 0)
		err = -errno;
	if (!err && !EVP_DigestFinal_ex(ctx, d, &n))
		err = -EIO;
	if (!err)
		hex_of(d, hex);
out:
	EVP_MD_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return err;
}
