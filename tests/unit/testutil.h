/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Helpers shared by the unit tests: temporary directories (removed recursively), whole
 * files in and out, and exact checks of the messages collected in a struct verr.
 * Include after <cmocka.h>.
 */
#ifndef CAELUM_TESTUTIL_H
#define CAELUM_TESTUTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonv.h"

/* A fresh /tmp/caelum-<tag>-XXXXXX (malloc'd). */
static inline char *tmpdir_new(const char *tag)
{
	char *dir;

	assert_true(asprintf(&dir, "/tmp/caelum-%s-XXXXXX", tag) > 0);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static inline int tmpdir_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* rm -r dir, then free it; 0 when everything went. */
static inline int tmpdir_remove(char *dir)
{
	int err = nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);

	free(dir);
	return err;
}

static inline int tmpdir_setup(void **state)
{
	*state = tmpdir_new("unit");
	return 0;
}

static inline int tmpdir_teardown(void **state)
{
	return tmpdir_remove(*state);
}

/* dir/name := text; the path is written to path (PATH_MAX) when not NULL. */
static inline void write_text(const char *dir, const char *name, const char *text, char *path)
{
	char p[PATH_MAX];
	size_t len = strlen(text);
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	if (path)
		strcpy(path, p);
}

/* Whole file, NUL-terminated (malloc'd); NULL when it cannot be read. */
static inline char *read_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (!f)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* e holds exactly the messages of want (NULL-terminated), in that order, none dropped. */
static inline void assert_verr_is(const struct verr *e, const char *const *want, const char *what)
{
	size_t n = 0;

	while (want[n])
		n++;
	if (e->n != n || e->dropped) {
		char *all = verr_join(e);

		fail_msg("%s: %zu messages (+%zu dropped), expected %zu:\n%s", what, e->n,
			 e->dropped, n, all ? all : "(none)");
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(e->msgs[i], want[i]))
			fail_msg("%s: message %zu\n  got:  %s\n  want: %s", what, i, e->msgs[i],
				 want[i]);
}

/* e holds exactly one message, msg. */
static inline void assert_verr_one(const struct verr *e, const char *msg, const char *what)
{
	const char *want[] = { msg, NULL };

	assert_verr_is(e, want, what);
}

#endif /* CAELUM_TESTUTIL_H */
