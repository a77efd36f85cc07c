#include "remote/agent.h"
#include "remote/record.h"
#include "remote/session.h"
#include "remote/ssh/stdio.h"
#include "remote/tcp/server.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* New QEMUs live in the agent's cgroup: a systemd service that kills its whole control group
 * when stopped or restarted would take every guest that moved here with it. */
static void warn_if_service(void)
{
	char *text = NULL;
	if (qu_read_file("/proc/self/cgroup", &text, NULL) < 0)
		return;
	char *nl = strrchr(text, '\n');
	while (nl && nl > text && !nl[1]) {
		*nl = '\0';
		nl = strrchr(text, '\n');
	}
	size_t n = strlen(text);
	if (n > 8 && !strcmp(text + n - 8, ".service"))
		qu_info("agent: warning: running in a systemd service (%s): the QEMUs started here live in its "
			"cgroup; set KillMode=process (as qemu-upgrade-agent.service does), or stopping the "
			"service kills every guest that moved here", strrchr(text, '/') ? strrchr(text, '/') + 1 : text);
	free(text);
}

/* A session that ended: what it left undone (killed, out of memory) is undone. */
static void session_ended(pid_t pid, int status)
{
	char what[256], how[64];
	if (qu_session_record_cleanup(pid, what, sizeof(what)) > 0) {
		qu_describe_status(status, how, sizeof(how));
		qu_info("agent: %s (%s)", what, how);
	}
}

/* A connection's process ended (a session: what it left undone is undone), or a QEMU that
 * outlived its session did: the guest that moved or took over here is gone, and how it ended
 * is all anyone will know of it (its stderr is what the VM's was, often /dev/null). */
static void tcp_child_ended(pid_t pid, int status, int adopted)
{
	char how[64];
	if (!adopted) {
		session_ended(pid, status);
		return;
	}
	qu_describe_status(status, how, sizeof(how));
	qu_info("agent: PID %d, which a session left running, ended: %s", (int)pid, how);
}

int qu_agent_serve(const char *listen_addr, const char *pki_dir, int once)
{
	struct qu_tcp_server server;
	if (qu_tcp_server_open(listen_addr, pki_dir, &server) < 0)
		return -1;
	/* A QEMU whose session ended is ours to reap (not init's), so that its end is logged:
	 * otherwise a guest that dies here after its session vanishes without a word. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		qu_info("agent: warning: PR_SET_CHILD_SUBREAPER: %s: the end of a QEMU after its session is not logged",
			strerror(errno));
	/* Sessions of an agent that died before it could clean up after them. */
	qu_session_record_sweep();
	warn_if_service();
	qu_info("agent: listening on %s (TLS, certificates in %s)", listen_addr, pki_dir);
	return qu_tcp_server_run(&server, qu_session_serve, tcp_child_ended, once);
}

int qu_agent_stdio(void)
{
	/* It starts QEMUs as the VMs' users, opens taps, writes /run/qemu-upgrade. */
	if (geteuid() != 0)
		return qu_err(-EPERM, "`qemu-upgrade agent --stdio` runs as root (uid %u here): give the tool "
			      "ssh://root@HOST", (unsigned)geteuid()), -1;
	qu_session_record_sweep();
	return qu_ssh_stdio_serve(qu_session_serve, session_ended);
}
