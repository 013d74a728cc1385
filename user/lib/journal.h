/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Append-only event journal: one JSON object per line in <dir>/<name>, rotated into
 * <name>.1.gz (newest) .. <name>.<keep>.gz (oldest). Lines are opaque strings; the only
 * check, on both sides, is that a line starts with '{' and ends with '}'. That is what
 * isolates a fragment left by a crash mid-write: at open the writer terminates an
 * unterminated tail with '\n', and the reader drops every line that fails the check, a
 * truncated last line, and lines longer than JOURNAL_LINE_MAX. A fragment that happens to
 * end in '}' (e.g. `{"a":{"b":1}`) passes; the consumer's JSON parser must still reject it.
 *
 * Example, keep = 2, after three rotations: events.jsonl.2.gz holds the 2nd file written,
 * events.jsonl.1.gz the 3rd, events.jsonl the lines since; the 1st file was deleted.
 *
 * Not thread-safe: one writer (the daemon's event loop) per journal. Readers may run
 * concurrently in other processes; a walk that races a rotation may miss or repeat lines.
 */
#ifndef CAELUM_JOURNAL_H
#define CAELUM_JOURNAL_H

#include <stddef.h>

#define JOURNAL_LINE_MAX  65536 /* bytes in a line, '\n' excluded */
#define JOURNAL_MIN_BYTES 4096	/* smallest max_bytes */
#define JOURNAL_KEEP_MAX  100	/* most rotated files */

struct journal;

struct journal_opts {
	const char *dir;   /* directory, must exist (e.g. /var/lib/caelum) */
	const char *name;  /* file name, e.g. "events.jsonl"; no '/' */
	size_t max_bytes;  /* rotate when the current file would exceed this; >= 4096 */
	unsigned int keep; /* rotated files kept: name.1.gz (newest) .. name.<keep>.gz; 1..100 */
};

struct journal_stats {
	unsigned long long bytes;	  /* size of the current file */
	unsigned long long lines_written; /* by this handle */
	unsigned long long rotations;	  /* by this handle */
	unsigned long long write_errors;  /* failed appends, rotations, flushes */
};

/* 0 or -errno: -EINVAL for bad opts, -ENOENT when dir does not exist. */
int journal_open(struct journal **jp, const struct journal_opts *opts);
/*
 * Append line + '\n' with one write(). line has no '\n', starts with '{', ends with '}'
 * (-EINVAL otherwise) and is at most JOURNAL_LINE_MAX bytes (-EMSGSIZE). Rotates first
 * when the file would exceed max_bytes; the limit is soft: if rotation fails the line still
 * goes to the current file, so no event is lost to a full archive. 0 or -errno.
 */
int journal_append(struct journal *j, const char *line);
/* fdatasync the current file; 0 or -errno. */
int journal_flush(struct journal *j);
/* Flush and free; NULL ok. */
void journal_close(struct journal *j);
/*
 * Call cb for every valid line, oldest first: name.<keep>.gz .. name.1.gz, then the current
 * file. Needs no open journal (caelumctl reads directly). A non-zero return from cb stops the
 * walk and is returned. Missing files are skipped. Returns 0, cb's value, or -errno
 * (-ENOENT when dir is missing, -EIO for a corrupt .gz).
 */
int journal_read(const char *dir, const char *name, unsigned int keep,
		 int (*cb)(const char *line, void *ctx), void *ctx);
/* Counters for status output; all zero for NULL. */
void journal_get_stats(const struct journal *j, struct journal_stats *st);

#endif /* CAELUM_JOURNAL_H */
