/* upgrade/pageflip/ram.c: the unlinked file QEMU makes in a mem-path directory, as
 * /proc/PID/maps names it, and the default huge page size from /proc/meminfo. */
#include "unit.h"
#include "upgrade/pageflip/ram.h"

static void dir_file_is_found(void **state)
{
	(void)state;
	assert_true(qu_ram_dir_file("/dev/hugepages/qemu_back_mem.mem0.Ab3dEf (deleted)", "/dev/hugepages", "mem0"));
	/* A trailing slash in mem-path, as Proxmox may write it. */
	assert_true(qu_ram_dir_file("/dev/hugepages/qemu_back_mem.mem0.Ab3dEf (deleted)", "/dev/hugepages/", "mem0"));
	/* QEMU turns '/' in the block's name into '_'. */
	assert_true(qu_ram_dir_file("/h/qemu_back_mem._objects_ram.xyzXYZ (deleted)", "/h", "/objects/ram"));
}

static void other_files_are_not(void **state)
{
	(void)state;
	/* Another backend in the same directory. */
	assert_false(qu_ram_dir_file("/h/qemu_back_mem.mem1.Ab3dEf (deleted)", "/h", "mem0"));
	assert_false(qu_ram_dir_file("/h/qemu_back_mem.mem00.Ab3dE (deleted)", "/h", "mem0"));
	/* Not unlinked: somebody's file of that name, not QEMU's. */
	assert_false(qu_ram_dir_file("/h/qemu_back_mem.mem0.Ab3dEf", "/h", "mem0"));
	/* A subdirectory, or a directory whose name only starts the same. */
	assert_false(qu_ram_dir_file("/h/x/qemu_back_mem.mem0.Ab3dEf (deleted)", "/h", "mem0"));
	assert_false(qu_ram_dir_file("/hh/qemu_back_mem.mem0.Ab3dEf (deleted)", "/h", "mem0"));
	assert_false(qu_ram_dir_file("/h/qemu_back_mem.mem0.Ab/dEf (deleted)", "/h", "mem0"));
	assert_false(qu_ram_dir_file("/h", "/h", "mem0"));
}

static void default_hugepage(void **state)
{
	(void)state;
	assert_int_equal(qu_ram_default_hugepage("MemTotal: 1 kB\nHugepagesize:       2048 kB\nHugetlb: 0 kB\n"),
			 2 << 20);
	assert_int_equal(qu_ram_default_hugepage("MemTotal: 1 kB\nHugepagesize:    1048576 kB\n"), 1 << 30);
	assert_int_equal(qu_ram_default_hugepage("MemTotal: 1 kB\n"), 0);
	assert_int_equal(qu_ram_default_hugepage("MemTotal: 1 kB\nHugepagesize: many\n"), 0);
	assert_int_equal(qu_ram_default_hugepage(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dir_file_is_found),
		cmocka_unit_test(other_files_are_not),
		cmocka_unit_test(default_hugepage),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
