// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Strict JSON input (user/lib/jsonv.c): a key twice in one object is refused with its path,
 * line and column wherever it stands (json-c alone keeps the last one silently); what is
 * not a duplicate is not refused; a file that is not a regular file (a FIFO) is refused
 * without waiting for a writer.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "jsonv.h"
#include "testutil.h"

static int parse(const char *text, struct verr *e)
{
	struct json_object *o = NULL;
	int err = jv_parse_string("doc.json", text, strlen(text), &o, e);

	assert_true(err ? o == NULL : o != NULL);
	json_object_put(o);
	return err;
}

static void refused(const char *text, const char *msg)
{
	struct verr e = {};

	assert_int_equal(parse(text, &e), -EINVAL);
	assert_verr_one(&e, msg, text);
	verr_free(&e);
}

static void test_duplicate_keys_refused_where_they_stand(void **state)
{
	(void)state;
	refused("{\"name\": \"a\", \"ports\": [], \"name\": \"b\"}",
		"doc.json: name: line 1, column 28: duplicate key \"name\" (a key may appear once "
		"in an object)");
	refused("{\"mcp\": {\"peers\": [{\"url\": \"x\", \"token_file\": \"t\",\n \"url\": "
		"\"y\"}]}}",
		"doc.json: mcp.peers[0].url: line 2, column 2: duplicate key \"url\" (a key may "
		"appear once in an object)");
	/* The same key spelled with an escape is the same key. */
	refused("{\"mode\": \"enforce\", \"m\\u006fde\": \"audit\"}",
		"doc.json: mode: line 1, column 21: duplicate key \"mode\" (a key may appear once "
		"in an object)");
	/* Several objects: the first one that has a repeat is named. */
	refused("[{\"a\": 1, \"b\": 2}, {\"c\": 1, \"c\": 2, \"d\": 1, \"d\": 2}]",
		"doc.json: [1].c: line 1, column 29: duplicate key \"c\" (a key may appear once "
		"in an object)");
}

static void test_no_false_duplicates(void **state)
{
	struct verr e = {};

	(void)state;
	/* Equal keys in different objects, keys that are prefixes of each other, braces,
	 * quotes and colons inside strings, empty objects and arrays, nested arrays. */
	assert_int_equal(parse("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}, \"ab\": \"}{\\\"a\\\":\","
			       " \"a\\\"\": [[], {}, [{\"x\": [1, {\"x\": 0}]}]], \"\": 0,"
			       " \"A\": true}",
			       &e),
			 0);
	assert_int_equal(e.n, 0);
	verr_free(&e);
}

static void on_alarm(int sig)
{
	(void)sig;
	fail_msg("jv_parse_file blocked on a FIFO");
}

static void test_fifo_refused_without_blocking(void **state)
{
	char *dir = tmpdir_new("jsonv"), path[PATH_MAX], msg[PATH_MAX + 128];
	struct json_object *o = NULL;
	struct verr e = {};

	(void)state;
	snprintf(path, sizeof(path), "%s/fifo.json", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	signal(SIGALRM, on_alarm);
	alarm(5);
	assert_int_equal(jv_parse_file(path, &o, &e), -EINVAL);
	alarm(0);
	assert_null(o);
	snprintf(msg, sizeof(msg), "%s: not a regular file of at most %u bytes", path, JV_FILE_MAX);
	assert_verr_one(&e, msg, "fifo");
	verr_free(&e);
	assert_int_equal(tmpdir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duplicate_keys_refused_where_they_stand),
		cmocka_unit_test(test_no_false_duplicates),
		cmocka_unit_test(test_fifo_refused_without_blocking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
