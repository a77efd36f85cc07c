/* Settling a cpr-exec (--keep-pid) journal: one process, old image or new (upgrade/settle.h). */
#include "upgrade/pageflip/cprexec.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/log.h"
#include "upgrade/settle.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Settling a cpr-exec upgrade from the journal and the one process: the tool's own failure
 * path, the guardian and --recover. The process tells where it is: the old image (its
 * migration failed, or it is still saving, or it saved and is about to exec), the new image
 * waiting for its state (then the way is forward: load it), or the new image running. */
static int transitional(struct qu_qmp *q, uint64_t deadline, char *state, size_t len)
{
	struct qu_mig_status m;
	if (qu_qmp_query_string(q, "query-status", "status", deadline, state, len) < 0 || qu_mig_query(q, deadline, &m) < 0)
		return -1; /* gone from under us: the exec, or the process's end */
	/* Saving, or saved and about to exec (postmigrate): its monitor closes in moments. */
	return qu_mig_running(m.status) || (!strcmp(m.status, "completed") && strcmp(state, "running") &&
					    strcmp(state, "inmigrate"));
}

int qu_cpr_exec_settle(const struct qu_journal *j, struct qu_hold *h, char *what, size_t len, enum qu_settle_way *way)
{
	uint64_t deadline = qu_now_us() + 30u * 1000000u;
	int pid = (int)j->old_pid, r = 0, t = -1;
	struct qu_qmp *mine = NULL, *q = NULL;
	char state[32] = "";
	*way = QU_SETTLE_UNKNOWN;
	/* A monitor serves one client at a time: a connection the caller holds goes first. */
	struct qu_qmp *held[2] = { h->ctl, h->old };
	for (int i = 0; i < 2 && !q; i++)
		if (held[i] && (t = transitional(held[i], deadline, state, sizeof(state))) == 0)
			q = held[i];
	while (!q) {
		if (!qu_old_alive(j, h)) {
			*way = QU_SETTLE_LOST;
			snprintf(what, len, "PID %d: QEMU died during its cpr-exec upgrade (phase %s): the guest is lost",
				 pid, qu_phase_name(j->phase));
			return -ESRCH;
		}
		qu_qmp_close(mine);
		mine = NULL;
		if (qu_now_us() >= deadline || cpr_exec_reconnect(j, h, -1, deadline, &mine) < 0) {
			snprintf(what, len, "PID %d: cpr-exec upgrade at phase %s: QEMU does not answer its monitor "
				 "(%s); left as it is: run qemu-upgrade --recover", pid, qu_phase_name(j->phase),
				 qu_err_msg());
			qu_qmp_close(mine);
			return -EAGAIN;
		}
		if ((t = transitional(mine, deadline, state, sizeof(state))) == 0)
			q = mine;
		else
			usleep(20000);
	}
	if (!strcmp(state, "inmigrate")) {
		/* The exec happened: the new image waits for the state. */
		int64_t resumed;
		if ((r = cpr_exec_load_state(j, q, h->pidfd_old, deadline, &resumed, -1)) < 0) {
			*way = QU_SETTLE_LOST;
			snprintf(what, len, "PID %d: after the exec, the new image could not load the saved state: %s; "
				 "the guest does not run", pid, qu_err_msg());
			qu_qmp_close(mine);
			return r;
		}
		*way = QU_SETTLE_FORWARD;
	} else {
		/* The new image loaded the state (only after the journal said resuming), or the old
		 * one runs on (its exec failed, or it never began; a "completed" it reports may be
		 * an earlier upgrade's): either way it gets its settings back, and runs. */
		*way = j->phase >= QU_PH_RESUMING ? QU_SETTLE_FORWARD : QU_SETTLE_BACK;
		/* Back in the old image: the state file's descriptor set is ours to take out (it
		 * would stand in the way of the next --keep-pid). */
		if (*way == QU_SETTLE_BACK && j->cpr_fdset >= 0)
			cpr_exec_remove_fdset(q, j->cpr_fdset, deadline);
		if (strcmp(state, "running") && j->was_running && (r = qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL)) < 0) {
			*way = QU_SETTLE_UNKNOWN;
			snprintf(what, len, "PID %d: cpr-exec upgrade: QEMU is in run state '%s' and could not be resumed: %s",
				 pid, state, qu_err_msg());
			qu_qmp_close(mine);
			return -EAGAIN;
		}
	}
	if (j->caps_saved && qu_mig_set(q, &j->old_settings, deadline) < 0)
		qu_info("warning: QEMU PID %d keeps the upgrade's migration settings (mode cpr-exec): %s", pid, qu_err_msg());
	qu_qmp_close(mine);
	if (*way == QU_SETTLE_FORWARD)
		snprintf(what, len, "PID %d: finished the cpr-exec upgrade: the new binary runs the guest in the same PID",
			 pid);
	else
		snprintf(what, len, "PID %d: rolled back from phase %s: the old QEMU runs the guest on in the same PID, "
			 "its migration settings restored", pid, qu_phase_name(j->phase));
	return 0;
}
