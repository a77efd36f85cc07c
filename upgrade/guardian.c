#include "upgrade/guardian.h"
#include "upgrade/clock.h"
#include "upgrade/libvirtd.h"
#include "upgrade/libvirtgate.h"
#include "upgrade/io.h"
#include "upgrade/journal.h"
#include "upgrade/memory.h"
#include "upgrade/log.h"
#include "upgrade/settle.h"
#include "upgrade/spawn.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <unistd.h>

#define RELEASE_BYTE 'R'

/* libvirt's daemon, if the tool that died stopped it (not an --all batch, which starts it after
 * its last VM): started again once the VM is settled, under the host's libvirt lock (another
 * libvirt-mode upgrade may run by now, holding a domain's monitor). */
static void restart_libvirtd(pid_t tool)
{
	char what[768];
	if (!qu_libvirtd_restart_journaled())
		return; /* no libvirt daemon was stopped: nothing to lock or start */
	if (qu_libvirt_lock(qu_now_us() + 120ull * 1000000u) < 0) {
		fprintf(stderr, "qemu-upgrade guardian: %s; libvirt's daemon, if stopped, is left to qemu-upgrade --recover\n",
			qu_err_msg());
		return;
	}
	int r = qu_libvirtd_recover_for(tool, what, sizeof(what));
	qu_libvirt_unlock();
	if (r > 0)
		fprintf(stderr, "qemu-upgrade guardian: %s\n", what);
	else if (r < 0)
		fprintf(stderr, "qemu-upgrade guardian: %s\n", qu_err_msg());
}

static void guard(pid_t old_pid, int link, pid_t tool)
{
	char c = 0, path[PATH_MAX], what[512];
	ssize_t n;
	do
		n = read(link, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && c == RELEASE_BYTE)
		return;
	/* The tool is gone without a word: settle what its journal says. */
	/* On the heap: a journal holds paths by the dozen, too much for one stack frame. */
	struct qu_journal *j = calloc(1, sizeof(*j));
	qu_state_path(old_pid, "journal", path, sizeof(path));
	if (!j || qu_journal_read(path, j) < 0) {
		free(j);
		qu_memory_unbook(0); /* the dead tool's booking, if it had one */
		/* No journal: the tool died before touching the VM, or after finishing. */
		restart_libvirtd(tool);
		return;
	}
	int r = qu_settle(j, what, sizeof(what));
	free(j);
	qu_memory_unbook(0);
	fprintf(stderr, "qemu-upgrade guardian: %s%s\n", what, r < 0 ? " (run qemu-upgrade --recover)" : "");
	/* Started now, the daemon would find a VM still between two QEMUs: --recover's, then. */
	if (r >= 0)
		restart_libvirtd(tool);
}

/* What the guardian needs, filled by the tool before the fork. */
struct guardian_args {
	pid_t old_pid;
	pid_t tool;
};

/* The guardian itself: its link to the tool at 3, the VM's lock at 4 (spawn.h). */
static int guardian(void *arg)
{
	const struct guardian_args *a = arg;
	qu_libvirt_lock_forget(); /* the tool's copy went with the rest */
	guard(a->old_pid, 3, a->tool);
	char lock[PATH_MAX];
	qu_state_path(a->old_pid, "lock", lock, sizeof(lock));
	unlink(lock); /* still holding it: nobody can take a stale one */
	return 0;
}

int qu_guardian_start(pid_t old_pid, int lock_fd, struct qu_guardian *g)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return qu_err(-errno, "socketpair: %s", strerror(errno));
	/* Taken here, not as the guardian's parent there: a tool that died meanwhile is not PID 1. */
	struct guardian_args a = { .old_pid = old_pid, .tool = getpid() };
	int fds[] = { sv[1], lock_fd };
	/* The tool's child (it waits for the guardian's end at release), out of the tool's
	 * session (a Ctrl-C is the tool's to handle), deaf to SIGTERM (it must settle what a
	 * killed tool left), its lines on the tool's stderr. */
	struct qu_spawn s = { .fds = fds, .nfds = 2,
			      .flags = QU_SPAWN_CHILD | QU_SPAWN_KEEP_STDERR | QU_SPAWN_IGNORE_TERM };
	pid_t pid;
	int r = qu_spawn_detached(&s, guardian, &a, &pid);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return qu_err_wrap(r, "cannot start the guardian");
	}
	g->pid = pid;
	g->link = sv[0];
	return 0;
}

void qu_guardian_release(struct qu_guardian *g)
{
	if (g->link < 0)
		return;
	char c = RELEASE_BYTE;
	qu_write_full(g->link, &c, 1);
	qu_close(&g->link);
	waitpid(g->pid, NULL, 0);
	g->pid = 0;
}
