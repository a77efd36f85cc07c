/* QemuOpts strings from the old QEMU's command line (qemu-integration/opts.c): qu_opts_parse
 * and qu_opts_format, whose round trip must hold: parse(format(parse(x))) == parse(x); and
 * get/set/del on what was parsed. Input: one byte choosing the implied key, then the text. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/opts.h"

static const char *const implied[] = { NULL, "type", "backend", "driver" };

static int same_val(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void check_same(const struct qu_opts *a, const struct qu_opts *b)
{
	FUZZ_CHECK(a->n == b->n);
	FUZZ_CHECK(a->implied == b->implied);
	for (size_t i = 0; i < a->n; i++) {
		FUZZ_CHECK(!strcmp(a->v[i].key, b->v[i].key));
		FUZZ_CHECK(same_val(a->v[i].val, b->v[i].val));
	}
}


FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *ik = implied[data[0] % 4];
	char *text = fuzz_strdup(data + 1, size - 1);
	struct qu_opts a, b;
	FUZZ_CHECK(qu_opts_parse(text, ik, &a) == 0);
	FUZZ_CHECK(!a.implied || (ik && a.n >= 1 && !strcmp(a.v[0].key, ik)));
	char *f = qu_opts_format(&a);
	FUZZ_CHECK(f);
	FUZZ_CHECK(qu_opts_parse(f, ik, &b) == 0);
	/* One empty element (the text ",", or "" for the implied key) formats as "", which parses
	 * as nothing; QEMU itself refuses such an option, so the old QEMU never had it. */
	if (f[0])
		check_same(&a, &b);
	char *f2 = qu_opts_format(&b);
	FUZZ_CHECK(f2 && !strcmp(f, f2));
	free(f2);
	free(f);
	qu_opts_free(&b);

	/* What the rewriter does to a QEMU option: read, replace, drop. (The new value has no
	 * '=': an implied value holding one is formatted bare, and reads back as key=value.) */
	if (a.n) {
		const char *key = a.v[a.n - 1].key;
		char *k = strdup(key);
		FUZZ_CHECK(k && qu_opts_get(&a, k));
		qu_opts_get_bool(&a, "server");
		FUZZ_CHECK(qu_opts_set(&a, k, "x,y") == 0);
		FUZZ_CHECK(!strcmp(qu_opts_get(&a, k), "x,y"));
		f = qu_opts_format(&a);
		FUZZ_CHECK(f && qu_opts_parse(f, ik, &b) == 0);
		FUZZ_CHECK(!strcmp(qu_opts_get(&b, k), "x,y"));
		qu_opts_free(&b);
		free(f);
		qu_opts_del(&a, k);
		FUZZ_CHECK(!qu_opts_get(&a, k));
		free(k);
	}
	FUZZ_CHECK(qu_opts_set(&a, "id", NULL) == 0 && !strcmp(qu_opts_get(&a, "id"), "on"));
	qu_opts_free(&a);
	free(text);
	return 0;
}
