/* QEMU command lines as option lists (qemu-integration/argv.h). */
#include "tests/unit/unit.h"
#include "qemu-integration/argv.h"

/* sizeof of a string literal with embedded NULs, minus the literal's own final NUL. */
#define CMDLINE(lit) (lit), (sizeof(lit) - 1)

static void assert_arg(const struct qu_argv *v, size_t i, const char *opt, const char *val)
{
	assert_true(i < v->n);
	if (opt)
		assert_string_equal(v->a[i].opt, opt);
	else
		assert_null(v->a[i].opt);
	if (val)
		assert_string_equal(v->a[i].val, val);
	else
		assert_null(v->a[i].val);
}

static void cmdline_basic(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("/usr/bin/qemu-system-x86_64\0-name\0vm1\0-m\0"
						      "1G\0-machine\0q35,accel=kvm\0"), &v), 0);
	assert_string_equal(v.prog, "/usr/bin/qemu-system-x86_64");
	assert_int_equal(v.n, 3);
	assert_arg(&v, 0, "name", "vm1");
	assert_arg(&v, 1, "m", "1G");
	assert_arg(&v, 2, "machine", "q35,accel=kvm");
	qu_argv_free(&v);
}

static void flags_take_no_argument(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-S\0-nodefaults\0-daemonize\0--enable-kvm\0"
						      "-no-shutdown\0-m\0" "512\0"), &v), 0);
	assert_int_equal(v.n, 6);
	assert_arg(&v, 0, "S", NULL);
	assert_arg(&v, 1, "nodefaults", NULL);
	assert_arg(&v, 2, "daemonize", NULL);
	assert_arg(&v, 3, "enable-kvm", NULL);
	assert_arg(&v, 4, "no-shutdown", NULL);
	assert_arg(&v, 5, "m", "512");
	qu_argv_free(&v);
}

static void flag_at_end(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-m\0" "512\0-S\0"), &v), 0);
	assert_int_equal(v.n, 2);
	assert_arg(&v, 1, "S", NULL);
	qu_argv_free(&v);
}

static void double_dash_option_with_argument(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0--machine\0q35\0--m\0" "1G\0"), &v), 0);
	assert_int_equal(v.n, 2);
	assert_arg(&v, 0, "machine", "q35");
	assert_arg(&v, 1, "m", "1G");
	qu_argv_free(&v);
}

static void is_flag_list(void **state)
{
	const char *flags[] = { "S", "nodefaults", "daemonize", "enable-kvm", "no-user-config",
				"nographic", "snapshot", "no-reboot", "no-shutdown", "only-migratable",
				"preconfig" };
	const char *with_arg[] = { "m", "machine", "M", "object", "chardev", "mon", "qmp", "incoming",
				   "pidfile", "name", "smp", "cpu", "drive", "device", "netdev", "" };
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		assert_true(qu_qemu_opt_is_flag(flags[i]));
	for (size_t i = 0; i < sizeof(with_arg) / sizeof(with_arg[0]); i++)
		assert_false(qu_qemu_opt_is_flag(with_arg[i]));
}

static void positional_arguments(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0disk.img\0-m\0" "1G\0-\0other.img\0"), &v), 0);
	assert_int_equal(v.n, 4);
	assert_arg(&v, 0, NULL, "disk.img");
	assert_arg(&v, 1, "m", "1G");
	assert_arg(&v, 2, NULL, "-"); /* a lone dash is a word, not an option */
	assert_arg(&v, 3, NULL, "other.img");
	assert_int_equal(qu_argv_find(&v, "m", 0), 1);
	qu_argv_free(&v);
}

static void argument_starting_with_dash(void **state)
{
	struct qu_argv v;
	/* An option that takes an argument takes the next word whatever it looks like. */
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-append\0-v console=ttyS0\0-S\0"), &v), 0);
	assert_int_equal(v.n, 2);
	assert_arg(&v, 0, "append", "-v console=ttyS0");
	assert_arg(&v, 1, "S", NULL);
	qu_argv_free(&v);
}

static void empty_argument_word(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-append\0\0-S\0"), &v), 0);
	assert_int_equal(v.n, 2);
	assert_arg(&v, 0, "append", "");
	assert_arg(&v, 1, "S", NULL);
	qu_argv_free(&v);
}

static void missing_argument_at_end(void **state)
{
	struct qu_argv v;
	memset(&v, 0x5a, sizeof(v));
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-S\0-m\0"), &v), -EINVAL);
	/* Nothing is left allocated: the struct is cleared (and ASan checks the leak). */
	assert_null(v.prog);
	assert_null(v.a);
	assert_int_equal(v.n, 0);
}

static void missing_argument_line_cut_short(void **state)
{
	struct qu_argv v;
	/* No final NUL: the kernel cut the line; the last word still counts. */
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-S\0-machine"), &v), -EINVAL);
}

static void cut_short_last_word_counts(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-name\0vm"), &v), 0);
	assert_int_equal(v.n, 1);
	assert_arg(&v, 0, "name", "vm");
	qu_argv_free(&v);
}

static void empty_cmdline_rejected(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline("", 0, &v), -EINVAL);
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("\0"), &v), -EINVAL); /* empty program name */
	assert_int_equal(qu_argv_from_array(0, (char *const[]){ NULL }, &v), -EINVAL);
}

static void program_only(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0"), &v), 0);
	assert_string_equal(v.prog, "qemu");
	assert_int_equal(v.n, 0);
	char **f = qu_argv_flatten(&v);
	assert_non_null(f);
	assert_string_equal(f[0], "qemu");
	assert_null(f[1]);
	qu_strv_free(f);
	qu_argv_free(&v);
}

static void flatten_round_trip(void **state)
{
	static const char line[] = "/usr/bin/qemu-system-x86_64\0-S\0-name\0guest=vm1\0-machine\0"
				   "q35,accel=kvm\0-nodefaults\0disk.img\0-object\0"
				   "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"mem0\"}\0-append\0\0";
	struct qu_argv v, w;
	assert_int_equal(qu_argv_from_cmdline(line, sizeof(line) - 1, &v), 0);
	char **f = qu_argv_flatten(&v);
	assert_non_null(f);
	/* The words come back exactly, NUL-separated as in /proc. */
	size_t off = 0, k = 0;
	for (; f[k]; k++) {
		assert_true(off < sizeof(line) - 1);
		assert_string_equal(f[k], line + off);
		off += strlen(line + off) + 1;
	}
	assert_int_equal(off, sizeof(line) - 1);
	assert_int_equal(qu_argv_from_array((int)k, f, &w), 0);
	assert_string_equal(w.prog, v.prog);
	assert_int_equal(w.n, v.n);
	for (size_t i = 0; i < v.n; i++)
		assert_arg(&w, i, v.a[i].opt, v.a[i].val);
	qu_strv_free(f);
	qu_argv_free(&w);
	qu_argv_free(&v);
}

static void flatten_writes_one_dash(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0--enable-kvm\0--m\0" "1G\0"), &v), 0);
	char **f = qu_argv_flatten(&v);
	assert_non_null(f);
	assert_string_equal(f[1], "-enable-kvm");
	assert_string_equal(f[2], "-m");
	assert_string_equal(f[3], "1G");
	assert_null(f[4]);
	qu_strv_free(f);
	qu_argv_free(&v);
}

static void find_options(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-chardev\0a\0-m\0" "1G\0chardev\0-chardev\0b\0"), &v), 0);
	assert_int_equal(qu_argv_find(&v, "chardev", 0), 0);
	assert_int_equal(qu_argv_find(&v, "chardev", 1), 3); /* the positional "chardev" is skipped */
	assert_int_equal(qu_argv_find(&v, "chardev", 4), -1);
	assert_int_equal(qu_argv_find(&v, "m", 0), 1);
	assert_int_equal(qu_argv_find(&v, "nope", 0), -1);
	assert_int_equal(qu_argv_find(&v, "chardev", 100), -1);
	qu_argv_free(&v);
}

static void set_option(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-M\0q35\0-S\0"), &v), 0);
	assert_int_equal(qu_argv_set(&v, 0, "machine", "pc-q35-7.2"), 0);
	assert_arg(&v, 0, "machine", "pc-q35-7.2");
	assert_int_equal(qu_argv_set(&v, 1, NULL, "disk.img"), 0);
	assert_arg(&v, 1, NULL, "disk.img");
	assert_int_equal(qu_argv_set(&v, 1, "nodefaults", NULL), 0);
	assert_arg(&v, 1, "nodefaults", NULL);
	assert_int_equal(v.n, 2);
	qu_argv_free(&v);
}

static void remove_options(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0-a\0" "1\0-b\0" "2\0-S\0-c\0" "3\0-d\0" "4\0"), &v), 0);
	assert_int_equal(v.n, 5);
	qu_argv_remove(&v, 2); /* middle */
	assert_int_equal(v.n, 4);
	assert_arg(&v, 1, "b", "2");
	assert_arg(&v, 2, "c", "3");
	qu_argv_remove(&v, 0); /* first */
	assert_arg(&v, 0, "b", "2");
	qu_argv_remove(&v, 2); /* last */
	assert_int_equal(v.n, 2);
	assert_arg(&v, 0, "b", "2");
	assert_arg(&v, 1, "c", "3");
	qu_argv_remove(&v, 0);
	qu_argv_remove(&v, 0);
	assert_int_equal(v.n, 0);
	assert_int_equal(qu_argv_find(&v, "c", 0), -1);
	qu_argv_free(&v);
}

static void add_options(void **state)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(CMDLINE("qemu\0"), &v), 0);
	assert_int_equal(qu_argv_add(&v, "incoming", "defer"), 0);
	assert_int_equal(qu_argv_add(&v, "S", NULL), 0);
	assert_int_equal(qu_argv_add(&v, NULL, "disk.img"), 0);
	char **f = qu_argv_flatten(&v);
	assert_non_null(f);
	const char *want[] = { "qemu", "-incoming", "defer", "-S", "disk.img", NULL };
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(f[i], want[i]);
	assert_null(f[5]);
	qu_strv_free(f);
	qu_argv_free(&v);
}

static void from_array(void **state)
{
	char *argv[] = { "qemu", "-S", "-m", "1G", "x", NULL };
	struct qu_argv v;
	assert_int_equal(qu_argv_from_array(5, argv, &v), 0);
	assert_int_equal(v.n, 3);
	assert_arg(&v, 0, "S", NULL);
	assert_arg(&v, 1, "m", "1G");
	assert_arg(&v, 2, NULL, "x");
	qu_argv_free(&v);
	assert_int_equal(qu_argv_from_array(3, argv, &v), -EINVAL); /* "-m" without "1G" */
}

static void own_cmdline(void **state)
{
	/* The real thing: this test program's own /proc/self/cmdline. */
	char buf[4096];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_true(n > 0);
	struct qu_argv v;
	assert_int_equal(qu_argv_from_cmdline(buf, (size_t)n, &v), 0);
	assert_string_equal(v.prog, buf);
	qu_argv_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cmdline_basic),
		cmocka_unit_test(flags_take_no_argument),
		cmocka_unit_test(flag_at_end),
		cmocka_unit_test(double_dash_option_with_argument),
		cmocka_unit_test(is_flag_list),
		cmocka_unit_test(positional_arguments),
		cmocka_unit_test(argument_starting_with_dash),
		cmocka_unit_test(empty_argument_word),
		cmocka_unit_test(missing_argument_at_end),
		cmocka_unit_test(missing_argument_line_cut_short),
		cmocka_unit_test(cut_short_last_word_counts),
		cmocka_unit_test(empty_cmdline_rejected),
		cmocka_unit_test(program_only),
		cmocka_unit_test(flatten_round_trip),
		cmocka_unit_test(flatten_writes_one_dash),
		cmocka_unit_test(find_options),
		cmocka_unit_test(set_option),
		cmocka_unit_test(remove_options),
		cmocka_unit_test(add_options),
		cmocka_unit_test(from_array),
		cmocka_unit_test(own_cmdline),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
