/* upgrade/systemd.c: which /proc/PID/cgroup contents put a QEMU in a systemd service. */
#include "unit.h"
#include "upgrade/systemd.h"

static void v2_service(void **state)
{
	(void)state;
	char unit[64] = "";
	assert_int_equal(qu_systemd_service_of("0::/system.slice/vm-web.service\n", unit, sizeof(unit)), 1);
	assert_string_equal(unit, "vm-web.service");
}

static void v1_name_systemd(void **state)
{
	(void)state;
	char unit[64] = "";
	const char *t = "12:memory:/system.slice/qemu@a.service\n1:name=systemd:/system.slice/qemu@a.service\n";
	assert_int_equal(qu_systemd_service_of(t, unit, sizeof(unit)), 1);
	assert_string_equal(unit, "qemu@a.service");
}

static void scope_is_fine(void **state)
{
	(void)state;
	char unit[64] = "";
	/* libvirt's machine scope, and a VM started by hand in a session scope */
	assert_int_equal(qu_systemd_service_of("0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator\n",
					       unit, sizeof(unit)), 0);
	assert_int_equal(qu_systemd_service_of("0::/user.slice/user-0.slice/session-3.scope\n", unit, sizeof(unit)), 0);
	assert_int_equal(qu_systemd_service_of("0::/\n", unit, sizeof(unit)), 0);
}

static void a_sub_cgroup_of_a_service(void **state)
{
	(void)state;
	char unit[64] = "";
	/* a process in a sub-cgroup of a service (Delegate=yes) is in the service too */
	assert_int_equal(qu_systemd_service_of("0::/system.slice/vms.service/vm1\n", unit, sizeof(unit)), 1);
	assert_string_equal(unit, "vms.service");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v2_service),
		cmocka_unit_test(v1_name_systemd),
		cmocka_unit_test(scope_is_fine),
		cmocka_unit_test(a_sub_cgroup_of_a_service),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
