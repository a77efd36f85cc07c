/* qu_agent_run(), `qemu-upgrade agent`: the destination host's end of `--remote`. Its transport
 * (remote/tcp/server.h) listens, proves with the shared key that it and the tool belong
 * together and serves each connection in a process of its own; the session server
 * (remote/session.h) does the upgrade; the sessions' records (remote/record.h) let it clean
 * up after a session that died. docs/remote.md has the protocol. */
#include "qemu-upgrade.h"
#include "remote/record.h"
#include "remote/session.h"
#include "remote/tcp/server.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
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
	char what[256];
	if (qu_session_record_cleanup(pid, what, sizeof(what)) > 0)
		qu_info("agent: %s (%s %d)", what, WIFSIGNALED(status) ? "signal" : "exit",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

int qu_agent_run(const char *listen_addr, const char *key_path, unsigned flags)
{
	struct qu_tcp_server server;
	if (flags & ~QU_AGENT_ONCE) {
		qu_err(-EINVAL, "unknown flags 0x%x", flags & ~QU_AGENT_ONCE);
		return -1;
	}
	if (!listen_addr)
		listen_addr = "4779"; /* QU_AGENT_PORT, on every address */
	if (!key_path)
		key_path = QU_AGENT_KEY;
	if (qu_tcp_server_open(listen_addr, key_path, &server) < 0)
		return -1;
	/* Sessions of an agent that died before it could clean up after them. */
	qu_session_record_sweep();
	warn_if_service();
	qu_info("agent: listening on %s", listen_addr);
	return qu_tcp_server_run(&server, qu_session_serve, session_ended, !!(flags & QU_AGENT_ONCE));
}
