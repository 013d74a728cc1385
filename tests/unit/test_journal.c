// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Journal: append/read order, rotation and keep, crash recovery, reader robustness. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "journal.h"
#include "log.h"

#define NAME	 "events.jsonl"
#define LINE_LEN 99 /* + '\n' = 100 bytes: 40 lines fill a 4096-byte file */
#define PER_FILE 40

struct lines {
	char **v;
	size_t n;
	int stop_at; /* 1-based line at which collect() returns 42; 0 = never */
};

static int setup_dir(void **state)
{
	char *dir = strdup("/tmp/caelum-journal-XXXXXX");

	if (!dir || !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state, path[512];
	struct dirent *de;
	DIR *d = opendir(dir);
	int ret;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) && rmdir(path))
			fprintf(stderr, "cannot remove %s\n", path);
	}
	closedir(d);
	ret = rmdir(dir);
	free(dir);
	return ret;
}

static void make_line(char *buf, int seq)
{
	int n = snprintf(buf, LINE_LEN + 1, "{\"seq\":%04d,\"pad\":\"", seq);

	memset(buf + n, 'x', LINE_LEN - n - 2);
	strcpy(buf + LINE_LEN - 2, "\"}");
}

static void path_of(char *out, const char *dir, const char *f)
{
	snprintf(out, 512, "%s/%s", dir, f);
}

static int file_exists(const char *dir, const char *f)
{
	char p[512];

	path_of(p, dir, f);
	return access(p, F_OK) == 0;
}

static void write_raw(const char *dir, const char *f, const char *data, size_t len)
{
	char p[512];
	FILE *fp;

	path_of(p, dir, f);
	fp = fopen(p, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void write_gz(const char *dir, const char *f, const char *data, size_t len)
{
	char p[512];
	gzFile gz;

	path_of(p, dir, f);
	gz = gzopen(p, "wb");
	assert_non_null(gz);
	assert_int_equal(gzwrite(gz, data, (unsigned int)len), (int)len);
	assert_int_equal(gzclose(gz), Z_OK);
}

/* whole file, decompressed when gz; caller frees */
static char *slurp(const char *dir, const char *f, size_t *len)
{
	char p[512], *buf = malloc(1 << 20);
	gzFile gz;
	int n;

	assert_non_null(buf);
	path_of(p, dir, f);
	gz = gzopen(p, "rb");
	assert_non_null(gz);
	n = gzread(gz, buf, (1 << 20) - 1);
	assert_true(n >= 0);
	gzclose(gz);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* expected content of a file holding lines [from, to) */
static void assert_file_lines(const char *dir, const char *f, int from, int to)
{
	char line[LINE_LEN + 1];
	size_t len;
	char *buf = slurp(dir, f, &len);

	assert_int_equal(len, (size_t)(to - from) * (LINE_LEN + 1));
	for (int i = from; i < to; i++) {
		make_line(line, i);
		assert_memory_equal(buf + (size_t)(i - from) * (LINE_LEN + 1), line, LINE_LEN);
		assert_int_equal(buf[(size_t)(i - from + 1) * (LINE_LEN + 1) - 1], '\n');
	}
	free(buf);
}

static int collect(const char *line, void *ctx)
{
	struct lines *l = ctx;

	l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	assert_non_null(l->v);
	l->v[l->n] = strdup(line);
	assert_non_null(l->v[l->n]);
	l->n++;
	return l->stop_at && (int)l->n == l->stop_at ? 42 : 0;
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void assert_read_seq(const char *dir, unsigned int keep, int from, int to)
{
	struct lines l = {};
	char line[LINE_LEN + 1];

	assert_int_equal(journal_read(dir, NAME, keep, collect, &l), 0);
	assert_int_equal(l.n, (size_t)(to - from));
	for (int i = from; i < to; i++) {
		make_line(line, i);
		assert_string_equal(l.v[i - from], line);
	}
	lines_free(&l);
}

static struct journal *open_j(const char *dir, size_t max_bytes, unsigned int keep)
{
	struct journal_opts o = { .dir = dir, .name = NAME, .max_bytes = max_bytes, .keep = keep };
	struct journal *j = NULL;

	assert_int_equal(journal_open(&j, &o), 0);
	assert_non_null(j);
	return j;
}

static void append_seq(struct journal *j, int from, int to)
{
	char line[LINE_LEN + 1];

	for (int i = from; i < to; i++) {
		make_line(line, i);
		assert_int_equal(journal_append(j, line), 0);
	}
}

static void test_append_read_order(void **state)
{
	const char *dir = *state;
	struct journal_stats st;
	struct journal *j = open_j(dir, 1 << 20, 3);
	char p[512];
	struct stat sb;

	append_seq(j, 0, 10);
	assert_int_equal(journal_flush(j), 0);
	journal_get_stats(j, &st);
	assert_int_equal(st.lines_written, 10);
	assert_int_equal(st.bytes, 10 * (LINE_LEN + 1));
	assert_int_equal(st.rotations, 0);
	assert_int_equal(st.write_errors, 0);
	path_of(p, dir, NAME);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640);
	/* readable while open, and after close */
	assert_read_seq(dir, 3, 0, 10);
	journal_close(j);
	assert_read_seq(dir, 3, 0, 10);
	assert_file_lines(dir, NAME, 0, 10);
}

static void test_rotation_shifts(void **state)
{
	const char *dir = *state;
	struct journal_stats st;
	struct journal *j = open_j(dir, 4096, 3);

	append_seq(j, 0, PER_FILE);
	journal_get_stats(j, &st);
	assert_int_equal(st.rotations, 0);
	assert_false(file_exists(dir, NAME ".1.gz"));

	append_seq(j, PER_FILE, PER_FILE + 1);
	journal_get_stats(j, &st);
	assert_int_equal(st.rotations, 1);
	assert_int_equal(st.bytes, LINE_LEN + 1);
	assert_false(file_exists(dir, NAME ".1"));
	assert_false(file_exists(dir, NAME ".1.gz.tmp"));
	assert_file_lines(dir, NAME ".1.gz", 0, PER_FILE);
	assert_file_lines(dir, NAME, PER_FILE, PER_FILE + 1);

	append_seq(j, PER_FILE + 1, 2 * PER_FILE + 1);
	journal_get_stats(j, &st);
	assert_int_equal(st.rotations, 2);
	assert_int_equal(st.write_errors, 0);
	assert_file_lines(dir, NAME ".2.gz", 0, PER_FILE);
	assert_file_lines(dir, NAME ".1.gz", PER_FILE, 2 * PER_FILE);
	assert_file_lines(dir, NAME, 2 * PER_FILE, 2 * PER_FILE + 1);
	journal_close(j);
}

/* the size of an existing file counts after reopen */
static void test_reopen_continues(void **state)
{
	const char *dir = *state;
	struct journal_stats st;
	struct journal *j = open_j(dir, 4096, 3);

	append_seq(j, 0, 30);
	journal_close(j);
	j = open_j(dir, 4096, 3);
	journal_get_stats(j, &st);
	assert_int_equal(st.bytes, 30 * (LINE_LEN + 1));
	append_seq(j, 30, PER_FILE + 1);
	journal_get_stats(j, &st);
	assert_int_equal(st.rotations, 1);
	journal_close(j);
	assert_file_lines(dir, NAME ".1.gz", 0, PER_FILE);
	assert_read_seq(dir, 3, 0, PER_FILE + 1);
}

static void test_keep_limit(void **state)
{
	const char *dir = *state;
	struct journal_stats st;
	struct journal *j = open_j(dir, 4096, 2);

	append_seq(j, 0, 5 * PER_FILE + 1);
	journal_get_stats(j, &st);
	assert_int_equal(st.rotations, 5);
	journal_close(j);
	assert_file_lines(dir, NAME ".2.gz", 3 * PER_FILE, 4 * PER_FILE);
	assert_file_lines(dir, NAME ".1.gz", 4 * PER_FILE, 5 * PER_FILE);
	assert_false(file_exists(dir, NAME ".3.gz"));
	assert_read_seq(dir, 2, 3 * PER_FILE, 5 * PER_FILE + 1);
}

static void test_read_across_files(void **state)
{
	const char *dir = *state;
	struct journal *j = open_j(dir, 4096, 3);

	append_seq(j, 0, 3 * PER_FILE + 10);
	assert_read_seq(dir, 3, 0, 3 * PER_FILE + 10);
	journal_close(j);
	/* a larger keep only finds more missing files; a smaller one reads fewer */
	assert_read_seq(dir, 100, 0, 3 * PER_FILE + 10);
	assert_read_seq(dir, 1, 2 * PER_FILE, 3 * PER_FILE + 10);
}

static void test_crash_unterminated_tail(void **state)
{
	static const char before[] = "{\"a\":1}\n{\"b\":";
	const char *dir = *state;
	struct lines l = {};
	struct journal *j;
	size_t len;
	char *buf;

	write_raw(dir, NAME, before, sizeof(before) - 1);
	j = open_j(dir, 4096, 3);
	/* the fragment is terminated at open, before anything else is written */
	buf = slurp(dir, NAME, &len);
	assert_string_equal(buf, "{\"a\":1}\n{\"b\":\n");
	free(buf);
	assert_int_equal(journal_append(j, "{\"c\":3}"), 0);
	journal_close(j);
	buf = slurp(dir, NAME, &len);
	assert_string_equal(buf, "{\"a\":1}\n{\"b\":\n{\"c\":3}\n");
	free(buf);
	assert_int_equal(journal_read(dir, NAME, 3, collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "{\"a\":1}");
	assert_string_equal(l.v[1], "{\"c\":3}");
	lines_free(&l);
}

/* a last line without '\n' is dropped even when it looks complete */
static void test_read_skips_truncated_tail(void **state)
{
	static const char data[] = "{\"a\":1}\n{\"b\":2}";
	const char *dir = *state;
	struct lines l = {};

	write_raw(dir, NAME, data, sizeof(data) - 1);
	assert_int_equal(journal_read(dir, NAME, 3, collect, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0], "{\"a\":1}");
	lines_free(&l);
}

static void assert_read_strings(const char *dir, unsigned int keep, const char *const *want,
				size_t n)
{
	struct lines l = {};

	assert_int_equal(journal_read(dir, NAME, keep, collect, &l), 0);
	assert_int_equal(l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l.v[i], want[i]);
	lines_free(&l);
}

/* crash during compression: name.1 alone is compressed at open, a tmp is dropped */
static void test_crash_leftover_plain(void **state)
{
	static const char *const want[] = { "{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}" };
	const char *dir = *state;
	struct journal *j;
	size_t len;
	char *buf;

	write_gz(dir, NAME ".2.gz", "{\"a\":1}\n", 8);
	write_raw(dir, NAME ".1", "{\"b\":2}\n{\"c\":3}\n", 16);
	write_raw(dir, NAME ".1.gz.tmp", "\x1f\x8b junk", 7);
	write_raw(dir, NAME, "{\"d\":4}\n", 8);
	/* the reader already sees the pending file in its place */
	assert_read_strings(dir, 3, want, 4);

	j = open_j(dir, 4096, 3);
	assert_false(file_exists(dir, NAME ".1"));
	assert_false(file_exists(dir, NAME ".1.gz.tmp"));
	buf = slurp(dir, NAME ".1.gz", &len);
	assert_string_equal(buf, "{\"b\":2}\n{\"c\":3}\n");
	free(buf);
	buf = slurp(dir, NAME ".2.gz", &len);
	assert_string_equal(buf, "{\"a\":1}\n");
	free(buf);
	journal_close(j);
	assert_read_strings(dir, 3, want, 4);
}

/* crash between rename to name.1.gz and unlink of name.1: no duplicate lines */
static void test_crash_leftover_both(void **state)
{
	static const char *const want[] = { "{\"b\":2}", "{\"d\":4}" };
	const char *dir = *state;
	struct journal *j;

	write_raw(dir, NAME ".1", "{\"b\":2}\n", 8);
	write_gz(dir, NAME ".1.gz", "{\"b\":2}\n", 8);
	write_raw(dir, NAME, "{\"d\":4}\n", 8);
	assert_read_strings(dir, 3, want, 2);
	j = open_j(dir, 4096, 3);
	assert_false(file_exists(dir, NAME ".1"));
	assert_true(file_exists(dir, NAME ".1.gz"));
	journal_close(j);
	assert_read_strings(dir, 3, want, 2);
}

/* a failed rotation keeps the line (soft limit) and counts the error */
static void test_rotation_failure_keeps_line(void **state)
{
	const char *dir = *state;
	struct journal_stats st;
	struct journal *j;
	char p[512];

	/* a directory where the tmp file goes cannot be unlinked: recovery fails */
	path_of(p, dir, NAME ".1.gz.tmp");
	assert_int_equal(mkdir(p, 0700), 0);
	write_raw(dir, NAME ".1", "{\"a\":1}\n", 8);
	j = open_j(dir, 4096, 3);
	append_seq(j, 0, PER_FILE + 2);
	journal_get_stats(j, &st);
	assert_int_equal(st.rotations, 0);
	assert_int_equal(st.write_errors, 2);
	assert_int_equal(st.lines_written, PER_FILE + 2);
	assert_int_equal(st.bytes, (PER_FILE + 2) * (LINE_LEN + 1));
	assert_true(file_exists(dir, NAME ".1"));
	journal_close(j);
}

static void test_cb_stop(void **state)
{
	const char *dir = *state;
	struct lines l = { .stop_at = 3 };
	struct journal *j = open_j(dir, 4096, 3);

	append_seq(j, 0, 5);
	journal_close(j);
	assert_int_equal(journal_read(dir, NAME, 3, collect, &l), 42);
	assert_int_equal(l.n, 3);
	lines_free(&l);
}

static void test_missing_dir(void **state)
{
	struct journal_opts o = { .name = NAME, .max_bytes = 4096, .keep = 3 };
	struct journal *j = (struct journal *)&o;
	struct lines l = {};
	char p[512];

	path_of(p, *state, "nope");
	o.dir = p;
	assert_int_equal(journal_open(&j, &o), -ENOENT);
	assert_null(j);
	assert_int_equal(journal_read(p, NAME, 3, collect, &l), -ENOENT);
	assert_int_equal(l.n, 0);
}

static void assert_opts_einval(const char *dir, const char *name, size_t max_bytes,
			       unsigned int keep)
{
	struct journal_opts o = { .dir = dir, .name = name, .max_bytes = max_bytes, .keep = keep };
	struct journal *j = NULL;

	assert_int_equal(journal_open(&j, &o), -EINVAL);
	assert_null(j);
}

static void test_invalid_opts(void **state)
{
	const char *dir = *state;
	struct journal *j = NULL;
	struct lines l = {};

	assert_opts_einval(dir, NAME, 4095, 3);
	assert_opts_einval(dir, NAME, 0, 3);
	assert_opts_einval(dir, NAME, 4096, 0);
	assert_opts_einval(dir, NAME, 4096, 101);
	assert_opts_einval(dir, "a/b", 4096, 3);
	assert_opts_einval(dir, "", 4096, 3);
	assert_opts_einval(dir, NULL, 4096, 3);
	assert_opts_einval(NULL, NAME, 4096, 3);
	assert_int_equal(journal_open(&j, NULL), -EINVAL);
	assert_int_equal(journal_read(dir, NAME, 0, collect, &l), -EINVAL);
	assert_int_equal(journal_read(dir, NAME, 101, collect, &l), -EINVAL);
	/* the bounds themselves are accepted */
	journal_close(open_j(dir, 4096, 100));
	journal_close(open_j(dir, 4096, 1));
	journal_close(NULL);
}

/* the writer refuses what the reader would drop; the longest line round-trips */
static void test_append_rejects(void **state)
{
	const char *dir = *state;
	struct journal *j = open_j(dir, 4096, 3);
	char *big = malloc(JOURNAL_LINE_MAX + 2);
	struct journal_stats st;
	struct lines l = {};

	assert_non_null(big);
	assert_int_equal(journal_append(j, ""), -EINVAL);
	assert_int_equal(journal_append(j, "{"), -EINVAL);
	assert_int_equal(journal_append(j, "[1]"), -EINVAL);
	assert_int_equal(journal_append(j, "{\"a\":\n1}"), -EINVAL);
	memset(big, 'x', JOURNAL_LINE_MAX + 1);
	big[0] = '{';
	big[JOURNAL_LINE_MAX] = '}';
	big[JOURNAL_LINE_MAX + 1] = '\0';
	assert_int_equal(journal_append(j, big), -EMSGSIZE);
	journal_get_stats(j, &st);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.write_errors, 5);

	big[JOURNAL_LINE_MAX - 1] = '}';
	big[JOURNAL_LINE_MAX] = '\0';
	assert_int_equal(journal_append(j, big), 0);
	assert_int_equal(journal_append(j, "{}"), 0);
	journal_close(j);
	assert_int_equal(journal_read(dir, NAME, 3, collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], big);
	assert_string_equal(l.v[1], "{}");
	lines_free(&l);
	free(big);
}

/* garbage written by something else: over-long, NUL-holding, non-object lines, zeroed tail */
static size_t build_hostile(char *buf, char *maxline)
{
	size_t off = 0;

#define PUT(s, n) (memcpy(buf + off, (s), (n)), off += (n))
	PUT("{\"a\":1}\n", 8);
	buf[off] = '{';
	memset(buf + off + 1, 'y', JOURNAL_LINE_MAX - 1);
	buf[off + JOURNAL_LINE_MAX] = '}'; /* one byte too long */
	off += JOURNAL_LINE_MAX + 1;
	PUT("\n{\"b\":2}\n", 9);
	PUT("{\"c\":\0\"x\"}\n", 11);
	PUT("[\"not an object\"]\n", 18);
	PUT("\n", 1);
	PUT(maxline, JOURNAL_LINE_MAX);
	PUT("\n{\"d\":4}\n", 9);
	memset(buf + off, 0, 300); /* a crash can leave zeroed blocks at the end */
	off += 300;
	PUT("\n{\"e\":5}\n", 9);
	PUT("{\"f\":6}", 7);
#undef PUT
	return off;
}

static void test_read_skips_bad_lines(void **state)
{
	const char *dir = *state;
	char *buf = malloc(3 * JOURNAL_LINE_MAX), *maxline = malloc(JOURNAL_LINE_MAX + 1);
	struct lines l = {};
	size_t len;

	assert_non_null(buf);
	assert_non_null(maxline);
	memset(maxline, 'z', JOURNAL_LINE_MAX);
	maxline[0] = '{';
	maxline[JOURNAL_LINE_MAX - 1] = '}';
	maxline[JOURNAL_LINE_MAX] = '\0';
	len = build_hostile(buf, maxline);
	/* the same bytes through zlib (rotated) and stdio (current) */
	write_gz(dir, NAME ".1.gz", buf, len);
	write_raw(dir, NAME, buf, len);
	assert_int_equal(journal_read(dir, NAME, 3, collect, &l), 0);
	assert_int_equal(l.n, 10);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(l.v[5 * i + 0], "{\"a\":1}");
		assert_string_equal(l.v[5 * i + 1], "{\"b\":2}");
		assert_string_equal(l.v[5 * i + 2], maxline);
		assert_string_equal(l.v[5 * i + 3], "{\"d\":4}");
		assert_string_equal(l.v[5 * i + 4], "{\"e\":5}");
	}
	lines_free(&l);
	free(maxline);
	free(buf);
}

/* a damaged archive is an error, not a silent gap */
static void test_read_corrupt_gz(void **state)
{
	const char *dir = *state;
	char *data = malloc(200000), p[512];
	struct lines l = {};

	assert_non_null(data);
	for (int i = 0; i < 2000; i++) {
		char line[128];

		snprintf(line, sizeof(line), "{\"seq\":%06d,\"r\":%080d}\n", i, rand());
		assert_int_equal(strlen(line), 100);
		memcpy(data + i * 100, line, 100);
	}
	write_gz(dir, NAME ".1.gz", data, 200000);
	path_of(p, dir, NAME ".1.gz");
	assert_int_equal(truncate(p, 2000), 0);
	assert_int_equal(journal_read(dir, NAME, 3, collect, &l), -EIO);
	lines_free(&l);
	free(data);
}

static void test_read_empty_dir(void **state)
{
	struct lines l = {};
	struct journal_stats st = { .bytes = 1 };

	assert_int_equal(journal_read(*state, NAME, 100, collect, &l), 0);
	assert_int_equal(l.n, 0);
	journal_get_stats(NULL, &st);
	assert_int_equal(st.bytes, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_append_read_order),
		T(test_rotation_shifts),
		T(test_reopen_continues),
		T(test_keep_limit),
		T(test_read_across_files),
		T(test_crash_unterminated_tail),
		T(test_read_skips_truncated_tail),
		T(test_crash_leftover_plain),
		T(test_crash_leftover_both),
		T(test_rotation_failure_keeps_line),
		T(test_cb_stop),
		T(test_missing_dir),
		T(test_invalid_opts),
		T(test_append_rejects),
		T(test_read_skips_bad_lines),
		T(test_read_corrupt_gz),
		T(test_read_empty_dir),
	};

	umask(022);
	log_init("test_journal", false, true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
