/* upgrade/journal.c: what settling an upgrade reads back is what the tool wrote, and a tap
 * queue entry that names no tap or no possible descriptor is dropped on reading (settling it
 * would touch something else). */
#include "tests/unit/unit.h"
#include "upgrade/journal.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/qu-journal-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	setenv("QEMU_UPGRADE_STATE_DIR", dir, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void tap_queues_round_trip(void **state)
{
	(void)state;
	static struct qu_journal j, back;
	memset(&j, 0, sizeof(j));
	j.phase = QU_PH_TARGET_STARTING;
	j.old_pid = 4242;
	j.ntapq = 2;
	j.tapq_old[0] = 13, j.tapq_new[0] = 8;
	j.tapq_old[1] = 15, j.tapq_new[1] = 10;
	snprintf(j.tapq_name[0], IFNAMSIZ, "tap100i0");
	snprintf(j.tapq_name[1], IFNAMSIZ, "tap100i1");
	j.tap_steered = 1;
	assert_int_equal(qu_journal_write(&j), 0);
	char path[160];
	snprintf(path, sizeof(path), "%s/4242.journal", dir);
	assert_int_equal(qu_journal_read(path, &back), 0);
	assert_int_equal(back.ntapq, 2);
	assert_int_equal(back.tapq_old[1], 15);
	assert_int_equal(back.tapq_new[1], 10);
	assert_string_equal(back.tapq_name[0], "tap100i0");
	assert_int_equal(back.tap_steered, 1);
}

static void bad_tap_entries_dropped(void **state)
{
	(void)state;
	char path[160];
	snprintf(path, sizeof(path), "%s/77.journal", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{ \"phase\": \"target-starting\", \"old_pid\": 77, \"tap_queues_attached\": ["
	      "{ \"old_fd\": -1, \"new_fd\": 8, \"tap\": \"tap0\" },"
	      "{ \"old_fd\": 13, \"new_fd\": 4294967304, \"tap\": \"tap0\" },"
	      "{ \"old_fd\": 13, \"new_fd\": 8 },"
	      "{ \"old_fd\": 13, \"new_fd\": 8, \"tap\": \"a-name-far-too-long\" },"
	      "7,"
	      "{ \"old_fd\": 14, \"new_fd\": 9, \"tap\": \"tap0\" } ] }\n", f);
	fclose(f);
	static struct qu_journal j;
	assert_int_equal(qu_journal_read(path, &j), 0);
	assert_int_equal(j.ntapq, 1); /* only the last one */
	assert_int_equal(j.tapq_old[0], 14);
	assert_string_equal(j.tapq_name[0], "tap0");
	assert_int_equal(j.tap_steered, 0);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(tap_queues_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_tap_entries_dropped, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
