// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "assets.h"

static int gzip_buf(const unsigned char *in, size_t len, unsigned char **out, size_t *out_len)
{
	z_stream z = {};
	uLong cap;
	int rc;

	/* windowBits 15 + 16: a gzip wrapper, as Content-Encoding: gzip wants. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -ENOMEM;
	cap = deflateBound(&z, (uLong)len);
	*out = malloc(cap);
	if (!*out) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(*out);
		*out = NULL;
		return -EIO;
	}
	return 0;
}

int assets_init(void)
{
	for (size_t i = 0; i < caelum_n_assets; i++) {
		struct asset *a = &caelum_assets[i];
		int err;

		if (a->gz)
			continue;
		err = gzip_buf(a->data, a->len, &a->gz, &a->gz_len);
		if (err)
			return err;
		/* Content hash for ETag: crc32 and length identify a build's file. */
		snprintf(a->etag, sizeof(a->etag), "\"%08lx-%zx\"", crc32(0, a->data, (uInt)a->len),
			 a->len);
	}
	return 0;
}

void assets_free(void)
{
	for (size_t i = 0; i < caelum_n_assets; i++) {
		free(caelum_assets[i].gz);
		caelum_assets[i].gz = NULL;
	}
}

const struct asset *asset_find(const char *path)
{
	if (!strcmp(path, "/index.html"))
		path = "/";
	for (size_t i = 0; i < caelum_n_assets; i++)
		if (!strcmp(caelum_assets[i].path, path))
			return &caelum_assets[i];
	return NULL;
}
