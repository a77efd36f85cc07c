/* The descriptor table read once from /proc/PID/fd (upgrade/fdpass/fdtable.h), on this
 * process's own descriptors: links, lookups by inode and by socket, and one that is closed. */
#include "tests/unit/unit.h"
#include "upgrade/fdpass/fdtable.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

static void finds_memfd_socket_and_link(void **state)
{
	int mfd = memfd_create("fdtable-test", MFD_CLOEXEC), sv[2];
	assert_true(mfd >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct stat mst, sst;
	assert_int_equal(fstat(mfd, &mst), 0);
	assert_int_equal(fstat(sv[1], &sst), 0);
	struct qu_fdtab t;
	assert_int_equal(qu_fdtab_read(getpid(), &t), 0);
	assert_int_equal(qu_fdtab_by_inode(&t, mst.st_dev, mst.st_ino), mfd);
	assert_int_equal(qu_fdtab_by_socket(&t, (unsigned long)sst.st_ino), sv[1]);
	const char *l = qu_fdtab_link(&t, mfd);
	assert_non_null(l);
	assert_non_null(strstr(l, "/memfd:fdtable-test"));
	const struct qu_fdent *e = qu_fdtab_get(&t, sv[0]);
	assert_non_null(e);
	assert_true(S_ISSOCK(e->mode));
	for (size_t i = 1; i < t.n; i++) /* sorted, so lookups can bisect */
		assert_true(t.e[i - 1].fd < t.e[i].fd);
	qu_fdtab_free(&t);
	close(mfd);
	close(sv[0]);
	close(sv[1]);
}

static void closed_descriptor_is_absent(void **state)
{
	/* A high number: the walk's own directory descriptor takes the lowest free one. */
	int low = memfd_create("fdtable-gone", MFD_CLOEXEC), fd = fcntl(low, F_DUPFD_CLOEXEC, 500);
	assert_true(low >= 0 && fd >= 500);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	close(low);
	close(fd);
	struct qu_fdtab t;
	assert_int_equal(qu_fdtab_read(getpid(), &t), 0);
	assert_null(qu_fdtab_get(&t, fd));
	assert_null(qu_fdtab_link(&t, fd));
	assert_int_equal(qu_fdtab_by_inode(&t, st.st_dev, st.st_ino), -ENOENT);
	assert_int_equal(qu_fdtab_by_socket(&t, 1), -ENOENT);
	qu_fdtab_free(&t);
}

static void no_such_process(void **state)
{
	struct qu_fdtab t;
	assert_int_equal(qu_fdtab_read(-1, &t), -ENOENT);
	assert_int_equal(t.n, 0);
	assert_null(qu_fdtab_get(&t, 0));
	qu_fdtab_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(finds_memfd_socket_and_link),
		cmocka_unit_test(closed_descriptor_is_absent),
		cmocka_unit_test(no_such_process),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
