/* libvirt's status file (upgrade/libvirt.c), as a root-owned file a hostile VM cannot write
 * but a damaged /run can hold: qu_libvirt_status_parse, qu_libvirt_status_facts, and
 * qu_libvirt_status_set_pid, whose
 * output must parse to the new PID and differ from its input in that one attribute only.
 * Input: the file. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/libvirt.h"

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *xml = fuzz_strdup(data, size), mon[256], *out = NULL;
	size_t len = strlen(xml), out_len = 0;
	pid_t pid = 0, back = 0;
	int r = qu_libvirt_status_parse(xml, len, &pid, mon, sizeof(mon));
	FUZZ_CHECK(r == 0 || r == -EBADMSG);
	FUZZ_CHECK(strlen(mon) < sizeof(mon));
	struct qu_libvirt lv;
	int f = qu_libvirt_status_facts(xml, len, &lv);
	FUZZ_CHECK(f == 0 || f == -EBADMSG);
	FUZZ_CHECK(strlen(lv.state) < sizeof(lv.state) && strlen(lv.async_job) < sizeof(lv.async_job));
	FUZZ_CHECK(lv.blockjobs >= -1 && lv.blockjobs <= 1);
	if (r == 0) {
		FUZZ_CHECK(pid > 0);
		pid_t to = pid == 2147483647 ? 1 : pid + 1;
		int s = qu_libvirt_status_set_pid(xml, len, pid, to, &out, &out_len);
		FUZZ_CHECK(s == 0 || s == -EBADMSG);
		if (s == 0) {
			FUZZ_CHECK(out_len == strlen(out));
			FUZZ_CHECK(qu_libvirt_status_parse(out, out_len, &back, NULL, 0) == 0 && back == to);
			/* One attribute changed: the same bytes before it and after it. */
			size_t pre = 0, suf = 0;
			while (pre < len && pre < out_len && xml[pre] == out[pre])
				pre++;
			while (suf < len - pre && suf < out_len - pre && xml[len - 1 - suf] == out[out_len - 1 - suf])
				suf++;
			FUZZ_CHECK(len - pre - suf <= 12 && out_len - pre - suf <= 12);
			free(out);
		}
	}
	/* Another PID than the one recorded is never rewritten. */
	out = NULL;
	FUZZ_CHECK(qu_libvirt_status_set_pid(xml, len, r == 0 ? pid + (pid < 2147483647 ? 1 : -1) : 1, 5, &out,
					     &out_len) != 0 || r != 0);
	free(out);
	free(xml);
	return 0;
}
