/* The agent's wiring of a COLO secondary (remote/standby/wiring.c), run as root on what the
 * secondary QEMU (the VM's user's process) answers on its monitor: the input is those bytes
 * (greeting, the chardev-add, object-add and migrate-set-capabilities answers, then
 * query-chardev twice), written to a socketpair whose write side is then shut. Whatever it
 * answers, the reply the agent would send the tool stays key=value lines, terminated, with
 * an address (HOST:PORT) or nothing for each wire. Input: the monitor's bytes. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/qmp.h"
#include "remote/standby/wiring.h"
#include "upgrade/clock.h"
#include "upgrade/kv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	int peer, fd = fuzz_socket_with(data, size, &peer);
	if (fd < 0)
		return 0;
	struct qu_qmp *q = NULL;
	char reply[1024];
	if (qu_qmp_attach(fd, qu_now_us() + 10000000u, &q) == 0) {
		memset(reply, 'x', sizeof(reply));
		if (qu_colo_secondary_wire(q, "10.0.0.2", "hn0", "qemu-upgrade-tls", qu_now_us() + 10000000u, reply,
					   sizeof(reply)) == 0) {
			char mirror[256], compare[256];
			FUZZ_CHECK(memchr(reply, '\0', sizeof(reply)) != NULL);
			FUZZ_CHECK(qu_kv_get(reply, "mirror", mirror, sizeof(mirror)) == 0 &&
				   qu_kv_get(reply, "compare", compare, sizeof(compare)) == 0);
			FUZZ_CHECK(strchr(mirror, ':') && strchr(compare, ':'));
		}
		qu_qmp_close(q);
	}
	close(peer);
	return 0;
}
