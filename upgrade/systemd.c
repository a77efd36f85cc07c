#include "upgrade/systemd.h"
#include "upgrade/run.h"
#include "upgrade/io.h"
#include "upgrade/fdpass/procfd.h"

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
		/* Any component: a process in a sub-cgroup of a service (Delegate=yes) is in it too. */
		for (const char *c = path; c && *c;) {
			const char *slash = strchr(c, '/');
			size_t cl = slash ? (size_t)(slash - c) : strlen(c);
			if (cl > 8 && !strncmp(c + cl - 8, ".service", 8)) {
				snprintf(unit, len, "%.*s", (int)cl, c);
				return 1;
			}
			c = slash ? slash + 1 : NULL;
		}
		line = end ? end + 1 : NULL;
	}
	return 0;
}

int qu_systemd_is_init(void)
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
	if (!qu_systemd_is_init() || qu_read_file(path, &text, NULL) < 0)
		return 0;
	int in = qu_systemd_service_of(text, unit, sizeof(unit));
	free(text);
	if (!in)
		return 0;
	char *const argv[] = { (char *)"systemctl", (char *)"show", (char *)"--property=MainPID", (char *)"--value",
			       unit, NULL };
	int r = qu_run_capture("/bin/systemctl", -1, argv, (uid_t)-1, (gid_t)-1, deadline_us, out, sizeof(out));
	int main_pid = r == 0 ? atoi(out) : -1;
	/* The service's main process must be neither QEMU nor what started it (a script that
	 * ends when QEMU does, a manager that acts on its child's exit). */
	int ancestor = 0;
	for (pid_t p = pid; main_pid > 0 && p > 1 && !ancestor;) {
		ancestor = p == main_pid;
		p = qu_proc_ppid(p);
	}
	if (main_pid > 0 && !ancestor)
		return 0;
	snprintf(why, len, "QEMU PID %d runs in systemd service %s%s: when it exits, systemd counts the service "
		 "as stopped, kills what is left in it (the new QEMU) and may start it again; run the VM in a "
		 "scope instead (systemd-run --scope, as libvirt does)", (int)pid, unit,
		 main_pid == (int)pid ? " as its main process" : ancestor ? ", started by its main process" :
		 " (systemctl cannot say which process is its main one)");
	return 1;
}
