/* Probes of a QEMU binary on disk (qemu-integration/binary.c), run against the system's real
 * QEMU: its version, its machines, and whether it takes Proxmox's -id (stock QEMU does not:
 * a Proxmox VM, started with -id VMID, is refused for such a binary before anything is
 * touched; no pve-qemu-kvm build is in Debian's registry to test the other side). */
#include "tests/unit/unit.h"
#include "qemu-integration/binary.h"

#define SYSTEM_QEMU "/usr/bin/qemu-system-x86_64"

static struct qu_binary b;

static int setup(void **state)
{
	/* As nobody when root (as the tool probes for a VM of nobody's), else as ourselves. */
	uid_t u = geteuid() == 0 ? 65534 : getuid();
	gid_t g = geteuid() == 0 ? 65534 : getgid();
	if (qu_binary_probe(SYSTEM_QEMU, (uid_t)-1, u, g, qu_now_us() + 30000000u, &b) < 0) {
		note("probe of %s: %s", SYSTEM_QEMU, qu_err_msg());
		return -1;
	}
	return 0;
}

static void version_read(void **state)
{
	assert_true(b.ver[0] >= 5);
	assert_non_null(strstr(b.version_line, "QEMU emulator version "));
}

static void machines_listed(void **state)
{
	assert_int_equal(qu_binary_has_machine(&b, "q35", qu_now_us() + 30000000u), 1);
	assert_int_equal(qu_binary_has_machine(&b, "pc-q35-0.1-no-such", qu_now_us() + 30000000u), 0);
}

static void stock_qemu_takes_no_id(void **state)
{
	assert_int_equal(qu_binary_takes_option(&b, "id", qu_now_us() + 30000000u), 0);
	/* The probe tells an option it has from one it has not. */
	assert_int_equal(qu_binary_takes_option(&b, "name", qu_now_us() + 30000000u), 1);
	assert_int_equal(qu_binary_takes_option(&b, "no-such", qu_now_us() + 30000000u), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(version_read, setup),
		cmocka_unit_test_setup(machines_listed, setup),
		cmocka_unit_test_setup(stock_qemu_takes_no_id, setup),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
