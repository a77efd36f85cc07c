/* Replacing a small file whole (upgrade/io.h): qu_replace_file, the journal's way (no fsync),
 * and qu_write_file_atomic, the durable one, give readers the old or the new contents only. */
#include "tests/unit/unit.h"
#include "upgrade/io.h"

static char dir[] = "/tmp/qu-test-io.XXXXXX";

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/f", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

static void check_contents(const char *path, const char *want)
{
	char *text = NULL, tmp[128];
	assert_int_equal(qu_read_file(path, &text, NULL), 0);
	assert_string_equal(text, want);
	free(text);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1); /* nothing left beside it */
}

static void replace_makes_and_replaces(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(qu_replace_file(path, "one\n", 4), 0);
	check_contents(path, "one\n");
	struct stat a, b;
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(qu_replace_file(path, "two, longer\n", 12), 0);
	check_contents(path, "two, longer\n");
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino != b.st_ino); /* a new file renamed over, never rewritten in place */
	assert_int_equal(b.st_mode & 0777, 0600);
	assert_int_equal(qu_write_file_atomic(path, "three\n", 6), 0);
	check_contents(path, "three\n");
}

static void replace_never_writes_through_a_link(void **state)
{
	/* A PATH.tmp someone left as a link is removed, not followed. */
	char path[128], tmp[136], target[128];
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(target, sizeof(target), "%s/target", dir);
	assert_int_equal(symlink(target, tmp), 0);
	assert_int_equal(qu_replace_file(path, "four\n", 5), 0);
	check_contents(path, "four\n");
	assert_int_equal(access(target, F_OK), -1);
}

static void replace_fails_cleanly(void **state)
{
	assert_int_equal(qu_replace_file("/nonexistent-dir-qu/f", "x", 1), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(replace_makes_and_replaces),
		cmocka_unit_test(replace_never_writes_through_a_link),
		cmocka_unit_test(replace_fails_cleanly),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
