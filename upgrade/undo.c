#include "upgrade/undo.h"
#include "upgrade/libvirt.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "remote/blk/mirror.h"
#include "remote/tls.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/fdpass/rootsock.h"
#include "upgrade/fdpass/tapsteer.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_WAIT_US (10u * 1000000u)
#define ANSWER_US (5u * 1000000u)

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int exited(int pidfd)
{
	return qu_pidfd_wait_exit(pidfd, qu_now_us()) == 0;
}

int qu_old_alive(const struct qu_journal *j, const struct qu_hold *h)
{
	return h->pidfd_old >= 0 ? !exited(h->pidfd_old) : qu_proc_alive(j->old_pid, j->old_start);
}

int qu_new_alive(const struct qu_journal *j, const struct qu_hold *h)
{
	if (h->pidfd_new >= 0)
		return !exited(h->pidfd_new);
	return j->new_pid > 0 && qu_proc_alive(j->new_pid, j->new_start);
}

/* A pidfd for a process of the journal, or -1 when it is gone (or its PID is another's). */
static int pidfd_of(pid_t pid, unsigned long long start)
{
	if (pid <= 0)
		return -1;
	int pfd = qu_pidfd_open(pid);
	if (pfd >= 0 && !qu_proc_alive(pid, start)) /* checked after the open: the pidfd pins it */
		qu_close(&pfd);
	return pfd < 0 ? -1 : pfd;
}

/* Signals a process, waits until it is gone (SIGKILL if sig did not do it), and reaps it
 * when it is our child (the tool is the new QEMU's subreaper). */
static void stop_by_pidfd(int pidfd, int sig)
{
	qu_pidfd_kill(pidfd, sig);
	if (qu_pidfd_wait_exit(pidfd, qu_now_us() + EXIT_WAIT_US) < 0 && sig != SIGKILL) {
		qu_pidfd_kill(pidfd, SIGKILL);
		qu_pidfd_wait_exit(pidfd, qu_now_us() + EXIT_WAIT_US);
	}
	siginfo_t si;
	waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG); /* ECHILD when not ours */
}

/* The new QEMU stands still (SIGSTOP) before the paths go back to the old one. Once its
 * migration stream ends (the tool or its guardian died, or closed it) it exits by itself, and
 * QEMU's exit unlinks its -pidfile path whatever that path then holds: the old QEMU's pidfile,
 * just put back. Stopped, it cannot; if it exited before, the putting back comes after. Waits
 * until it is stopped or gone (a process in an uninterruptible sleep stops on its way out of
 * the kernel), at most FREEZE_US. */
#define FREEZE_US 2000000u
static void freeze_new(const struct qu_journal *j, struct qu_hold *h)
{
	int pfd = h->pidfd_new >= 0 ? h->pidfd_new : pidfd_of(j->new_pid, j->new_start);
	if (pfd < 0)
		return;
	uint64_t deadline = qu_now_us() + FREEZE_US;
	if (qu_pidfd_kill(pfd, SIGSTOP) == 0) {
		for (;;) {
			char state = qu_proc_state(j->new_pid);
			if (exited(pfd) || state == 'T' || state == 't' || state == 'Z' || state == 0)
				break;
			if (qu_now_us() >= deadline) {
				qu_info("warning: the new QEMU %d did not stop within %u ms (state %c): its exit may remove "
					"the pidfile %s", (int)j->new_pid, FREEZE_US / 1000, state, j->pidfile);
				break;
			}
			usleep(1000);
		}
	}
	if (pfd != h->pidfd_new)
		close(pfd);
}

void qu_stop_new(const struct qu_journal *j, struct qu_hold *h)
{
	if (h->pidfd_new >= 0) {
		stop_by_pidfd(h->pidfd_new, SIGKILL);
		return;
	}
	int pfd = pidfd_of(j->new_pid, j->new_start);
	if (pfd >= 0) {
		stop_by_pidfd(pfd, SIGKILL);
		close(pfd);
	}
}

/* The new QEMU's private monitor: the held one, or a connection of our own in *mine. */
static struct qu_qmp *ctl_monitor(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline,
				  struct qu_qmp **mine)
{
	*mine = NULL;
	if (h->ctl)
		return h->ctl;
	if (j->ctl[0] && qu_qmp_connect(j->ctl, deadline, mine) == 0)
		return *mine;
	return NULL;
}

enum qu_new_state qu_new_state(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline_us)
{
	if (j->remote[0] || (j->new_pid <= 0 && h->pidfd_new < 0))
		return QU_NEW_NONE;
	if (!qu_new_alive(j, h))
		return QU_NEW_GONE;
	uint64_t soon = qu_now_us() + ANSWER_US;
	if (soon > deadline_us)
		soon = deadline_us;
	struct qu_qmp *mine, *q = ctl_monitor(j, h, soon, &mine);
	char state[32] = "";
	struct qu_mig_status mig = { .status = "" };
	enum qu_new_state s = QU_NEW_SILENT;
	if (q && qu_qmp_query_string(q, "query-status", "status", soon, state, sizeof(state)) == 0) {
		if (!strcmp(state, "running"))
			s = QU_NEW_RUNNING;
		else if (!strcmp(state, "inmigrate") || !strcmp(state, "prelaunch"))
			s = QU_NEW_INCOMING;
		else if (!strcmp(state, "paused"))
			s = qu_mig_query(q, soon, &mig) == 0 && !strcmp(mig.status, "completed") ? QU_NEW_LOADED
												 : QU_NEW_INCOMING;
		else
			s = QU_NEW_OTHER;
	}
	qu_qmp_close(mine);
	/* Its monitor may have failed because it died meanwhile. */
	if (s == QU_NEW_SILENT && !qu_new_alive(j, h))
		s = QU_NEW_GONE;
	qu_debug("the new QEMU: %s (run state '%s', incoming '%s')", qu_new_state_name(s), state, mig.status);
	return s;
}

static void say(char *done, size_t len, const char *what)
{
	size_t used = strlen(done);
	if (used < len)
		snprintf(done + used, len - used, "%s%s", used ? "; " : "", what);
}

int qu_connect_old(const struct qu_journal *j, uint64_t deadline, struct qu_qmp **q)
{
	int r;
	do {
		int fd = j->qmp_root ? qu_connect_root_socket(j->qmp) : qu_connect_as(&j->vm_user, j->qmp);
		int peer = j->qmp_root && fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
		r = fd < 0 ? fd : qu_qmp_connected(fd, j->qmp, deadline, q);
		/* libvirt's monitor, reached as root: talked to only if its other end is the old QEMU. */
		if (r == 0 && j->qmp_root && (peer < 0 || qu_socket_peer_of(peer, j->old_pid) < 0)) {
			qu_qmp_close(*q);
			*q = NULL;
			r = -EPERM;
		}
		if (peer >= 0)
			close(peer);
	} while (r < 0 && qu_ms_left(deadline) > 0 && usleep(100000) == 0);
	return r;
}

/* An old QEMU that handed the guest over by postcopy has freed what it sent: never resume
 * it. (A "completed" alone proves nothing: a QEMU that was itself a migration target reports
 * its incoming migration's status until it starts one of its own; its run state tells.) */
static int postcopy_gone(const struct qu_journal *j, int known, const char *mig, const char *state)
{
	return (!known && j->postcopy && j->postcopy_asked) || qu_mig_postcopy_status(mig) ||
	       (j->postcopy && !strcmp(mig, "completed") &&
		(!strcmp(state, "postmigrate") || !strcmp(state, "finish-migrate")));
}

static int undo_old(const struct qu_journal *j, struct qu_qmp *q, uint64_t deadline, char *done, size_t len)
{
	struct qu_mig_status mig;
	char state[32] = "";
	int known = qu_mig_query(q, deadline, &mig) == 0;
	qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state));
	if (postcopy_gone(j, known, known ? mig.status : "", state))
		return qu_err(-EIO, "the old QEMU switched to postcopy (status '%s', run state '%s'): not resumed, "
			      "the guest is lost", known ? mig.status : "?", state);
	if (known && qu_mig_cancel(q, deadline) == 1)
		say(done, len, "migration cancelled");
	if (j->mirrors) {
		qu_mirror_abort(q, deadline); /* disk copies to the other host */
		say(done, len, "disk copy cancelled");
	}
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string(QU_MIG_FDNAME));
	qu_qmp_execute(q, "closefd", args, -1, deadline, NULL); /* fails harmlessly if never given */
	if (j->caps_saved && qu_mig_set(q, &j->old_settings, deadline) == 0)
		say(done, len, "migration settings restored");
	if (j->tls) {
		struct qu_tls tls = { .added = 1 };
		qu_tls_remove(q, &tls, deadline);
	}
	int r = qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state));
	if (r == 0 && strcmp(state, "running") && j->was_running) {
		r = qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL);
		say(done, len, r == 0 ? "old QEMU resumed" : "old QEMU could NOT be resumed");
	} else if (r == 0) {
		char what[64];
		snprintf(what, sizeof(what), "old QEMU %s", state);
		say(done, len, what);
	}
	return r;
}

void qu_paths_settle(const struct qu_journal *j, int committed)
{
	const char *rebound[QU_MAX_REBOUND];
	for (size_t i = 0; i < j->nrebound; i++)
		rebound[i] = j->rebound[i];
	qu_pidfile_settle(&j->vm_user, j->pidfile, committed);
	qu_rebound_settle(&j->vm_user, rebound, j->nrebound, committed);
}

int qu_taps_settle(const struct qu_journal *j, struct qu_hold *h, int back)
{
	if (!j->ntapq)
		return 0;
	int mine = back ? h->pidfd_old < 0 : h->pidfd_new < 0;
	int pfd = back ? (mine ? pidfd_of(j->old_pid, j->old_start) : h->pidfd_old)
		       : (mine ? pidfd_of(j->new_pid, j->new_start) : h->pidfd_new);
	if (pfd < 0)
		return 0;
	int n = qu_tap_settle_queues(pfd, back ? j->tapq_old : j->tapq_new, j->tapq_name, j->ntapq, back,
				     j->tap_steered);
	if (mine)
		close(pfd);
	return n;
}

int qu_undo(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline_us, char *done, size_t len)
{
	/* The pidfile names the old QEMU again before the new one dies: a manager that watches
	 * QEMU's connections (Proxmox's qmeventd runs `qm cleanup` when one closes) looks at the
	 * pidfile the moment the new QEMU's connection closes, and a pidfile naming a dead QEMU
	 * makes it tear the running VM down (docs/proxmox.md). The new QEMU is stopped first and
	 * dies by SIGKILL, so it does not unlink the path on its way out (freeze_new). Its VNC
	 * socket's path goes back to the old QEMU's socket the same way. */
	if (qu_new_alive(j, h))
		freeze_new(j, h);
	qu_paths_settle(j, 0);
	if (qu_new_alive(j, h)) {
		qu_stop_new(j, h);
		say(done, len, "new QEMU stopped");
	}
	qu_libvirt_settle(j->old_pid, 0, 0);
	if (!qu_old_alive(j, h)) {
		say(done, len, "old QEMU is gone");
		return qu_err(-ESRCH, "the old QEMU %d is gone: the guest is lost", (int)j->old_pid);
	}
	if (qu_taps_settle(j, h, 1) > 0)
		say(done, len, "the taps' unused queues detached again");
	struct qu_qmp *q = h->old;
	int r = q ? 0 : qu_connect_old(j, deadline_us, &q);
	if (r < 0)
		return qu_err_wrap(r, "cannot reach the old QEMU to resume it");
	r = undo_old(j, q, deadline_us, done, len);
	if (q != h->old)
		qu_qmp_close(q);
	return r;
}

void qu_settings_back_on_new(const struct qu_journal *j, struct qu_hold *h)
{
	uint64_t deadline = qu_now_us() + ANSWER_US;
	struct qu_qmp *mine, *q;
	if (!j->caps_saved || j->remote[0] || !qu_new_alive(j, h) || !(q = ctl_monitor(j, h, deadline, &mine)))
		return;
	if (qu_mig_set(q, &j->old_settings, deadline) < 0)
		qu_info("warning: the new QEMU %d keeps the upgrade's migration settings (x-ignore-shared ...): %s; "
			"set them back with QMP migrate-set-capabilities before migrating or saving it",
			(int)j->new_pid, qu_err_msg());
	qu_qmp_close(mine);
}

void qu_libvirt_committed(const struct qu_journal *j)
{
	/* libvirt's record follows the new QEMU now: its daemon (stopped) must find it there. */
	if (qu_libvirt_settle(j->old_pid, j->new_pid, 1) < 0)
		qu_info("warning: %s: libvirt would take the domain for dead; set pid='%d' in its status file "
			"before its daemon starts", qu_err_msg(), (int)j->new_pid);
}

void qu_retire_old(const struct qu_journal *j, struct qu_hold *h, int wait_exit)
{
	const char *paths[QU_MAX_LISTENERS + 1];
	size_t n = 0;
	for (size_t i = 0; i < j->nlisteners; i++)
		paths[n++] = j->listeners[i];
	paths[n++] = j->pidfile;
	int pfd = h->pidfd_old >= 0 ? h->pidfd_old : pidfd_of(j->old_pid, j->old_start);
	/* A clean exit (SIGTERM) would unlink the socket paths and pidfile the new QEMU now owns
	 * (the hard links below put them back only after the exit: a window without them) and
	 * run tap downscripts on the taps it now uses. The state has moved and the old QEMU's
	 * disks are inactive (flushed when the migration completed): its cleanup is not needed. */
	int sig = j->kill_old ? SIGKILL : SIGTERM;
	if (j->remote[0]) {
		if (pfd >= 0)
			stop_by_pidfd(pfd, sig);
		qu_forget_paths(&j->vm_user, paths, n);
	} else if (sig == SIGKILL && !wait_exit) {
		/* Killed, it unlinks nothing: no links to keep, no exit to wait for. */
		if (pfd >= 0)
			qu_pidfd_kill(pfd, SIGKILL);
		qu_paths_settle(j, 1);
		qu_libvirt_committed(j);
	} else {
		qu_keep_paths(&j->vm_user, paths, n, 1);
		if (pfd >= 0)
			stop_by_pidfd(pfd, sig);
		qu_keep_paths(&j->vm_user, paths, n, 0);
		qu_paths_settle(j, 1);
		qu_libvirt_committed(j);
	}
	if (pfd != h->pidfd_old)
		qu_close(&pfd);
}
