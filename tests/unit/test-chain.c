/* The facts both hosts give about a backing file for --copy-storage-inc (remote/blk/chain.c):
 * a sparse copy and a full one of the same bytes agree, a byte or a size apart do not, the
 * format comes from the header, and the file is read as the VM's user without following a
 * link that user could have made. Runs as root; "the user" is nobody. */
#include "unit.h"
#include "remote/blk/chain.h"

#define USER 65534

struct fx {
	char top[64];
	char path[512];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->top, sizeof(f->top), "/tmp/qu-chain.XXXXXX");
	assert_non_null(mkdtemp(f->top));
	assert_int_equal(chmod(f->top, 0755), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->top);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static const char *at(struct fx *f, const char *rel)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->top, rel);
	return f->path;
}

/* A file of size bytes, zero but for `len` bytes of `fill` at off; sparse: the zeros are holes. */
static void make(const char *path, off_t size, off_t off, int fill, size_t len, int sparse)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	if (!sparse) {
		char *zero = calloc(1, 1 << 20);
		for (off_t o = 0; o < size; o += 1 << 20)
			assert_true(pwrite(fd, zero, (size_t)(size - o < (1 << 20) ? size - o : (1 << 20)), o) > 0);
		free(zero);
	}
	char *b = malloc(len);
	memset(b, fill, len);
	assert_int_equal(pwrite(fd, b, len, off), (ssize_t)len);
	free(b);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static const struct qu_ident root = { .uid = 0, .gid = 0, .umask = 077 };
static const struct qu_ident nobody = { .uid = USER, .gid = USER, .umask = 077 };

static void sparse_and_full_copies_agree(void **state)
{
	struct fx *f = *state;
	struct qu_file_fact a, b;
	char why[256];
	make(at(f, "sparse"), 8 << 20, 3 << 20, 0x5a, 100000, 1);
	assert_int_equal(qu_chain_fact(&root, at(f, "sparse"), &a), 0);
	make(at(f, "full"), 8 << 20, 3 << 20, 0x5a, 100000, 0);
	assert_int_equal(qu_chain_fact(&root, at(f, "full"), &b), 0);
	assert_int_equal(a.size, 8 << 20);
	assert_string_equal(a.format, "raw");
	assert_string_equal(a.sum, b.sum);
	qu_chain_compare(&a, &b, why, sizeof(why));
	assert_string_equal(why, "");
}

static void a_byte_apart_differs(void **state)
{
	struct fx *f = *state;
	struct qu_file_fact a, b;
	char why[256];
	make(at(f, "a"), 8 << 20, 3 << 20, 0x5a, 100000, 1);
	make(at(f, "b"), 8 << 20, 3 << 20, 0x5a, 100001, 1);
	assert_int_equal(qu_chain_fact(&root, at(f, "a"), &a), 0);
	assert_int_equal(qu_chain_fact(&root, at(f, "b"), &b), 0);
	qu_chain_compare(&a, &b, why, sizeof(why));
	assert_non_null(strstr(why, "same size (8388608 bytes), other content"));
	make(at(f, "b"), 9 << 20, 3 << 20, 0x5a, 100000, 1);
	assert_int_equal(qu_chain_fact(&root, at(f, "b"), &b), 0);
	qu_chain_compare(&a, &b, why, sizeof(why));
	assert_string_equal(why, "8388608 bytes here, 9437184 there");
}

static void format_from_the_header(void **state)
{
	struct fx *f = *state;
	struct qu_file_fact a, b;
	char why[256];
	make(at(f, "q"), 1 << 20, 0, 0, 1, 1);
	int fd = open(at(f, "q"), O_WRONLY);
	assert_int_equal(pwrite(fd, "QFI\xfb", 4, 0), 4);
	close(fd);
	assert_int_equal(qu_chain_fact(&root, at(f, "q"), &a), 0);
	assert_string_equal(a.format, "qcow2");
	make(at(f, "r"), 1 << 20, 0, 0, 1, 1);
	assert_int_equal(qu_chain_fact(&root, at(f, "r"), &b), 0);
	qu_chain_compare(&a, &b, why, sizeof(why));
	assert_string_equal(why, "format qcow2 here, raw there");
}

static void read_as_the_user_without_links(void **state)
{
	struct fx *f = *state;
	struct qu_file_fact a;
	char dir[512];
	make(at(f, "secret"), 4096, 0, 1, 10, 1);
	assert_int_equal(chmod(f->path, 0600), 0);
	/* root may read it, nobody may not */
	assert_int_equal(qu_chain_fact(&root, at(f, "secret"), &a), 0);
	assert_int_equal(qu_chain_fact(&nobody, at(f, "secret"), &a), -EACCES);
	assert_non_null(strstr(qu_err_msg(), "secret"));
	/* a link in the user's directory is not followed, even to a file the user may read */
	snprintf(dir, sizeof(dir), "%s", at(f, "user"));
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chown(dir, USER, USER), 0);
	make(at(f, "public"), 4096, 0, 1, 10, 1);
	char target[512];
	snprintf(target, sizeof(target), "%s", at(f, "public"));
	assert_int_equal(symlink(target, at(f, "user/base.raw")), 0);
	assert_true(qu_chain_fact(&nobody, at(f, "user/base.raw"), &a) < 0);
	note("a link in the user's directory: %s", qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "user/base.raw"));
	/* the same file by its own path is read */
	assert_int_equal(qu_chain_fact(&nobody, target, &a), 0);
	assert_int_equal(qu_chain_fact(&nobody, at(f, "nothere"), &a), -ENOENT);
}

static void identity_notices_a_change(void **state)
{
	struct fx *f = *state;
	struct qu_file_fact a, b;
	make(at(f, "base"), 1 << 20, 0, 7, 4096, 1);
	assert_int_equal(qu_chain_fact(&root, at(f, "base"), &a), 0);
	assert_int_equal(qu_chain_stat(&root, at(f, "base"), &b), 0);
	assert_true(a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns);
	struct timespec later[2] = { { 0, UTIME_OMIT }, { a.mtime_ns / 1000000000LL + 5, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, at(f, "base"), later, 0), 0);
	assert_int_equal(qu_chain_stat(&root, at(f, "base"), &b), 0);
	assert_true(b.mtime_ns != a.mtime_ns);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(sparse_and_full_copies_agree),
		T(a_byte_apart_differs),
		T(format_from_the_header),
		T(read_as_the_user_without_links),
		T(identity_notices_a_change),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
