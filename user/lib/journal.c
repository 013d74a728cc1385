// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Rotation, in this order:
 *   unlink name.<keep>.gz; rename name.<k>.gz -> name.<k+1>.gz for k = keep-1..1;
 *   rename name -> name.1 (plain); open a fresh name;
 *   fsync dir; gzip name.1 -> name.1.gz.tmp; fsync it; rename it to name.1.gz;
 *   unlink name.1; fsync dir.
 *
 * Recovery rule, applied by journal_finish_pending() at open and before every rotation
 * (renaming the current file onto a name.1 that still waits would lose it):
 *   - name.1.gz.tmp is only ever partial output: remove it.
 *   - name.1 and name.1.gz both exist: name.1.gz is the finished compression of name.1
 *     (the crash came between its rename and the unlink): unlink name.1.
 *   - name.1 alone: compress it again from scratch.
 * The middle case is unambiguous because the shift moved any older name.1.gz away before
 * name.1 appeared, and the directory is fsynced before a new name.1.gz is created, so no
 * power loss can bring back an old name.1.gz next to a new name.1. A crash inside the shift
 * only leaves a gap in the numbering, which readers skip. journal_read() applies the same
 * rule (name.1 counts only while name.1.gz is missing), so it returns the same lines before
 * and after recovery. If compression fails (disk full), name.1 simply stays readable and the
 * next rotation retries it; the current file grows past max_bytes meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "journal.h"
#include "log.h"

#define GZ_SUFFIX      ".gz"
#define TMP_SUFFIX     ".gz.tmp"
#define NAME_EXTRA_MAX 11 /* strlen(".100.gz.tmp"), the longest suffix ever added */
#define LINE_BUF_SIZE  (JOURNAL_LINE_MAX + 2)
#define COPY_CHUNK     16384

struct journal {
	int dfd;
	int fd; /* current file; -1 after a failed reopen, retried by the next append */
	char *dir;
	char *name;
	size_t max_bytes;
	unsigned int keep;
	bool need_nl; /* the file ends in a fragment: the next write starts with '\n' */
	char *buf;    /* '\n'? + line + '\n', so that each line is a single write() */
	struct journal_stats st;
};

/* Source of lines for the reader: stdio for the current file, zlib for archives. */
struct line_src {
	void *h;
	char *(*gets)(void *h, char *buf, int len);
	int (*eof)(void *h);
};

struct walk {
	int (*cb)(const char *line, void *ctx);
	void *ctx;
	char *buf; /* LINE_BUF_SIZE: line, '\n', NUL */
};

static int fail(const char *what, const char *dir, const char *file, int err)
{
	p_err("failed to %s '%s/%s': %s", what, dir, file, strerror(err));
	return -err;
}

/* zlib reports syscall failures as Z_ERRNO; anything else is a corrupt or truncated stream */
static int gz_fail(const char *what, const char *dir, const char *file, gzFile gz)
{
	int zerr, err = errno ?: EIO;
	const char *msg = gzerror(gz, &zerr);

	if (zerr == Z_ERRNO)
		msg = strerror(err);
	else
		err = zerr == Z_MEM_ERROR ? ENOMEM : EIO;
	/* gzdopen() names the stream "<fd:N>"; the path is printed already */
	if (!strncmp(msg, "<fd:", 4) && strstr(msg, ": "))
		msg = strstr(msg, ": ") + 2;
	p_err("failed to %s '%s/%s': %s", what, dir, file, msg);
	return -err;
}

/* name.<k><sfx>, or name for k == 0; name was length-checked, so nothing truncates */
static void file_name(char *out, const char *name, unsigned int k, const char *sfx)
{
	if (k)
		snprintf(out, NAME_MAX + 1, "%s.%u%s", name, k, sfx);
	else
		snprintf(out, NAME_MAX + 1, "%s", name);
}

/* every rotated name must still fit NAME_MAX and stay inside dir */
static bool name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	return len && len <= NAME_MAX - NAME_EXTRA_MAX && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..");
}

/* the reader's validity test, applied on write too so nothing written is later dropped */
static bool line_valid(const char *line, size_t len)
{
	return len >= 2 && line[0] == '{' && line[len - 1] == '}';
}

static int opts_check(const struct journal_opts *o)
{
	if (!o || !o->dir || !name_valid(o->name)) {
		p_err("invalid journal options: need a directory and a plain file name of at most "
		      "%d bytes",
		      NAME_MAX - NAME_EXTRA_MAX);
		return -EINVAL;
	}
	if (o->max_bytes < JOURNAL_MIN_BYTES) {
		p_err("invalid journal max_bytes %zu: must be at least %d", o->max_bytes,
		      JOURNAL_MIN_BYTES);
		return -EINVAL;
	}
	if (o->keep < 1 || o->keep > JOURNAL_KEEP_MAX) {
		p_err("invalid journal keep %u: must be 1..%d", o->keep, JOURNAL_KEEP_MAX);
		return -EINVAL;
	}
	return 0;
}

static int dir_open(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = errno;

	if (fd >= 0)
		return fd;
	p_err("failed to open journal directory '%s': %s%s", dir, strerror(err),
	      err == ENOENT ? " (does it exist?)" : "");
	return -err;
}

static int dir_sync(struct journal *j)
{
	int err;

	if (!fsync(j->dfd))
		return 0;
	err = errno;
	p_err("failed to sync journal directory '%s': %s", j->dir, strerror(err));
	return -err;
}

/* 1, 0 or -errno */
static int file_exists(struct journal *j, const char *f)
{
	struct stat st;

	if (!fstatat(j->dfd, f, &st, 0))
		return 1;
	if (errno == ENOENT)
		return 0;
	return fail("stat journal file", j->dir, f, errno);
}

/* a file that is already gone is what we wanted */
static int file_unlink(struct journal *j, const char *f)
{
	if (unlinkat(j->dfd, f, 0) && errno != ENOENT)
		return fail("remove journal file", j->dir, f, errno);
	return 0;
}

/* gaps in the numbering are normal after a crash, so the shift passes missing_ok */
static int file_rename(struct journal *j, const char *from, const char *to, bool missing_ok)
{
	if (!renameat(j->dfd, from, j->dfd, to))
		return 0;
	if (errno == ENOENT && missing_ok)
		return 0;
	return fail("rename journal file", j->dir, from, errno);
}

static int gz_fill(struct journal *j, int in, gzFile gz, const char *src)
{
	char chunk[COPY_CHUNK];
	ssize_t n;

	while ((n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read journal file", j->dir, src, errno);
		if (gzwrite(gz, chunk, (unsigned int)n) != (int)n)
			return gz_fail("compress journal file", j->dir, src, gz);
	}
	return 0;
}

/* gzclose() closes the fd it was given: zlib gets a dup so that out stays open for fsync */
static int gz_write_all(struct journal *j, int in, int out, const char *src, const char *tmp)
{
	int fd = fcntl(out, F_DUPFD_CLOEXEC, 0);
	int err, zerr;
	gzFile gz;

	if (fd < 0)
		return fail("duplicate descriptor of journal file", j->dir, tmp, errno);
	gz = gzdopen(fd, "wb6");
	if (!gz) {
		close(fd);
		return fail("compress journal file", j->dir, src, ENOMEM);
	}
	err = gz_fill(j, in, gz, src);
	zerr = gzclose_w(gz);
	if (!err && zerr != Z_OK)
		err = fail("write journal file", j->dir, tmp,
			   zerr == Z_ERRNO && errno ? errno : EIO);
	return err;
}

/* name.1.gz appears only through a rename of a complete, fsynced tmp file */
static int file_compress(struct journal *j, const char *src, const char *tmp, const char *dst)
{
	int in, out, err;

	in = openat(j->dfd, src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail("open journal file", j->dir, src, errno);
	out = openat(j->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (out < 0) {
		err = fail("create journal file", j->dir, tmp, errno);
		goto out_in;
	}
	err = gz_write_all(j, in, out, src, tmp);
	if (!err && fsync(out))
		err = fail("sync journal file", j->dir, tmp, errno);
	close(out);
	if (!err)
		err = file_rename(j, tmp, dst, false);
	if (err)
		unlinkat(j->dfd, tmp, 0);
out_in:
	close(in);
	return err;
}

/* The recovery rule at the top of this file. */
static int journal_finish_pending(struct journal *j)
{
	char one[NAME_MAX + 1], gz[NAME_MAX + 1], tmp[NAME_MAX + 1];
	int err;

	file_name(one, j->name, 1, "");
	file_name(gz, j->name, 1, GZ_SUFFIX);
	file_name(tmp, j->name, 1, TMP_SUFFIX);
	err = file_unlink(j, tmp);
	if (!err)
		err = file_exists(j, one);
	if (err <= 0)
		return err;
	err = file_exists(j, gz);
	if (!err) {
		/* the shift and name.1 must be durable before a new name.1.gz exists */
		err = dir_sync(j);
		if (!err)
			err = file_compress(j, one, tmp, gz);
	}
	if (err < 0)
		return err;
	err = file_unlink(j, one);
	return err ?: dir_sync(j);
}

/* make room for a new name.1.gz, dropping the oldest */
static int journal_shift(struct journal *j)
{
	char from[NAME_MAX + 1], to[NAME_MAX + 1];
	int err;

	file_name(to, j->name, j->keep, GZ_SUFFIX);
	err = file_unlink(j, to);
	for (unsigned int k = j->keep - 1; !err && k >= 1; k--) {
		file_name(from, j->name, k, GZ_SUFFIX);
		err = file_rename(j, from, to, true);
		strcpy(to, from);
	}
	return err;
}

/* Loops only after a short write (disk full); the line is broken for readers by then anyway. */
static int file_write(struct journal *j, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(j->fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail("write journal file", j->dir, j->name, n < 0 ? errno : EIO);
		j->st.bytes += n;
		j->need_nl = buf[n - 1] != '\n';
		buf += n;
		len -= n;
	}
	return 0;
}

/* a crash mid-write leaves a fragment without '\n'; the next line must not extend it */
static int tail_check(struct journal *j, off_t size)
{
	ssize_t n;
	char c;
	int fd, err;

	j->need_nl = false;
	if (!size)
		return 0;
	/* the writer fd is O_WRONLY: peek at the last byte through a second one */
	fd = openat(j->dfd, j->name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("open journal file", j->dir, j->name, errno);
	n = pread(fd, &c, 1, size - 1);
	err = errno;
	close(fd);
	if (n < 0)
		return fail("read journal file", j->dir, j->name, err);
	j->need_nl = n == 1 && c != '\n';
	return 0;
}

static int journal_open_current(struct journal *j)
{
	struct stat st;
	int fd, err;

	fd = openat(j->dfd, j->name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return fail("open journal file", j->dir, j->name, errno);
	if (fstat(fd, &st)) {
		err = fail("stat journal file", j->dir, j->name, errno);
		close(fd);
		return err;
	}
	j->fd = fd;
	j->st.bytes = st.st_size;
	err = tail_check(j, st.st_size);
	/* isolate the fragment now, so readers drop it even if nothing else is written */
	if (!err && j->need_nl)
		err = file_write(j, "\n", 1);
	return err;
}

/* Rotation failures are returned but never lose the line: the caller still appends. */
static int journal_rotate(struct journal *j)
{
	char one[NAME_MAX + 1];
	int err;

	file_name(one, j->name, 1, "");
	err = journal_finish_pending(j);
	if (!err)
		err = journal_shift(j);
	if (!err)
		err = file_rename(j, j->name, one, false);
	if (err)
		return err;
	close(j->fd);
	j->fd = -1;
	j->st.bytes = 0;
	j->need_nl = false;
	j->st.rotations++;
	err = journal_open_current(j);
	/* on failure name.1 stays readable and is retried by the next rotation or open */
	return journal_finish_pending(j) ?: err;
}

static void journal_free(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->dfd >= 0)
		close(j->dfd);
	free(j->buf);
	free(j->name);
	free(j->dir);
	free(j);
}

int journal_open(struct journal **jp, const struct journal_opts *opts)
{
	struct journal *j;
	int err;

	if (!jp)
		return -EINVAL;
	*jp = NULL;
	err = opts_check(opts);
	if (err)
		return err;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fd = j->dfd = -1;
	j->max_bytes = opts->max_bytes;
	j->keep = opts->keep;
	j->dir = strdup(opts->dir);
	j->name = strdup(opts->name);
	j->buf = malloc(LINE_BUF_SIZE);
	if (!j->dir || !j->name || !j->buf) {
		err = -ENOMEM;
		goto err_free;
	}
	err = j->dfd = dir_open(j->dir);
	if (err < 0)
		goto err_free;
	/* a leftover that cannot be compressed now must not keep the daemon from logging */
	if (journal_finish_pending(j))
		p_warn("journal '%s/%s.1' stays uncompressed until the next rotation", j->dir,
		       j->name);
	err = journal_open_current(j);
	if (err)
		goto err_free;
	*jp = j;
	return 0;

err_free:
	journal_free(j);
	return err;
}

int journal_append(struct journal *j, const char *line)
{
	size_t len, off = 0;
	int err;

	if (!j || !line)
		return -EINVAL;
	len = strnlen(line, JOURNAL_LINE_MAX + 1);
	err = len > JOURNAL_LINE_MAX ? -EMSGSIZE : 0;
	if (!err && (!line_valid(line, len) || memchr(line, '\n', len)))
		err = -EINVAL;
	if (err) {
		p_err("invalid journal line: %s", strerror(-err));
		goto out_err;
	}
	if (j->st.bytes && j->st.bytes + j->need_nl + len + 1 > j->max_bytes && journal_rotate(j))
		j->st.write_errors++;
	err = j->fd < 0 ? journal_open_current(j) : 0;
	if (err)
		goto out_err;
	if (j->need_nl)
		j->buf[off++] = '\n';
	memcpy(j->buf + off, line, len);
	off += len;
	j->buf[off++] = '\n';
	err = file_write(j, j->buf, off);
	if (err)
		goto out_err;
	j->st.lines_written++;
	return 0;

out_err:
	j->st.write_errors++;
	return err;
}

int journal_flush(struct journal *j)
{
	if (!j)
		return -EINVAL;
	if (j->fd < 0 || !fdatasync(j->fd))
		return 0;
	j->st.write_errors++;
	return fail("sync journal file", j->dir, j->name, errno);
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	journal_flush(j);
	journal_free(j);
}

void journal_get_stats(const struct journal *j, struct journal_stats *st)
{
	if (j)
		*st = j->st;
	else
		memset(st, 0, sizeof(*st));
}

static char *stdio_gets(void *h, char *buf, int len)
{
	return fgets(buf, len, h);
}

static int stdio_eof(void *h)
{
	return feof((FILE *)h);
}

static char *zlib_gets(void *h, char *buf, int len)
{
	return gzgets(h, buf, len);
}

static int zlib_eof(void *h)
{
	return gzeof(h);
}

/* a NUL inside a line hides its '\n' from strlen(): such lines are dropped as well */
static int line_emit(struct walk *w, char *buf)
{
	size_t len = strlen(buf);

	if (!len || buf[len - 1] != '\n')
		return 0;
	buf[--len] = '\0';
	if (!line_valid(buf, len))
		return 0;
	return w->cb(buf, w->ctx);
}

/*
 * fgets()/gzgets() with a sentinel in the last byte: once the terminating NUL overwrites it,
 * the buffer is full and the line goes on unless it ends right there in '\n'. A line that
 * does not fit is skipped up to its '\n', never split; a tail without '\n' is dropped.
 */
static int walk_lines(struct walk *w, const struct line_src *src)
{
	bool skip = false, full, ended;
	char *buf = w->buf;
	int ret;

	for (;;) {
		buf[LINE_BUF_SIZE - 1] = 'x';
		if (!src->gets(src->h, buf, LINE_BUF_SIZE))
			return 0;
		full = !buf[LINE_BUF_SIZE - 1];
		ended = full ? buf[LINE_BUF_SIZE - 2] == '\n' : !src->eof(src->h);
		if (!ended && !full)
			return 0;
		if (!ended || skip) {
			skip = !ended;
			continue;
		}
		ret = line_emit(w, buf);
		if (ret)
			return ret;
	}
}

static int read_plain(int dfd, const char *dir, const char *f, struct walk *w)
{
	struct line_src src = { .gets = stdio_gets, .eof = stdio_eof };
	int fd, ret;
	FILE *fp;

	fd = openat(dfd, f, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : fail("open journal file", dir, f, errno);
	fp = fdopen(fd, "r");
	if (!fp) {
		ret = fail("open journal file", dir, f, errno);
		close(fd);
		return ret;
	}
	src.h = fp;
	errno = 0;
	ret = walk_lines(w, &src);
	if (!ret && ferror(fp))
		ret = fail("read journal file", dir, f, errno ?: EIO);
	fclose(fp);
	return ret;
}

static int read_gz(int dfd, const char *dir, const char *f, struct walk *w)
{
	struct line_src src = { .gets = zlib_gets, .eof = zlib_eof };
	int fd, ret, zerr;
	gzFile gz;

	fd = openat(dfd, f, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : fail("open journal file", dir, f, errno);
	gz = gzdopen(fd, "rb");
	if (!gz) {
		close(fd);
		return fail("open journal file", dir, f, ENOMEM);
	}
	src.h = gz;
	errno = 0;
	ret = walk_lines(w, &src);
	gzerror(gz, &zerr);
	/* Z_OK and Z_STREAM_END are fine; a truncated or corrupt archive is not */
	if (!ret && zerr < 0)
		ret = gz_fail("decompress journal file", dir, f, gz);
	gzclose_r(gz);
	return ret;
}

/* by the recovery rule, a plain name.1 counts only while name.1.gz is missing */
static int read_newest(int dfd, const char *dir, const char *name, struct walk *w)
{
	char f[NAME_MAX + 1];
	struct stat st;

	file_name(f, name, 1, GZ_SUFFIX);
	if (!fstatat(dfd, f, &st, 0) || errno != ENOENT)
		return read_gz(dfd, dir, f, w);
	file_name(f, name, 1, "");
	return read_plain(dfd, dir, f, w);
}

int journal_read(const char *dir, const char *name, unsigned int keep,
		 int (*cb)(const char *line, void *ctx), void *ctx)
{
	struct walk w = { .cb = cb, .ctx = ctx };
	char f[NAME_MAX + 1];
	int dfd, ret = 0;

	if (!dir || !name_valid(name) || !keep || keep > JOURNAL_KEEP_MAX || !cb)
		return -EINVAL;
	dfd = dir_open(dir);
	if (dfd < 0)
		return dfd;
	w.buf = malloc(LINE_BUF_SIZE);
	if (!w.buf) {
		close(dfd);
		return -ENOMEM;
	}
	for (unsigned int k = keep; !ret && k >= 2; k--) {
		file_name(f, name, k, GZ_SUFFIX);
		ret = read_gz(dfd, dir, f, &w);
	}
	if (!ret)
		ret = read_newest(dfd, dir, name, &w);
	if (!ret)
		ret = read_plain(dfd, dir, name, &w);
	free(w.buf);
	close(dfd);
	return ret;
}
