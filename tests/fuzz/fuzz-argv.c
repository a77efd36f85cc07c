/* /proc/PID/cmdline of the old QEMU (qemu-integration/argv.c): qu_argv_from_cmdline, then
 * qu_argv_flatten, which must give back a command line that parses to the same options.
 * Input: the cmdline bytes (NUL-separated words). */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/argv.h"

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Flattening writes "-" + name: an option whose name is empty or starts with '-' ("--" or
 * "---x" on the old command line, which QEMU refuses) reads back as something else. */
static int flattens_faithfully(const struct qu_argv *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->a[i].opt && (!v->a[i].opt[0] || v->a[i].opt[0] == '-'))
			return 0;
	return 1;
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qu_argv v, w;
	int r = qu_argv_from_cmdline((const char *)data, size, &v);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL); /* v is undefined: an empty line is refused before it is set */
		return 0;
	}
	FUZZ_CHECK(v.prog && v.prog[0]);
	for (size_t i = 0; i < v.n; i++) {
		FUZZ_CHECK(v.a[i].opt || v.a[i].val);
		if (v.a[i].opt && qu_qemu_opt_is_flag(v.a[i].opt))
			FUZZ_CHECK(!v.a[i].val);
	}
	char **flat = qu_argv_flatten(&v);
	FUZZ_CHECK(flat);
	int n = 0;
	while (flat[n])
		n++;
	FUZZ_CHECK(!strcmp(flat[0], v.prog));
	if (flattens_faithfully(&v)) {
		FUZZ_CHECK(qu_argv_from_array(n, flat, &w) == 0);
		FUZZ_CHECK(!strcmp(w.prog, v.prog) && w.n == v.n);
		for (size_t i = 0; i < v.n; i++)
			FUZZ_CHECK(same(v.a[i].opt, w.a[i].opt) && same(v.a[i].val, w.a[i].val));
		qu_argv_free(&w);
	}
	qu_strv_free(flat);

	/* What the rewriter does: find, change, drop, add. */
	long i = qu_argv_find(&v, "machine", 0);
	if (i >= 0)
		FUZZ_CHECK(qu_argv_set(&v, (size_t)i, "machine", "q35") == 0);
	if ((i = qu_argv_find(&v, "S", 0)) >= 0)
		qu_argv_remove(&v, (size_t)i);
	FUZZ_CHECK(qu_argv_add(&v, "incoming", "defer") == 0);
	FUZZ_CHECK(qu_argv_find(&v, "incoming", 0) >= 0);
	qu_argv_free(&v);
	return 0;
}
