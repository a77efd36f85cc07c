#include "upgrade/systemd.h"
#include "qemu-integration/binary.h"
#include "upgrade/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qu_systemd_service_of(const char *cgroup_text, char *unit, size_t len)
{
	const char *line = cgroup_text;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char buf[1024];
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < sizeof(buf) ? n : sizeof(buf) - 1), line);
		const char *path = NULL;
		if (!strncmp(buf, "0::", 3))
			path = buf + 3;
		else if (strstr(buf, ":name=systemd:"))
			path = strstr(buf, ":name=systemd:") + 14;
		const char *last = path ? strrchr(path, '/') : NULL;
		size_t ln = last ? strlen(last + 1) : 0;
		if (last && ln > 8 && !strcmp(last + 1 + ln - 8, ".service")) {
			snprintf(unit, len, "%s", last + 1);
			return 1;
		}
		line = end ? end + 1 : NULL;
	}
	return 0;
}

static int systemd_is_init(void)
{
	char *comm = NULL;
	int yes = qu_read_file("/proc/1/comm", &comm, NULL) == 0 && !strncmp(comm, "systemd", 7);
	free(comm);
	return yes;
}

int qu_systemd_main_process(pid_t pid, uint64_t deadline_us, char *why, size_t len)
{
	char path[64], unit[256], *text = NULL, out[128] = "";
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (!systemd_is_init() || qu_read_file(path, &text, NULL) < 0)
		return 0;
	int in = qu_systemd_service_of(text, unit, sizeof(unit));
	free(text);
	if (!in)
		return 0;
	char *const argv[] = { (char *)"systemctl", (char *)"show", (char *)"--property=MainPID", (char *)"--value",
			       unit, NULL };
	int r = qu_run_capture("/bin/systemctl", argv, NULL, deadline_us, out, sizeof(out));
	if (r == 0 && atoi(out) > 0 && atoi(out) != (int)pid)
		return 0; /* another process is the service's main one: its exit is not ours */
	snprintf(why, len, "QEMU PID %d %s systemd service %s: when it exits, systemd counts the service as "
		 "stopped, kills what is left in it (the new QEMU) and may start it again; run the VM in a "
		 "scope instead (systemd-run --scope, as libvirt does)", (int)pid,
		 r == 0 && atoi(out) == (int)pid ? "is the main process of" : "runs in", unit);
	return 1;
}
