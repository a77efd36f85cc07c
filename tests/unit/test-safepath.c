/* Whether anyone but root could have changed what a path leads to (upgrade/safepath.c): links
 * are followed only where nobody but root could have made them, and the walk says which
 * directory is not root's alone. Runs as root (as the tool does); "the user" is nobody. */
#include "unit.h"
#include "upgrade/safepath.h"


#define USER 65534

struct fx {
	char top[64];      /* root's 0755 directory */
	char path[512];
};

static void mk(const char *dir, const char *name, mode_t mode, uid_t owner)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(mkdir(p, mode), 0);
	assert_int_equal(chmod(p, mode), 0);
	assert_int_equal(chown(p, owner, owner), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->top, sizeof(f->top), "/tmp/qu-safepath.XXXXXX");
	assert_non_null(mkdtemp(f->top));
	assert_int_equal(chmod(f->top, 0755), 0);
	mk(f->top, "root", 0755, 0);          /* root's: links here are followed */
	mk(f->top, "user", 0755, USER);       /* the user's: links here are refused */
	mk(f->top, "shared", 0777, 0);        /* root's but writable by all */
	mk(f->top, "sticky", 01777, 0);       /* like /tmp */
	mk(f->top, "root/target", 0755, 0);
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

static void plain_path_opens_its_directory(void **state)
{
	struct fx *f = *state;
	struct qu_safe_dir d;
	assert_int_equal(qu_safe_open_dir(at(f, "user/vm.pid"), (uid_t)-1, 0, &d), 0);
	assert_string_equal(d.name, "vm.pid");
	assert_false(d.trusted); /* the user's directory */
	struct stat a, b;
	assert_int_equal(fstat(d.fd, &a), 0);
	assert_int_equal(stat(at(f, "user"), &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	qu_safe_close(&d);
	assert_int_equal(qu_safe_open_dir(at(f, "root/x"), (uid_t)-1, 0, &d), 0);
	assert_true(d.trusted);
	qu_safe_close(&d);
	/* A sticky directory keeps root's entries root's; a directory anyone writes does not. */
	assert_int_equal(qu_safe_open_dir(at(f, "sticky/x"), (uid_t)-1, 0, &d), 0);
	assert_true(d.trusted);
	assert_true(d.sticky);
	qu_safe_close(&d);
	assert_int_equal(qu_safe_open_dir(at(f, "shared/x"), (uid_t)-1, 0, &d), 0);
	assert_false(d.trusted);
	qu_safe_close(&d);
}

static void link_in_root_directory_is_followed(void **state)
{
	struct fx *f = *state;
	struct qu_safe_dir d;
	char target[512];
	snprintf(target, sizeof(target), "%s/root/target", f->top);
	assert_int_equal(symlink(target, at(f, "root/link")), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "root/link/f"), (uid_t)-1, 0, &d), 0);
	struct stat a, b;
	assert_int_equal(fstat(d.fd, &a), 0);
	assert_int_equal(stat(target, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	qu_safe_close(&d);
	/* Relative links too. */
	assert_int_equal(symlink("target", at(f, "root/rel")), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "root/rel/f"), (uid_t)-1, 0, &d), 0);
	assert_int_equal(fstat(d.fd, &a), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	qu_safe_close(&d);
}

static void link_in_user_directory_is_refused(void **state)
{
	struct fx *f = *state;
	struct qu_safe_dir d;
	char target[512];
	snprintf(target, sizeof(target), "%s/root/target", f->top);
	/* The attack: the user turns a directory of the VM's into a link to root's. */
	assert_int_equal(symlink(target, at(f, "user/vmdir")), 0);
	assert_int_equal(lchown(at(f, "user/vmdir"), USER, USER), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "user/vmdir/vm.pid"), (uid_t)-1, 0, &d), -ELOOP);
	assert_non_null(strstr(qu_err_msg(), "'vmdir'"));
	assert_non_null(strstr(qu_err_msg(), "uid 65534 owns"));
	assert_int_equal(d.fd, -1);
	/* Even a link root made there: the user may replace it. */
	assert_int_equal(symlink(target, at(f, "user/rootlink")), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "user/rootlink/x"), (uid_t)-1, 0, &d), -ELOOP);
	/* In a directory anyone writes, also. */
	assert_int_equal(symlink(target, at(f, "shared/l")), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "shared/l/x"), (uid_t)-1, 0, &d), -ELOOP);
	assert_non_null(strstr(qu_err_msg(), "others can write"));
	/* In a sticky one, only a link root owns. */
	assert_int_equal(symlink(target, at(f, "sticky/theirs")), 0);
	assert_int_equal(lchown(at(f, "sticky/theirs"), USER, USER), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "sticky/theirs/x"), (uid_t)-1, 0, &d), -ELOOP);
	assert_non_null(strstr(qu_err_msg(), "made by uid 65534"));
	assert_int_equal(symlink(target, at(f, "sticky/roots")), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "sticky/roots/x"), (uid_t)-1, 0, &d), 0);
	qu_safe_close(&d);
}

static void allowed_user_links_are_followed(void **state)
{
	struct fx *f = *state;
	struct qu_safe_dir d;
	/* For a program of the VM's own user: the user's links lead where the user could go. */
	mk(f->top, "user/bin", 0755, USER);
	assert_int_equal(symlink("bin", at(f, "user/l")), 0);
	assert_int_equal(lchown(at(f, "user/l"), USER, USER), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "user/l/qemu"), USER, 0, &d), 0);
	assert_true(d.trusted);
	qu_safe_close(&d);
}

static void follow_last_resolves_a_program_link(void **state)
{
	struct fx *f = *state;
	struct qu_safe_dir d;
	int fd = open(at(f, "root/target/prog"), O_CREAT | O_WRONLY, 0755);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink("target/prog", at(f, "root/prog")), 0);
	assert_int_equal(qu_safe_open_dir(at(f, "root/prog"), (uid_t)-1, 1, &d), 0);
	assert_string_equal(d.name, "prog");
	int p = qu_safe_open(&d, O_PATH);
	assert_true(p >= 0);
	struct stat a, b;
	assert_int_equal(fstat(p, &a), 0);
	assert_int_equal(stat(at(f, "root/target/prog"), &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	close(p);
	qu_safe_close(&d);
	/* Without follow_last, the link itself is the name, and opening it refuses it. */
	assert_int_equal(qu_safe_open_dir(at(f, "root/prog"), (uid_t)-1, 0, &d), 0);
	assert_int_equal(qu_safe_open(&d, O_RDONLY), -ELOOP);
	qu_safe_close(&d);
}

static void dotdot_and_relative_are_refused(void **state)
{
	struct fx *f = *state;
	struct qu_safe_dir d;
	assert_int_equal(qu_safe_open_dir(at(f, "user/../root/x"), (uid_t)-1, 0, &d), -EINVAL);
	assert_int_equal(qu_safe_open_dir("relative/x", (uid_t)-1, 0, &d), -EINVAL);
	assert_int_equal(qu_safe_open_dir(at(f, "user/"), (uid_t)-1, 0, &d), -EISDIR);
	assert_int_equal(qu_safe_open_dir(at(f, "nothere/x"), (uid_t)-1, 0, &d), -ENOENT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(plain_path_opens_its_directory),
		T(link_in_root_directory_is_followed),
		T(link_in_user_directory_is_refused),
		T(allowed_user_links_are_followed),
		T(follow_last_resolves_a_program_link),
		T(dotdot_and_relative_are_refused),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
