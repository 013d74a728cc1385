/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The dashboard's static files, embedded at build time (tools/embed.py writes
 * build/gen/assets.c from web/ and the pinned npm packages). assets_init() gzips each
 * once; the server picks the gzip body when the client accepts it.
 */
#ifndef CAELUM_ASSETS_H
#define CAELUM_ASSETS_H

#include <stddef.h>

struct asset {
	const char *path; /* URL path: "/", "/app.js" */
	const char *ctype;
	const unsigned char *data;
	size_t len;
	unsigned char *gz; /* set by assets_init() */
	size_t gz_len;
	char etag[24];
};

extern struct asset caelum_assets[];
extern const size_t caelum_n_assets;

int assets_init(void);
void assets_free(void);
const struct asset *asset_find(const char *path);

#endif /* CAELUM_ASSETS_H */
