/* standby's parts that need no QEMU: where a secondary's listener waits, as query-chardev
 * writes it (remote/standby/wiring.h), the ids the agent passes to QEMU, and the secondary's
 * private RAM rewritten from an upgrade's launch (remote/standby/secondary.h). */
#include "tests/unit/unit.h"
#include "qemu-integration/argv.h"
#include "remote/standby/secondary.h"
#include "remote/standby/wiring.h"
#include "upgrade/fdpass/carried.h"
#include "upgrade/stream.h"

static void listener_addresses(void **state)
{
	char a[64];
	assert_int_equal(qu_colo_chardev_addr("disconnected:tcp:10.0.0.2:41235,server=on", a, sizeof(a)), 0);
	assert_string_equal(a, "10.0.0.2:41235");
	assert_int_equal(qu_colo_chardev_addr("disconnected:tcp:[::1]:7,server=on", a, sizeof(a)), 0);
	assert_string_equal(a, "[::1]:7");
	assert_int_equal(qu_colo_chardev_addr("tcp:h:1", a, sizeof(a)), 0);
	assert_string_equal(a, "h:1");
	/* No port, a port that is not a number, no tcp at all, no host, too long: none. */
	assert_int_equal(qu_colo_chardev_addr("disconnected:tcp:10.0.0.2:,server=on", a, sizeof(a)), -ENOENT);
	assert_int_equal(qu_colo_chardev_addr("disconnected:tcp:10.0.0.2:x1,server=on", a, sizeof(a)), -ENOENT);
	assert_int_equal(qu_colo_chardev_addr("disconnected:unix:/run/x,server=on", a, sizeof(a)), -ENOENT);
	assert_int_equal(qu_colo_chardev_addr("tcp::5", a, sizeof(a)), -ENOENT);
	assert_int_equal(qu_colo_chardev_addr("tcp:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1", a, sizeof(a)),
			 -ENOENT);
}

static void ids(void **state)
{
	assert_true(qu_colo_id_ok("hn0"));
	assert_true(qu_colo_id_ok("host-net_0.1"));
	assert_false(qu_colo_id_ok(""));
	assert_false(qu_colo_id_ok("hn0,indev=x"));
	assert_false(qu_colo_id_ok("a\"b"));
	assert_false(qu_colo_id_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static void add_fd(struct qu_carried *c, size_t *n, int target, unsigned kind)
{
	memset(&c[*n], 0, sizeof(c[*n]));
	c[*n].target = target;
	c[*n].kind = kind;
	(*n)++;
}

static void private_ram(void **state)
{
	char *const cmd[] = { "qemu-system-x86_64", "-object",
			      "memory-backend-file,id=mem0,size=256M,share=on,mem-path=/proc/self/fd/5", "-object",
			      "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"m1\",\"size\":1048576,\"share\":true}",
			      "-object", "iothread,id=io0", "-netdev", "tap,id=hn0,fd=6", NULL };
	struct qu_argv v;
	struct qu_carried fds[3];
	size_t n = 0;
	assert_int_equal(qu_argv_from_array(9, cmd, &v), 0);
	add_fd(fds, &n, 5, QU_FD_RAM);
	add_fd(fds, &n, 6, QU_FD_TAP);
	assert_int_equal(qu_colo_private_ram(&v, fds, &n), 2);
	assert_string_equal(v.a[0].val, "memory-backend-ram,id=mem0,size=256M");
	assert_non_null(strstr(v.a[1].val, "\"qom-type\":\"memory-backend-ram\""));
	assert_non_null(strstr(v.a[1].val, "\"id\":\"m1\""));
	assert_non_null(strstr(v.a[1].val, "\"size\":1048576"));
	assert_null(strstr(v.a[1].val, "share"));
	assert_string_equal(v.a[2].val, "iothread,id=io0");
	/* The RAM descriptor is not re-created there; the tap's is. */
	assert_int_equal(n, 1);
	assert_int_equal(fds[0].target, 6);
	qu_argv_free(&v);
}

static void ram_without_size_is_refused(void **state)
{
	char *const cmd[] = { "q", "-object", "memory-backend-memfd,id=mem0,share=on", NULL };
	struct qu_argv v;
	size_t n = 0;
	assert_int_equal(qu_argv_from_array(3, cmd, &v), 0);
	assert_int_equal(qu_colo_private_ram(&v, NULL, &n), -EINVAL);
	qu_argv_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listener_addresses),
		cmocka_unit_test(ids),
		cmocka_unit_test(private_ram),
		cmocka_unit_test(ram_without_size_is_refused),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
