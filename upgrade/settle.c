#include "upgrade/settle.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/paths.h"
#include "remote/blk/mirror.h"
#include "remote/tls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SETTLE_TIMEOUT_US (30u * 1000000u)
#define EXIT_WAIT_US (10u * 1000000u)

static const char *const mig_end[] = { "completed", "failed", "cancelled", NULL };

/* Stops a process that is not our child and waits until it is gone. */
static void stop_process(pid_t pid, unsigned long long start, int sig)
{
	int pfd = qu_pidfd_open(pid);
	if (pfd < 0 || !qu_proc_alive(pid, start)) {
		qu_close(&pfd);
		return;
	}
	qu_pidfd_kill(pfd, sig);
	if (qu_pidfd_wait_exit(pfd, qu_now_us() + EXIT_WAIT_US) < 0 && sig != SIGKILL) {
		qu_pidfd_kill(pfd, SIGKILL);
		qu_pidfd_wait_exit(pfd, qu_now_us() + EXIT_WAIT_US);
	}
	close(pfd);
}

/* Asks the new QEMU (through its private monitor) whether it runs the guest; if the old
 * QEMU died after sending everything, a new QEMU that loaded the state is resumed. */
static int target_runs_guest(const struct qu_journal *j, int old_alive, uint64_t deadline)
{
	struct qu_qmp *q = NULL;
	char state[32] = "";
	int runs = 0;
	if (!j->ctl[0] || qu_qmp_connect(j->ctl, deadline, &q) < 0)
		return 0;
	if (qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state)) == 0) {
		runs = !strcmp(state, "running");
		char mig[32] = "";
		if (!runs && !old_alive && !strcmp(state, "paused") &&
		    qu_qmp_query_string(q, "query-migrate", "status", deadline, mig, sizeof(mig)) == 0 &&
		    !strcmp(mig, "completed") && qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL) == 0)
			runs = 1;
	}
	qu_qmp_close(q);
	return runs;
}

/* Finishing forward: the new QEMU gets the old one's migration settings back, as the tool
 * itself does after its commit (a later save of the VM must not inherit x-ignore-shared). */
static void settings_back_on_new(const struct qu_journal *j)
{
	struct qu_qmp *q = NULL;
	if (!j->caps_saved || !j->ctl[0] || j->new_pid <= 0 || !qu_proc_alive(j->new_pid, j->new_start) ||
	    qu_qmp_connect(j->ctl, qu_now_us() + 5000000u, &q) < 0)
		return;
	if (qu_mig_set(q, &j->old_settings, qu_now_us() + 5000000u) < 0)
		qu_info("warning: the new QEMU %d keeps the upgrade's migration settings: %s", (int)j->new_pid, qu_err_msg());
	qu_qmp_close(q);
}

/* The pidfile's aside copy, settled as the VM's user. */
static void pidfile_settle_as_vm(const struct qu_journal *j, int committed)
{
	qu_pidfile_settle(&j->vm_user, j->pidfile, committed);
}

static void retire_old(const struct qu_journal *j)
{
	const char *paths[QU_MAX_LISTENERS + 1];
	const struct qu_ident *who = &j->vm_user;
	size_t n = 0;
	for (size_t i = 0; i < j->nlisteners; i++)
		paths[n++] = j->listeners[i];
	paths[n++] = j->pidfile;
	if (j->remote[0]) {
		/* The VM lives on another host now: nothing of it stays here. */
		stop_process(j->old_pid, j->old_start, j->kill_old ? SIGKILL : SIGTERM);
		qu_forget_paths(who, paths, n);
		return;
	}
	qu_keep_paths(who, paths, n, 1);
	/* SIGTERM: QEMU shuts down cleanly (it is paused in postmigrate, its disks inactive),
	 * unless that would run a tap downscript on the tap the new QEMU uses. */
	stop_process(j->old_pid, j->old_start, j->kill_old ? SIGKILL : SIGTERM);
	qu_keep_paths(who, paths, n, 0);
	qu_pidfile_settle(who, j->pidfile, 1);
}

/* The VM's own monitor, reached as the VM's user: its path is theirs. */
static int connect_old(const struct qu_journal *j, uint64_t deadline, struct qu_qmp **q)
{
	int fd = qu_connect_as(&j->vm_user, j->qmp);
	return fd < 0 ? fd : qu_qmp_connected(fd, j->qmp, deadline, q);
}

/* With the new QEMU gone, the VM's QMP socket leads to the old QEMU only. */
static int resume_old(const struct qu_journal *j, uint64_t deadline, char *done, size_t len)
{
	struct qu_qmp *q = NULL;
	int r;
	do {
		r = connect_old(j, deadline, &q);
	} while (r < 0 && qu_ms_left(deadline) > 0 && usleep(100000) == 0);
	if (r < 0)
		return qu_err_wrap(r, "cannot reach the old QEMU to resume it");
	char mig[32] = "", state[32] = "";
	int known = qu_qmp_query_string(q, "query-migrate", "status", deadline, mig, sizeof(mig)) == 0;
	qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state));
	/* An old QEMU that handed the guest over by postcopy has freed what it sent: never
	 * resume it. (A "completed" alone proves nothing: a QEMU that was itself a migration
	 * target reports its incoming migration's status until it starts one of its own; its
	 * run state tells them apart.) */
	if ((!known && j->postcopy && j->postcopy_asked) || !strncmp(mig, "postcopy", 8) ||
	    (j->postcopy && !strcmp(mig, "completed") && (!strcmp(state, "postmigrate") || !strcmp(state, "finish-migrate")))) {
		qu_qmp_close(q);
		return qu_err(-EIO, "the old QEMU switched to postcopy (status '%s', run state '%s'): not resumed, "
			      "the guest is lost", mig, state);
	}
	if (mig[0] && strcmp(mig, "completed") && strcmp(mig, "failed") && strcmp(mig, "cancelled") && strcmp(mig, "none")) {
		qu_qmp_execute(q, "migrate_cancel", NULL, -1, deadline, NULL);
		qu_qmp_wait_event(q, "MIGRATION", mig_end, -1, deadline, NULL);
	}
	if (j->mirrors)
		qu_mirror_abort(q, deadline); /* disk copies to the other host */
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string("qemu-upgrade-mig"));
	qu_qmp_execute(q, "closefd", args, -1, deadline, NULL); /* fails harmlessly if never given */
	if (j->caps_saved)
		qu_mig_set(q, &j->old_settings, deadline);
	if (j->tls) {
		struct qu_tls tls = { .added = 1 };
		qu_tls_remove(q, &tls, deadline);
	}
	r = qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state));
	if (r == 0 && strcmp(state, "running") && j->was_running) {
		r = qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL);
		snprintf(done, len, "%s", r == 0 ? "old QEMU resumed" : "old QEMU could NOT be resumed");
	} else if (r == 0) {
		snprintf(done, len, "old QEMU %s", state);
	}
	qu_qmp_close(q);
	return r;
}

/* The old QEMU's migration status, when it alone answers the VM's QMP path (the new QEMU
 * listens on the same socket while it lives: ask this only with the new one gone). */
static int old_status(const struct qu_journal *j, uint64_t deadline, char *mig, size_t len)
{
	struct qu_qmp *q = NULL;
	int r = connect_old(j, deadline, &q);
	if (r == 0)
		r = qu_qmp_query_string(q, "query-migrate", "status", deadline, mig, len);
	qu_qmp_close(q);
	return r;
}

static int switched_status(const char *mig)
{
	return !strncmp(mig, "postcopy", 8) || !strcmp(mig, "completed");
}

/* A postcopy upgrade whose tool died (or failed) after asking for the switch. Once the old
 * QEMU has switched, the guest's pages live in both QEMUs and pages it sent are freed in
 * it: resuming it would run the guest on lost memory, so the only way is forward (let the
 * pages finish, resume the new QEMU, only then retire the old one). Returns 1 when settled
 * (forward, or the guest reported lost), 0 when it is certain that no switch happened (the
 * caller rolls back), -errno when it cannot tell: the journal stays for --recover. */
static int settle_postcopy(const struct qu_journal *j, char *what, size_t len)
{
	struct qu_qmp *q = NULL;
	char mig[32] = "", state[32] = "";
	uint64_t deadline = qu_now_us() + SETTLE_TIMEOUT_US;
	int new_alive = qu_proc_alive(j->new_pid, j->new_start);

	if (!new_alive) {
		/* The channel is broken: an old QEMU that had not switched fails its migration
		 * within moments (and QEMU resumes it if it ran); one that had, keeps it. */
		while (qu_proc_alive(j->old_pid, j->old_start) && old_status(j, deadline, mig, sizeof(mig)) == 0 &&
		       (!strcmp(mig, "active") || !strcmp(mig, "setup") || !strcmp(mig, "device")) && qu_now_us() < deadline)
			usleep(100000);
		if (!strcmp(mig, "failed") || !strcmp(mig, "cancelled"))
			return 0;
		if (!qu_proc_alive(j->old_pid, j->old_start)) {
			snprintf(what, len, "PID %d: both QEMUs are gone during a postcopy upgrade: the guest is lost",
				 (int)j->old_pid);
			return 1;
		}
		if (switched_status(mig)) {
			snprintf(what, len, "PID %d: the new QEMU %d died after the postcopy switch: the guest is lost; "
				 "the old QEMU is left paused (status '%s'), not resumed: its memory is incomplete",
				 (int)j->old_pid, (int)j->new_pid, mig);
			return 1;
		}
		return qu_err(-EAGAIN, "PID %d: postcopy upgrade: cannot tell whether the old QEMU switched "
			      "(status '%s'); left as it is", (int)j->old_pid, mig);
	}
	/* The new QEMU lives: its private monitor says where the migration is. Its main loop may
	 * wait for a page, so keep trying to reach it. */
	while (qu_qmp_connect(j->ctl, qu_now_us() + 5000000u, &q) < 0 && qu_now_us() < deadline &&
	       qu_proc_alive(j->new_pid, j->new_start))
		usleep(200000);
	if (!q)
		return qu_err(-EAGAIN, "PID %d: postcopy upgrade: the new QEMU %d does not answer its monitor; "
			      "left as it is (run qemu-upgrade --recover later)", (int)j->old_pid, (int)j->new_pid);
	/* Asked for but not yet done: the switch comes within moments. */
	while (qu_qmp_query_string(q, "query-migrate", "status", deadline, mig, sizeof(mig)) == 0 &&
	       !switched_status(mig) && strcmp(mig, "failed") && qu_now_us() < deadline)
		usleep(50000);
	if (!strcmp(mig, "failed")) {
		qu_qmp_close(q);
		return 0; /* the new QEMU's incoming migration failed: nothing switched */
	}
	if (!switched_status(mig)) {
		qu_qmp_close(q);
		return qu_err(-EAGAIN, "PID %d: postcopy upgrade: no switch yet (status '%s'); left as it is",
			      (int)j->old_pid, mig);
	}
	/* Switched: the guest must run at once on the new QEMU (its pages follow on demand),
	 * then wait as long as the pages take, while both QEMUs live. */
	if (j->was_running && qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state)) == 0 &&
	    !strcmp(state, "paused"))
		qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL);
	deadline = qu_now_us() + 3600ull * 1000000u;
	while (!strncmp(mig, "postcopy", 8) && qu_proc_alive(j->new_pid, j->new_start) &&
	       qu_proc_alive(j->old_pid, j->old_start) && qu_now_us() < deadline) {
		usleep(100000);
		char now[32];
		if (qu_qmp_query_string(q, "query-migrate", "status", deadline, now, sizeof(now)) == 0)
			snprintf(mig, sizeof(mig), "%s", now);
	}
	if (strcmp(mig, "completed")) {
		snprintf(what, len, "PID %d: postcopy did not complete (status '%s'%s): the guest's state is split "
			 "between the old QEMU %d and the new QEMU %d and is likely lost; both left as they are",
			 (int)j->old_pid, mig, qu_proc_alive(j->old_pid, j->old_start) ? "" : ", the old QEMU died",
			 (int)j->old_pid, (int)j->new_pid);
		qu_qmp_close(q);
		return 1;
	}
	if (qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state)) == 0 &&
	    !strcmp(state, "paused") && j->was_running)
		qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL);
	qu_qmp_close(q);
	settings_back_on_new(j);
	/* The old QEMU's last page went out before the new one completed. */
	if (qu_proc_alive(j->old_pid, j->old_start))
		retire_old(j);
	else
		pidfile_settle_as_vm(j, 1);
	snprintf(what, len, "PID %d: finished the postcopy upgrade: new QEMU %d runs the guest, old QEMU retired",
		 (int)j->old_pid, (int)j->new_pid);
	return 1;
}

int qu_settle(const struct qu_journal *j, char *what, size_t len)
{
	uint64_t deadline = qu_now_us() + SETTLE_TIMEOUT_US;
	int old_alive = qu_proc_alive(j->old_pid, j->old_start);
	int new_alive = j->new_pid > 0 && qu_proc_alive(j->new_pid, j->new_start);
	int committed = j->phase == QU_PH_COMMITTED || j->phase == QU_PH_RETIRED;
	int r = 0;

	if (j->remote[0] && j->phase == QU_PH_RESUMING) {
		/* The agent there was asked to resume the guest and nobody heard its answer: the old
		 * QEMU must never run it again. */
		snprintf(what, len, "PID %d: upgrade to %s: the agent there was asked to resume the guest; the old "
			 "QEMU is left paused and will not be resumed: check on %s that the guest runs, then kill PID %d",
			 (int)j->old_pid, j->remote, j->remote, (int)j->old_pid);
		qu_journal_remove(j->old_pid);
		return 0;
	}

	if (j->postcopy && j->postcopy_asked && j->phase >= QU_PH_POSTCOPY && j->phase <= QU_PH_COMMITTED) {
		r = settle_postcopy(j, what, len);
		if (r < 0) {
			snprintf(what, len, "%s", qu_err_msg());
			return r; /* the journal stays */
		}
		if (r == 1) {
			if (j->ctl[0])
				unlink(j->ctl);
			qu_journal_remove(j->old_pid);
			return 0;
		}
		r = 0; /* certainly not switched: roll back below */
		new_alive = qu_proc_alive(j->new_pid, j->new_start);
		old_alive = qu_proc_alive(j->old_pid, j->old_start);
		committed = 0;
	}
	if (!committed && new_alive && (j->phase == QU_PH_SOURCE_COMPLETED || j->phase == QU_PH_RESUMING))
		committed = target_runs_guest(j, old_alive, deadline);
	if (j->phase == QU_PH_ROLLED_BACK || (j->phase == QU_PH_RETIRED && !old_alive)) {
		snprintf(what, len, "PID %d: nothing to do (%s)", (int)j->old_pid, qu_phase_name(j->phase));
	} else if (committed) {
		settings_back_on_new(j);
		if (old_alive)
			retire_old(j);
		else
			pidfile_settle_as_vm(j, 1);
		snprintf(what, len, "PID %d: finished the upgrade: new QEMU %d runs the guest, old QEMU retired",
			 (int)j->old_pid, (int)j->new_pid);
	} else {
		char done[64] = "old QEMU is gone";
		if (new_alive)
			stop_process(j->new_pid, j->new_start, SIGKILL);
		pidfile_settle_as_vm(j, 0);
		if (old_alive)
			r = resume_old(j, deadline, done, sizeof(done));
		snprintf(what, len, "PID %d: rolled back from phase %s: %snew QEMU stopped, %s%s%s",
			 (int)j->old_pid, qu_phase_name(j->phase), new_alive ? "" : "no ", done,
			 r < 0 ? ": " : "", r < 0 ? qu_err_msg() : "");
	}
	if (j->ctl[0])
		unlink(j->ctl);
	if (r == 0)
		qu_journal_remove(j->old_pid);
	return r;
}
