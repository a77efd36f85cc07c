/* One option in either of QEMU's forms (qemu-integration/option.c), and query-fdsets' answer
 * checked before it is believed (qemu-integration/fdsets.c). */
#include "tests/unit/unit.h"
#include "qemu-integration/fdsets.h"
#include "qemu-integration/option.h"

static void expect_get(json_object *o, const char *key, const char *want)
{
	const char *got = qu_option_get(o, key);
	if ((!got) != (!want) || (got && strcmp(got, want)))
		fail_msg("%s: got %s, wanted %s", key, got ? got : "(absent)", want ? want : "(absent)");
}

static void implied_key_per_option(void **state)
{
	static const char *const cases[][4] = {
		{ "netdev", "tap,id=n0", "type", "tap" },
		{ "chardev", "file,id=c", "backend", "file" },
		{ "object", "iothread,id=io", "qom-type", "iothread" },
		{ "device", "virtio-rng-pci,id=r", "driver", "virtio-rng-pci" },
		{ "machine", "q35,usb=off", "type", "q35" },
		{ "add-fd", "set=1,fd=3", "set", "1" },
		{ "drive", "if=none,readonly", "readonly", "on" }, /* no implied key: a bare key is on */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_object *o = qu_option_parse(cases[i][0], cases[i][1]);
		assert_non_null(o);
		expect_get(o, cases[i][2], cases[i][3]);
		json_object_put(o);
	}
}

static void both_forms_read_alike(void **state)
{
	json_object *a = qu_option_parse("device", "vfio-pci,host=01:00.0,x-enable");
	json_object *b = qu_option_parse("device", "{\"driver\":\"vfio-pci\",\"host\":\"01:00.0\",\"x-enable\":\"on\"}");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(json_object_equal(a, b));
	expect_get(a, "driver", "vfio-pci");
	expect_get(b, "driver", "vfio-pci");
	json_object_put(a);
	json_object_put(b);
}

static void json_only_where_qemu_takes_it(void **state)
{
	assert_true(qu_option_is_json("netdev", "{\"type\":\"tap\"}"));
	assert_true(qu_option_is_json("blockdev", "{}"));
	assert_false(qu_option_is_json("chardev", "{\"backend\":\"pty\"}"));
	assert_false(qu_option_is_json("machine", "{\"type\":\"q35\"}"));
	assert_false(qu_option_is_json("device", " {\"driver\":\"x\"}"));
	/* -chardev {...}: key=value, so the last backend= is the backend. */
	json_object *o = qu_option_parse("chardev", "{\"backend\":\"null\"},backend=pty");
	expect_get(o, "backend", "pty");
	json_object_put(o);
}

static void json_strict(void **state)
{
	assert_null(qu_option_parse("object", "{\"id\":\"a\"}x"));
	assert_null(qu_option_parse("object", "{\"id\":\"a\"}{\"id\":\"b\"}"));
	assert_null(qu_option_parse("object", "{\"id\":"));
	json_object *o = qu_option_parse("object", "{\"id\":\"a\",\"size\":5,\"share\":true,\"n\":null} \t\n");
	assert_non_null(o);
	expect_get(o, "size", "5");
	expect_get(o, "share", "true");
	expect_get(o, "n", NULL); /* null is no value */
	assert_true(qu_option_true(o, "share"));
	json_object_put(o);
}

static char *edited(const char *opt, const char *val)
{
	struct qu_option o;
	assert_int_equal(qu_option_open(opt, val, &o), 0);
	assert_int_equal(qu_option_set(&o, "mem-path", "/proc/self/fd/9"), 0);
	assert_int_equal(qu_option_set_bool(&o, "share", 1), 0);
	assert_int_equal(qu_option_set_int(&o, "reconnect", 1), 0);
	qu_option_del(&o, "seal");
	char *text = qu_option_format(&o);
	assert_non_null(text);
	qu_option_close(&o);
	return text;
}

static void edits_keep_the_form(void **state)
{
	char *kv = edited("object", "memory-backend-memfd,id=m,share=off,seal=on");
	assert_string_equal(kv, "memory-backend-memfd,id=m,share=on,mem-path=/proc/self/fd/9,reconnect=1");
	free(kv);
	char *js = edited("object", "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"m\",\"share\":false,\"seal\":true}");
	json_object *got = json_tokener_parse(js), *want = json_tokener_parse(
		"{\"qom-type\":\"memory-backend-memfd\",\"id\":\"m\",\"share\":true,\"mem-path\":\"/proc/self/fd/9\",\"reconnect\":1}");
	assert_true(json_object_equal(got, want));
	json_object_put(got);
	json_object_put(want);
	free(js);
	struct qu_option o;
	assert_int_equal(qu_option_open("object", "{\"id\":", &o), -EINVAL);
	qu_option_close(&o);
}

static void kv_value_stays_one_value(void **state)
{
	struct qu_option o;
	assert_int_equal(qu_option_open("netdev", "tap,id=n0", &o), 0);
	assert_int_equal(qu_option_set(&o, "fd", "5,script=/tmp/x"), 0);
	char *text = qu_option_format(&o);
	assert_string_equal(text, "tap,id=n0,fd=5,,script=/tmp/x");
	free(text);
	qu_option_close(&o);
}

/* ---- query-fdsets ---- */

static struct qu_vm *read_answer(const char *text)
{
	static struct qu_vm vm;
	memset(&vm, 0, sizeof(vm));
	json_object *a = json_tokener_parse(text);
	qu_fdsets_read(a, &vm);
	json_object_put(a);
	return &vm;
}

static void fdsets_members_read(void **state)
{
	struct qu_vm *vm = read_answer("[{\"fdset-id\":0,\"fds\":[{\"fd\":27,\"opaque\":\"serial0-log\"}]},"
				       "{\"fdset-id\":3,\"fds\":[{\"fd\":31},{\"fd\":32,\"opaque\":\"ro\"}]}]");
	assert_int_equal(vm->nfdset_fds, 3);
	assert_false(vm->fdsets_invalid || vm->fdsets_truncated);
	assert_int_equal(vm->fdset_fds[0].set, 0);
	assert_int_equal(vm->fdset_fds[0].old_fd, 27);
	assert_string_equal(vm->fdset_fds[0].opaque, "serial0-log");
	assert_int_equal(vm->fdset_fds[1].set, 3);
	assert_false(vm->fdset_fds[1].has_opaque);
	assert_string_equal(vm->fdset_fds[2].opaque, "ro");
	vm = read_answer("[]");
	assert_int_equal(vm->nfdset_fds, 0);
	assert_false(vm->fdsets_invalid);
}

static void fdsets_hostile_members_refused(void **state)
{
	char longop[200];
	memset(longop, 'a', sizeof(longop) - 1);
	longop[sizeof(longop) - 1] = '\0';
	char big[400];
	snprintf(big, sizeof(big), "[{\"fdset-id\":1,\"fds\":[{\"fd\":5,\"opaque\":\"%s\"}]}]", longop);
	const char *cases[] = {
		"{\"fdset-id\":1}",                                      /* not a list */
		"[{\"fdset-id\":-1,\"fds\":[{\"fd\":5}]}]",               /* negative set */
		"[{\"fdset-id\":65536,\"fds\":[{\"fd\":5}]}]",            /* set out of range */
		"[{\"fdset-id\":9223372036854775807,\"fds\":[{\"fd\":5}]}]",
		"[{\"fdset-id\":\"1\",\"fds\":[{\"fd\":5}]}]",            /* not a number */
		"[{\"fdset-id\":1,\"fds\":[{\"fd\":-3}]}]",               /* negative descriptor */
		"[{\"fdset-id\":1,\"fds\":[{\"fd\":1048576}]}]",          /* descriptor out of range */
		"[{\"fdset-id\":1,\"fds\":[{\"fd\":5.5}]}]",
		"[{\"fdset-id\":1,\"fds\":[{}]}]",                        /* no descriptor */
		"[{\"fdset-id\":1,\"fds\":[{\"fd\":5,\"opaque\":7}]}]",   /* opaque not a string */
		"[{\"fdset-id\":1,\"fds\":[{\"fd\":5,\"opaque\":\"a\\nb\"}]}]", /* a line of its own in logs */
		"[{\"fdset-id\":1,\"fds\":{\"fd\":5}}]",
		big,                                                        /* opaque too long to keep whole */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qu_vm *vm = read_answer(cases[i]);
		if (!vm->fdsets_invalid || vm->nfdset_fds != 0)
			fail_msg("believed: %s", cases[i]);
	}
}

static void fdsets_truncated_past_limit(void **state)
{
	char text[4096] = "[{\"fdset-id\":2,\"fds\":[";
	for (int i = 0; i <= QU_MAX_FDSET_FDS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s{\"fd\":%d}", i ? "," : "", 40 + i);
	strcat(text, "]}]");
	struct qu_vm *vm = read_answer(text);
	assert_int_equal(vm->nfdset_fds, QU_MAX_FDSET_FDS);
	assert_true(vm->fdsets_truncated);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(implied_key_per_option),
		cmocka_unit_test(both_forms_read_alike),
		cmocka_unit_test(json_only_where_qemu_takes_it),
		cmocka_unit_test(json_strict),
		cmocka_unit_test(edits_keep_the_form),
		cmocka_unit_test(kv_value_stays_one_value),
		cmocka_unit_test(fdsets_members_read),
		cmocka_unit_test(fdsets_hostile_members_refused),
		cmocka_unit_test(fdsets_truncated_past_limit),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
