#include "upgrade/fault.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/testhooks.h"

#include <poll.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

int qu_fault(enum qu_fault_point point)
{
	const char *spec = qu_test_env("QEMU_UPGRADE_FAULT");
	char *end;
	if (!spec || !*spec)
		return 0;
	long n = strtol(spec, &end, 10);
	if (n != (long)point)
		return 0;
	if (!strncmp(end, ":pause=", 7)) {
		/* Stand still for a while, then go on: time for a test to kill a QEMU here. */
		qu_info("fault point %d: pausing (QEMU_UPGRADE_FAULT=%s)", (int)point, spec);
		poll(NULL, 0, atoi(end + 7));
		return qu_cancel_check();
	}
	if (!strcmp(end, ":wait")) {
		/* Stand still until a signal cancels the upgrade (tests of Ctrl-C at this point). */
		qu_info("fault point %d: waiting for a signal (QEMU_UPGRADE_FAULT=%s)", (int)point, spec);
		for (int i = 0; i < 600 && qu_cancel_check() == 0; i++)
			poll(NULL, 0, 100);
		return qu_cancel_check() ?: qu_err(-ETIMEDOUT, "fault point %d: no signal came", (int)point);
	}
	if (!strcmp(end, ":kill")) {
		qu_info("fault point %d: killing myself (QEMU_UPGRADE_FAULT=%s)", (int)point, spec);
		raise(SIGKILL);
	}
	return qu_err(-EIO, "injected fault at point %d (QEMU_UPGRADE_FAULT=%s)", (int)point, spec);
}
