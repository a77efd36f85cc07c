/* qemu-integration/ramblocks.c: `info ramblock` as QEMU 7.2 and 10.0 print it, and which size
 * differences QEMU's migration accepts. */
#include "unit.h"
#include "qemu-integration/ramblocks.h"

static const char *const info_72 =
	"              Block Name    PSize              Offset               Used              Total\r\n"
	"                  pc.ram    4 KiB  0x0000000000000000 0x0000000008000000 0x0000000008000000\r\n"
	"    /rom@etc/acpi/tables    4 KiB  0x00000000080c0000 0x0000000000020000 0x0000000000200000\r\n"
	"                 pc.bios    4 KiB  0x0000000008000000 0x0000000000040000 0x0000000000040000\r\n"
	"0000:00:01.0/virtio-net-pci.rom    4 KiB  0x0000000008080000 0x0000000000040000 0x0000000000040000\r\n"
	"                  pc.rom    4 KiB  0x0000000008040000 0x0000000000020000 0x0000000000020000\r\n";

/* Big: kept off the stack (the sanitizer build limits frames). */
static struct qu_ramblock a[QU_MAX_RAMBLOCKS], n[QU_MAX_RAMBLOCKS];

static void parses_every_block(void **state)
{
	(void)state;
	struct qu_ramblock *b = a;
	assert_int_equal(qu_ramblocks_parse(info_72, b, QU_MAX_RAMBLOCKS), 5);
	assert_string_equal(b[0].name, "pc.ram");
	assert_int_equal(b[0].used, 0x8000000);
	assert_string_equal(b[1].name, "/rom@etc/acpi/tables");
	assert_int_equal(b[1].used, 0x20000);
	assert_int_equal(b[1].total, 0x200000);
	assert_string_equal(b[3].name, "0000:00:01.0/virtio-net-pci.rom");
}

static void not_a_table_is_refused(void **state)
{
	(void)state;
	struct qu_ramblock b[4];
	assert_int_equal(qu_ramblocks_parse("unknown command: 'info ramblock'\r\n", b, 4), -EBADMSG);
}

static void same_blocks_fit(void **state)
{
	(void)state;
	char why[512] = "";
	int na = qu_ramblocks_parse(info_72, a, QU_MAX_RAMBLOCKS), nn = qu_ramblocks_parse(info_72, n, QU_MAX_RAMBLOCKS);
	n[1].used = 0x10000; /* a resizable block may be smaller now: it grows to what arrives */
	assert_int_equal(qu_ramblocks_compare(a, (size_t)na, n, (size_t)nn, why, sizeof(why)), 0);
}

static void bigger_bios_is_named(void **state)
{
	(void)state;
	char why[512] = "";
	int na = qu_ramblocks_parse(info_72, a, QU_MAX_RAMBLOCKS), nn = qu_ramblocks_parse(info_72, n, QU_MAX_RAMBLOCKS);
	n[2].used = n[2].total = 0x80000;
	assert_int_equal(qu_ramblocks_compare(a, (size_t)na, n, (size_t)nn, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "'pc.bios' is 256 KiB in the running VM but 512 KiB in the new QEMU"));
}

static void resizable_block_over_its_maximum(void **state)
{
	(void)state;
	char why[512] = "";
	int na = qu_ramblocks_parse(info_72, a, QU_MAX_RAMBLOCKS), nn = qu_ramblocks_parse(info_72, n, QU_MAX_RAMBLOCKS);
	a[1].used = 0x400000;
	assert_int_equal(qu_ramblocks_compare(a, (size_t)na, n, (size_t)nn, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "'/rom@etc/acpi/tables' is 4 MiB in the running VM but at most 2 MiB"));
}

static void missing_block_is_named(void **state)
{
	(void)state;
	char why[512] = "";
	int na = qu_ramblocks_parse(info_72, a, QU_MAX_RAMBLOCKS), nn = qu_ramblocks_parse(info_72, n, QU_MAX_RAMBLOCKS);
	assert_int_equal(qu_ramblocks_compare(a, (size_t)na, n, (size_t)nn - 2, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "no RAM block '0000:00:01.0/virtio-net-pci.rom'"));
}

/* To another host and back (the agent's reply): names with ':' survive, damage does not. */
static void pack_and_unpack(void **state)
{
	(void)state;
	char line[4096];
	int na = qu_ramblocks_parse(info_72, a, QU_MAX_RAMBLOCKS);
	assert_true(na > 2);
	assert_int_equal(qu_ramblocks_pack(a, (size_t)na, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "0000:00:01.0/virtio-net-pci.rom:"));
	int nn = qu_ramblocks_unpack(line, n, QU_MAX_RAMBLOCKS);
	assert_int_equal(nn, na);
	for (int i = 0; i < na; i++) {
		assert_string_equal(n[i].name, a[i].name);
		assert_true(n[i].used == a[i].used && n[i].total == a[i].total);
	}
	assert_int_equal(qu_ramblocks_pack(a, (size_t)na, line, 40), -ENOSPC);
	assert_int_equal(qu_ramblocks_unpack("pc.ram:12", n, QU_MAX_RAMBLOCKS), -EBADMSG);
	assert_int_equal(qu_ramblocks_unpack("pc.ram:12:x", n, QU_MAX_RAMBLOCKS), -EBADMSG);
	assert_int_equal(qu_ramblocks_unpack(":1:2", n, QU_MAX_RAMBLOCKS), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_every_block),
		cmocka_unit_test(not_a_table_is_refused),
		cmocka_unit_test(same_blocks_fit),
		cmocka_unit_test(bigger_bios_is_named),
		cmocka_unit_test(resizable_block_over_its_maximum),
		cmocka_unit_test(missing_block_is_named),
		cmocka_unit_test(pack_and_unpack),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
