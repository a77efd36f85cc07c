#include "upgrade/libvirtgate.h"
#include "qemu-integration/argv.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/report.h"
#include "upgrade/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int lock_fd = -1; /* inherited by the children of an --all batch that holds it */

int qu_libvirt_lock(uint64_t deadline_us)
{
	char path[512];
	if (lock_fd >= 0)
		return 0;
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "%s: %s", qu_state_dir(), strerror(errno));
	snprintf(path, sizeof(path), "%s/libvirt.lock", qu_state_dir());
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return qu_err(-errno, "%s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK || qu_now_us() >= deadline_us) {
			int e = errno == EWOULDBLOCK ? EBUSY : errno;
			close(fd);
			return qu_err(-e, "another qemu-upgrade is upgrading a libvirt domain (it holds %s, and may start "
				      "libvirt's daemon again at any moment): try again when it is done", path);
		}
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	lock_fd = fd;
	return 0;
}

void qu_libvirt_unlock(void)
{
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -1;
}

void qu_libvirt_lock_forget(void)
{
	lock_fd = -1;
}

/* The VM's command line and cgroups, read by PID: what detection needs before any monitor is
 * touched (the daemon may hold it). */
int qu_libvirt_detect_pid(pid_t pid, struct qu_libvirt *lv)
{
	char path[64], *cmd = NULL, *cg = NULL;
	size_t len;
	struct qu_argv argv = { 0 };
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (qu_read_file(path, &cmd, &len) < 0)
		return 0; /* inspect says what is wrong with the process */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (qu_read_file(path, &cg, NULL) < 0)
		cg = NULL;
	int r = qu_argv_from_cmdline(cmd, len, &argv) < 0 ? 0 : qu_libvirt_detect(pid, &argv, cg, lv);
	qu_argv_free(&argv);
	free(cmd);
	free(cg);
	return r;
}

int qu_libvirt_gate_open(pid_t pid, int dry_run, int restart_ok, int remote, uint64_t deadline_us,
			 struct qu_libvirt_gate *g, struct qu_report_libvirt *rep)
{
	memset(g, 0, sizeof(*g));
	memset(rep, 0, sizeof(*rep));
	int r = qu_libvirt_detect_pid(pid, &g->lv);
	if (r <= 0)
		return r;
	rep->is = 1;
	snprintf(rep->domain, sizeof(rep->domain), "%s", g->lv.name);
	snprintf(rep->status, sizeof(rep->status), "%s", g->lv.status);
	if (remote)
		return qu_err(-EOPNOTSUPP, "PID %d is libvirt's domain %s: move it to another host with `virsh migrate`, "
			      "which keeps libvirt's record on both hosts (--remote would leave libvirt here a domain "
			      "that is gone)", (int)pid, g->lv.name);
	r = qu_libvirtd_find(&g->daemon);
	/* Unless refused at once (the daemon runs, no restart allowed): the lock, then the daemon
	 * looked at again (the upgrade waited for may have started it). */
	if (r >= 0 && !dry_run && lock_fd < 0 && !(r > 0 && !restart_ok)) {
		if ((r = qu_libvirt_lock(deadline_us)) < 0)
			return r;
		g->locked = 1;
		r = qu_libvirtd_find(&g->daemon);
	}
	if (r < 0)
		return r;
	g->daemon_running = r;
	if (!r) {
		snprintf(rep->action, sizeof(rep->action), "libvirt domain %s: no libvirt daemon running: %s, rewrite pid= in "
			 "%s%s%s", g->lv.name, dry_run ? "would upgrade" : "upgrade", g->lv.status,
			 g->lv.pidfile[0] ? " and " : "", g->lv.pidfile);
		return dry_run ? 0 : qu_libvirt_record(&g->lv, pid);
	}
	snprintf(rep->daemon, sizeof(rep->daemon), "%s", g->daemon.name);
	rep->daemon_pid = g->daemon.pid;
	if (!restart_ok) {
		snprintf(rep->action, sizeof(rep->action), "libvirt domain %s: daemon %s (PID %d) running: refused",
			 g->lv.name, g->daemon.name, (int)g->daemon.pid);
		snprintf(g->refusal, sizeof(g->refusal), "PID %d is libvirt's domain %s, and %s (PID %d) runs and holds "
			 "its monitor: give --libvirt-restart to have qemu-upgrade stop %s, upgrade, rewrite pid= in %s "
			 "and start %s again (its VMs keep running meanwhile), or stop %s yourself", (int)pid, g->lv.name,
			 g->daemon.name, (int)g->daemon.pid, g->daemon.name, g->lv.status, g->daemon.name,
			 g->daemon.name);
		/* A dry run goes on without the monitor, to name every other blocker too. */
		return dry_run ? 1 : qu_err(-EOPNOTSUPP, "%s", g->refusal);
	}
	snprintf(rep->action, sizeof(rep->action), "libvirt domain %s: daemon %s (PID %d) running: %s%s, upgrade, "
		 "rewrite pid= in %s%s%s, %s it", g->lv.name, g->daemon.name, (int)g->daemon.pid,
		 dry_run ? "would stop it" : "stop it", g->daemon.unit[0] ? " (systemctl)" : "", g->lv.status,
		 g->lv.pidfile[0] ? " and " : "", g->lv.pidfile, g->daemon.unit[0] ? "systemctl start" : "restart");
	if (dry_run)
		return 1;
	if ((r = qu_libvirt_record(&g->lv, pid)) < 0)
		return r;
	r = qu_libvirtd_stop(&g->daemon, deadline_us);
	rep->stopped = g->daemon.stopped;
	return r;
}

int qu_libvirt_gate_close(struct qu_libvirt_gate *g, pid_t old_pid, pid_t new_pid, int committed,
			  struct qu_report_libvirt *rep)
{
	int r = 0;
	if (!g->lv.is)
		return 0;
	/* What follows must happen even after a Ctrl-C: the daemon comes back. */
	qu_cancel_enable(0);
	if (committed && new_pid > 0 && new_pid != old_pid) {
		/* The retirement rewrote it (upgrade/undo.c); if it could not, once more here. */
		pid_t now = 0;
		r = qu_libvirt_settle(old_pid, new_pid, 1);
		if (r >= 0 && (r = qu_libvirt_recorded_pid(&g->lv, &now)) == 0 && now != new_pid)
			r = qu_err(-ESTALE, "%s names PID %d", g->lv.status, (int)now);
		rep->rewritten = r == 0;
		if (r < 0) {
			/* Started now, the daemon would take the domain for dead, delete its state and
			 * leave the guest running as an orphan: it stays stopped, and the message says so. */
			r = qu_err_wrap(r, "libvirt domain %s: the new QEMU (PID %d) runs the guest, but its status file "
					"still names PID %d%s: set pid='%d' in %s by hand%s", g->lv.name, (int)new_pid,
					(int)old_pid, g->daemon.stopped ? ", so libvirt's daemon stays stopped" : "",
					(int)new_pid, g->lv.status, g->daemon.stopped ? ", then start it" : "");
			snprintf(rep->error, sizeof(rep->error), "%s", qu_err_msg());
			return r;
		}
	} else {
		qu_libvirt_settle(old_pid, 0, 0); /* nothing committed: the record goes */
	}
	if (g->daemon.stopped) {
		r = qu_libvirtd_start(&g->daemon, qu_now_us() + 60ull * 1000000u);
		if (r == 0) {
			struct qu_libvirtd now;
			rep->restarted = 1;
			if (qu_libvirtd_find(&now) > 0)
				rep->daemon_new_pid = now.pid;
		} else {
			snprintf(rep->error, sizeof(rep->error), "%s", qu_err_msg());
		}
	}
	if (g->locked)
		qu_libvirt_unlock();
	g->locked = 0;
	return r;
}
