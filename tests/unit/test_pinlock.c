// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * One caelumd per pin set (user/lib/pinlock.c): the /proc/locks parser that names the live
 * daemon, and the lock itself taken twice on real directories.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "testutil.h"
#include "pinlock.h"

static const char LOCKS[] = "1: POSIX  ADVISORY  WRITE 10440 fe:00:404740 0 EOF\n"
			    "2: FLOCK  ADVISORY  WRITE 13590 00:26:21742 0 EOF\n"
			    "2: -> FLOCK  ADVISORY  WRITE 13600 00:26:21742 0 EOF\n"
			    "3: FLOCK  ADVISORY  WRITE 777 00:1a:21742 0 EOF\n"
			    "4: OFDLCK ADVISORY  READ  -1 00:26:99 0 EOF\n";

static void test_holder_parse(void **state)
{
	(void)state;
	assert_int_equal(pinlock_holder_in(LOCKS, makedev(0, 0x26), 21742), 13590);
	/* Same inode number on another device: another file. */
	assert_int_equal(pinlock_holder_in(LOCKS, makedev(0, 0x1a), 21742), 777);
	/* POSIX locks are not ours; OFD locks with pid -1 neither; unknown inode: 0. */
	assert_int_equal(pinlock_holder_in(LOCKS, makedev(0xfe, 0), 404740), 0);
	assert_int_equal(pinlock_holder_in(LOCKS, makedev(0, 0x26), 99), 0);
	assert_int_equal(pinlock_holder_in(LOCKS, makedev(0, 0x26), 1), 0);
	assert_int_equal(pinlock_holder_in("", makedev(0, 0x26), 21742), 0);
	assert_int_equal(pinlock_holder_in("garbage\n\n", makedev(0, 0x26), 21742), 0);
}

/* A child (another process, as a second caelumd would be) tries the same pair. */
static int take_in_child(const char *a, const char *b)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct pinlock pl;

		_exit(pinlock_take(&pl, a, b) == -EBUSY ? 3 : 0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WEXITSTATUS(status);
}

static void test_take_twice(void **state)
{
	char *a = tmpdir_new("pinlock-a"), *b = tmpdir_new("pinlock-b");
	char *c = tmpdir_new("pinlock-c"), *d = tmpdir_new("pinlock-d");
	struct pinlock pl;

	(void)state;
	assert_int_equal(pinlock_take(&pl, a, b), 0);
	assert_int_equal(take_in_child(a, c), 3); /* same bpffs */
	assert_int_equal(take_in_child(c, b), 3); /* same cgroup_root */
	assert_int_equal(take_in_child(c, d), 0); /* disjoint */
	pinlock_release(&pl);
	assert_int_equal(pl.bpffs_fd, -1);
	assert_int_equal(take_in_child(a, b), 0); /* released */
	assert_int_equal(pinlock_take(&pl, "/nonexistent/caelum", b), -ENOENT);
	assert_int_equal(pl.bpffs_fd, -1);
	assert_int_equal(pl.cgroup_fd, -1);
	tmpdir_remove(a);
	tmpdir_remove(b);
	tmpdir_remove(c);
	tmpdir_remove(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holder_parse),
		cmocka_unit_test(test_take_twice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
