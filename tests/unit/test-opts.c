/* QemuOpts strings: parse, query, change and format back (qemu-integration/opts.h). */
#include "tests/unit/unit.h"
#include "qemu-integration/opts.h"

/* Parses text, checks it formats back to expect (NULL: to text itself), frees. */
static void assert_round_trip(const char *text, const char *implied, const char *expect)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse(text, implied, &o), 0);
	char *f = qu_opts_format(&o);
	assert_non_null(f);
	assert_string_equal(f, expect ? expect : text);
	/* And the formatted text parses to the same pairs again. */
	struct qu_opts o2;
	assert_int_equal(qu_opts_parse(f, implied, &o2), 0);
	assert_int_equal(o2.n, o.n);
	assert_int_equal(o2.implied, o.implied);
	for (size_t i = 0; i < o.n; i++) {
		assert_string_equal(o2.v[i].key, o.v[i].key);
		if (o.v[i].val)
			assert_string_equal(o2.v[i].val, o.v[i].val);
		else
			assert_null(o2.v[i].val);
	}
	qu_opts_free(&o2);
	free(f);
	qu_opts_free(&o);
}

static char *fmt(const struct qu_opts *o)
{
	char *f = qu_opts_format(o);
	assert_non_null(f);
	return f;
}

static void assert_format(const struct qu_opts *o, const char *expect)
{
	char *f = fmt(o);
	assert_string_equal(f, expect);
	free(f);
}

static void implied_first_key(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("q35,accel=kvm,memory-backend=mem0", "type", &o), 0);
	assert_int_equal(o.n, 3);
	assert_true(o.implied);
	assert_string_equal(o.v[0].key, "type");
	assert_string_equal(o.v[0].val, "q35");
	assert_string_equal(qu_opts_get(&o, "type"), "q35");
	assert_string_equal(qu_opts_get(&o, "accel"), "kvm");
	assert_string_equal(qu_opts_get(&o, "memory-backend"), "mem0");
	assert_format(&o, "q35,accel=kvm,memory-backend=mem0");
	qu_opts_free(&o);
}

static void explicit_first_key_is_not_implied(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("type=q35,accel=kvm", "type", &o), 0);
	assert_false(o.implied);
	assert_int_equal(o.n, 2);
	assert_string_equal(qu_opts_get(&o, "type"), "q35");
	assert_format(&o, "type=q35,accel=kvm");
	qu_opts_free(&o);
}

static void implied_only_for_first_element(void **state)
{
	struct qu_opts o;
	/* A later element without '=' is a bare boolean key, not the implied one. */
	assert_int_equal(qu_opts_parse("socket,id=c0,server,nowait", "backend", &o), 0);
	assert_int_equal(o.n, 4);
	assert_string_equal(qu_opts_get(&o, "backend"), "socket");
	assert_string_equal(o.v[2].key, "server");
	assert_null(o.v[2].val);
	assert_string_equal(o.v[3].key, "nowait");
	qu_opts_free(&o);
}

static void no_implied_key_makes_bare_key(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("socket,id=c0", NULL, &o), 0);
	assert_false(o.implied);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.v[0].key, "socket");
	assert_null(o.v[0].val);
	assert_format(&o, "socket,id=c0");
	qu_opts_free(&o);
}

static void empty_string_has_no_options(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("", "type", &o), 0);
	assert_int_equal(o.n, 0);
	assert_false(o.implied);
	assert_null(qu_opts_get(&o, "type"));
	assert_format(&o, "");
	qu_opts_free(&o);
}

static void comma_escape_in_value(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("file,id=log,path=/tmp/a,,b,,,,c,append=on", "backend", &o), 0);
	assert_int_equal(o.n, 4);
	assert_string_equal(qu_opts_get(&o, "path"), "/tmp/a,b,,c");
	assert_string_equal(qu_opts_get(&o, "append"), "on");
	qu_opts_free(&o);
	assert_round_trip("file,id=log,path=/tmp/a,,b,,,,c,append=on", "backend", NULL);
}

static void comma_escape_in_implied_value(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("/img/a,,b.qcow2,format=qcow2", "file", &o), 0);
	assert_true(o.implied);
	assert_int_equal(o.n, 2);
	assert_string_equal(qu_opts_get(&o, "file"), "/img/a,b.qcow2");
	qu_opts_free(&o);
	assert_round_trip("/img/a,,b.qcow2,format=qcow2", "file", NULL);
}

static void comma_escape_added_by_set(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("file,id=log", "backend", &o), 0);
	assert_int_equal(qu_opts_set(&o, "path", "/var/log/x,y.log"), 0);
	assert_format(&o, "file,id=log,path=/var/log/x,,y.log");
	qu_opts_free(&o);
}

static void equals_sign_inside_value(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("id=a,cmdline=x=1 y=2", NULL, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(qu_opts_get(&o, "cmdline"), "x=1 y=2");
	qu_opts_free(&o);
	assert_round_trip("id=a,cmdline=x=1 y=2", NULL, NULL);
}

static void empty_value_kept(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=,b=1", NULL, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(qu_opts_get(&o, "a"), "");
	assert_false(qu_opts_get_bool(&o, "a"));
	qu_opts_free(&o);
	assert_round_trip("a=,b=1", NULL, NULL);
}

static void bare_boolean_key(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("unix:/run/q.sock,server,wait=off", "spec", &o), 0);
	assert_string_equal(qu_opts_get(&o, "spec"), "unix:/run/q.sock");
	assert_string_equal(qu_opts_get(&o, "server"), "on");
	assert_null(o.v[1].val);
	assert_true(qu_opts_get_bool(&o, "server"));
	assert_false(qu_opts_get_bool(&o, "wait"));
	/* Formatting keeps the bare form. */
	assert_format(&o, "unix:/run/q.sock,server,wait=off");
	qu_opts_free(&o);
	assert_round_trip("unix:/run/q.sock,server,wait=off", "spec", NULL);
}

static void get_bool_values(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=on,b=yes,c=true,d,e=off,f=no,g=false,h=1,i=ON", NULL, &o), 0);
	assert_true(qu_opts_get_bool(&o, "a"));
	assert_true(qu_opts_get_bool(&o, "b"));
	assert_true(qu_opts_get_bool(&o, "c"));
	assert_true(qu_opts_get_bool(&o, "d"));
	assert_false(qu_opts_get_bool(&o, "e"));
	assert_false(qu_opts_get_bool(&o, "f"));
	assert_false(qu_opts_get_bool(&o, "g"));
	assert_false(qu_opts_get_bool(&o, "h")); /* QEMU's booleans are on/off/yes/no/true/false */
	assert_false(qu_opts_get_bool(&o, "i"));
	assert_false(qu_opts_get_bool(&o, "absent"));
	qu_opts_free(&o);
}

static void last_occurrence_wins(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=1,b=2,a=3,server=off,server", NULL, &o), 0);
	assert_int_equal(o.n, 5);
	assert_string_equal(qu_opts_get(&o, "a"), "3");
	assert_string_equal(qu_opts_get(&o, "server"), "on");
	assert_true(qu_opts_get_bool(&o, "server"));
	qu_opts_free(&o);

	assert_int_equal(qu_opts_parse("server,server=off", NULL, &o), 0);
	assert_false(qu_opts_get_bool(&o, "server"));
	qu_opts_free(&o);
}

static void set_replaces_first_and_drops_later(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=1,b=2,a=3,c=4,a=5", NULL, &o), 0);
	assert_int_equal(qu_opts_set(&o, "a", "9"), 0);
	assert_int_equal(o.n, 3);
	assert_string_equal(qu_opts_get(&o, "a"), "9");
	assert_format(&o, "a=9,b=2,c=4");
	qu_opts_free(&o);
}

static void set_appends_when_absent(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("socket,id=c0", "backend", &o), 0);
	assert_int_equal(qu_opts_set(&o, "fd", "5"), 0);
	assert_int_equal(qu_opts_set(&o, "server", NULL), 0);
	assert_format(&o, "socket,id=c0,fd=5,server");
	assert_true(qu_opts_get_bool(&o, "server"));
	qu_opts_free(&o);
}

static void set_on_empty_opts(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("", NULL, &o), 0);
	assert_int_equal(qu_opts_set(&o, "id", "x"), 0);
	assert_format(&o, "id=x");
	qu_opts_free(&o);
}

static void set_bare_key_to_value(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("socket,server,wait", "backend", &o), 0);
	assert_int_equal(qu_opts_set(&o, "wait", "off"), 0);
	assert_int_equal(qu_opts_set(&o, "server", "on"), 0);
	assert_format(&o, "socket,server=on,wait=off");
	qu_opts_free(&o);
}

static void set_implied_key_keeps_implied_form(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("q35,accel=kvm", "type", &o), 0);
	assert_int_equal(qu_opts_set(&o, "type", "pc-q35-7.2"), 0);
	assert_true(o.implied);
	assert_format(&o, "pc-q35-7.2,accel=kvm");
	qu_opts_free(&o);
}

static void del_removes_every_occurrence(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("socket,id=c0,path=/a,server=on,path=/b", "backend", &o), 0);
	qu_opts_del(&o, "path");
	assert_int_equal(o.n, 3);
	assert_null(qu_opts_get(&o, "path"));
	assert_true(o.implied);
	assert_format(&o, "socket,id=c0,server=on");
	qu_opts_free(&o);
}

static void del_absent_key_is_noop(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=1,b", NULL, &o), 0);
	qu_opts_del(&o, "zzz");
	assert_int_equal(o.n, 2);
	assert_format(&o, "a=1,b");
	qu_opts_free(&o);
}

static void del_implied_key_writes_next_with_key(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("q35,accel=kvm", "type", &o), 0);
	qu_opts_del(&o, "type");
	assert_false(o.implied);
	assert_int_equal(o.n, 1);
	assert_format(&o, "accel=kvm");
	qu_opts_free(&o);
}

static void del_everything(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=1,a=2", NULL, &o), 0);
	qu_opts_del(&o, "a");
	assert_int_equal(o.n, 0);
	assert_format(&o, "");
	qu_opts_free(&o);
}

static void trailing_comma_ignored(void **state)
{
	struct qu_opts o;
	assert_int_equal(qu_opts_parse("a=1,", NULL, &o), 0);
	assert_int_equal(o.n, 1);
	assert_string_equal(qu_opts_get(&o, "a"), "1");
	qu_opts_free(&o);
}

static void realistic_round_trips(void **state)
{
	assert_round_trip("socket,id=qemu-upgrade-ctl,fd=3", "backend", NULL);
	assert_round_trip("memory-backend-memfd,id=mem0,size=1G,share=on", "qom-type", NULL);
	assert_round_trip("chardev=mon0,mode=control,pretty=on", "chardev", NULL);
	assert_round_trip("node-name=disk0,driver=file,filename=/var/lib/a,,b.img", NULL, NULL);
	assert_round_trip("virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56", "driver", NULL);
}

/* Values QMP answered, as a hostile QEMU would answer them: each stays one value. */
static void hostile_values_stay_values(void **state)
{
	const char *hostile[] = { "pc,accel=xen", "a=b,c", "line\nnext=1", ",,", "=", "x,mem-path=/etc/shadow,",
				  "-chardev", "type=q35", NULL };
	for (const char *const *h = hostile; *h; h++) {
		char *t = qu_opts_from(1, (const char *const[]){ "type", *h, "id", *h, "share", "on", NULL });
		assert_non_null(t);
		struct qu_opts o;
		assert_int_equal(qu_opts_parse(t, "type", &o), 0);
		if (o.n != 3)
			fail_msg("'%s' became %zu options: %s", *h, o.n, t);
		assert_string_equal(qu_opts_get(&o, "type"), *h);
		assert_string_equal(qu_opts_get(&o, "id"), *h);
		assert_string_equal(qu_opts_get(&o, "share"), "on");
		qu_opts_free(&o);
		free(t);
	}
}

static void implied_value_with_equals_gets_its_key(void **state)
{
	char *t = qu_opts_from(1, (const char *const[]){ "type", "pc=x", NULL });
	assert_string_equal(t, "type=pc=x");
	free(t);
	t = qu_opts_from(1, (const char *const[]){ "type", "pc-q35-7.2", "x", "1", NULL });
	assert_string_equal(t, "pc-q35-7.2,x=1");
	free(t);
	t = qu_opts_from(0, (const char *const[]){ "memory-backend", "pc.ram", NULL });
	assert_string_equal(t, "memory-backend=pc.ram");
	free(t);
}

static void qemu_names(void **state)
{
	const char *good[] = { "pc-q35-7.2", "pc.ram", "mem0", "q35", "pc-i440fx-11.1", "A_b", NULL };
	const char *bad[] = { "", "pc,accel=xen", "a=b", "x\ny", "-opt", ".hidden", "a b", "a/b",
			      "0123456789012345678901234567890123456789012345678901234567890123", NULL };
	for (const char *const *g = good; *g; g++)
		if (!qu_qemu_name_ok(*g))
			fail_msg("'%s' refused", *g);
	for (const char *const *b = bad; *b; b++)
		if (qu_qemu_name_ok(*b))
			fail_msg("'%s' accepted", *b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_values_stay_values),
		cmocka_unit_test(implied_value_with_equals_gets_its_key),
		cmocka_unit_test(qemu_names),
		cmocka_unit_test(implied_first_key),
		cmocka_unit_test(explicit_first_key_is_not_implied),
		cmocka_unit_test(implied_only_for_first_element),
		cmocka_unit_test(no_implied_key_makes_bare_key),
		cmocka_unit_test(empty_string_has_no_options),
		cmocka_unit_test(comma_escape_in_value),
		cmocka_unit_test(comma_escape_in_implied_value),
		cmocka_unit_test(comma_escape_added_by_set),
		cmocka_unit_test(equals_sign_inside_value),
		cmocka_unit_test(empty_value_kept),
		cmocka_unit_test(bare_boolean_key),
		cmocka_unit_test(get_bool_values),
		cmocka_unit_test(last_occurrence_wins),
		cmocka_unit_test(set_replaces_first_and_drops_later),
		cmocka_unit_test(set_appends_when_absent),
		cmocka_unit_test(set_on_empty_opts),
		cmocka_unit_test(set_bare_key_to_value),
		cmocka_unit_test(set_implied_key_keeps_implied_form),
		cmocka_unit_test(del_removes_every_occurrence),
		cmocka_unit_test(del_absent_key_is_noop),
		cmocka_unit_test(del_implied_key_writes_next_with_key),
		cmocka_unit_test(del_everything),
		cmocka_unit_test(trailing_comma_ignored),
		cmocka_unit_test(realistic_round_trips),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
