/* standby's version allow list (remote/standby/versions.h): COLO works on 11.1 only, and every
 * other version is refused with what was measured on it (docs/standby-research.md). */
#include "tests/unit/unit.h"
#include "remote/standby/versions.h"

static const char *why(int a, int b, int c)
{
	const int v[3] = { a, b, c };
	return qu_standby_version_refusal(v);
}

static void only_11_1_is_protected(void **state)
{
	assert_null(why(11, 1, 0));
	assert_null(why(11, 1, 3));
	assert_non_null(why(11, 0, 9));
	assert_non_null(why(11, 2, 0));
	assert_non_null(why(12, 0, 0));
}

static void each_measured_version_says_what_failed(void **state)
{
	const char *s = why(7, 2, 22);
	assert_non_null(strstr(s, "QEMU 7.2.22 cannot be protected"));
	assert_non_null(strstr(s, "memory_region_add_subregion_common"));
	assert_non_null(strstr(s, "upgrade the VM to 11.1 first"));
	s = why(10, 0, 2);
	assert_non_null(strstr(s, "ends as a plain migration"));
	assert_non_null(strstr(s, "fixed in 10.0.7"));
	s = why(10, 0, 6);
	assert_non_null(strstr(s, "ends as a plain migration"));
	s = why(10, 0, 7);
	assert_non_null(strstr(s, "aborts loading the first checkpoint"));
	s = why(10, 0, 13);
	assert_non_null(strstr(s, "aborts loading the first checkpoint"));
}

static void unmeasured_versions_say_so(void **state)
{
	assert_non_null(strstr(why(10, 2, 0), "COLO was not tested on this version"));
	assert_non_null(strstr(why(11, 0, 0), "COLO was not tested on this version"));
	assert_non_null(strstr(why(5, 2, 0), "COLO was not tested on this version"));
	assert_non_null(strstr(why(12, 0, 0), "QEMU 12.0.0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(only_11_1_is_protected),
		cmocka_unit_test(each_measured_version_says_what_failed),
		cmocka_unit_test(unmeasured_versions_say_so),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
