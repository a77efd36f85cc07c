/* The table of descriptor kinds (upgrade/fdpass/kinds.c) against the other places a kind
 * matters: the agent re-creates exactly the kinds the table lets go to another host, every
 * kind of the stream has an entry, and a converted RAM block is taken as a fresh memfd of its
 * size. */
#include "unit.h"
#include "remote/recreate.h"
#include "upgrade/fdpass/kinds.h"

#include <sys/stat.h>

#define LAST_KIND QU_FD_PIDFILE

static void every_kind_has_an_entry(void **state)
{
	(void)state;
	for (unsigned k = QU_FD_STDIO; k <= LAST_KIND; k++) {
		const struct qu_fd_kind_ops *ops = qu_fd_kind(k);
		if (!ops)
			fail_msg("kind %u has no entry", k);
		assert_string_not_equal(qu_fd_kind_name(k), "?");
	}
	assert_null(qu_fd_kind(0));
	assert_null(qu_fd_kind(LAST_KIND + 1));
	assert_string_equal(qu_fd_kind_name(LAST_KIND + 1), "?");
}

/* A kind goes to another host when it is carried (not made at launch), installed in the new
 * QEMU, and the table gives no reason against it: then, and only then, the agent must know
 * how to make it. */
static void agent_recreates_what_may_go(void **state)
{
	(void)state;
	int wrong = 0;
	for (unsigned k = QU_FD_STDIO; k <= LAST_KIND + 2; k++) {
		const struct qu_fd_kind_ops *ops = qu_fd_kind(k);
		int may_go = ops && !ops->made_at_launch && ops->use == QU_FD_USE_INSTALL && !ops->not_remote;
		if (may_go != qu_recreate_knows(k)) {
			note("kind %u (%s): the table says %s, the agent %s", k, qu_fd_kind_name(k),
			     may_go ? "it may go" : "it may not", qu_recreate_knows(k) ? "re-creates it" : "cannot");
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
}

static void converted_ram_is_a_fresh_memfd(void **state)
{
	(void)state;
	struct qu_carried c = { .old_fd = -1, .target = 5, .kind = QU_FD_RAM, .name = "ram0", .size = 2 << 20 };
	struct qu_take_from from = { .pid = getpid(), .pidfd = -1 };
	int fd = qu_fd_take(&c, &from);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 2 << 20);
	assert_int_equal(from.relay_go, -1);
	close(fd);
}

static void unknown_kind_is_refused(void **state)
{
	(void)state;
	struct qu_carried c = { .old_fd = 0, .kind = 99, .name = "mystery" };
	struct qu_take_from from = { .pid = getpid(), .pidfd = -1 };
	assert_int_equal(qu_fd_take(&c, &from), -EINVAL);
	assert_non_null(strstr(qu_err_msg(), "mystery"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_kind_has_an_entry),
		cmocka_unit_test(agent_recreates_what_may_go),
		cmocka_unit_test(converted_ram_is_a_fresh_memfd),
		cmocka_unit_test(unknown_kind_is_refused),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
