/* Values of key=value records (upgrade/kv.h): bytes written as hex, as sums and keys travel. */
#include "tests/unit/unit.h"
#include "upgrade/kv.h"

static void hex_of_bytes(void **state)
{
	const unsigned char b[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(b) + 1];
	memset(out, 'x', sizeof(out));
	qu_hex(b, sizeof(b), out);
	assert_string_equal(out, "00017f80abff");
	qu_hex(b, 0, out);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hex_of_bytes),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
