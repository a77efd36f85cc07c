#include "upgrade/statedir.h"
#include "upgrade/testhooks.h"

#include <stdio.h>

const char *qu_state_dir(void)
{
	const char *d = qu_test_env("QEMU_UPGRADE_STATE_DIR");
	return d && *d ? d : "/run/qemu-upgrade";
}

void qu_state_path(pid_t old_pid, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%d.%s", qu_state_dir(), (int)old_pid, ext);
}
