#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/report.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <unistd.h>

/* After a postcopy switch there is no rollback: wait for the pages as long as both QEMUs
 * live (each one's death ends the wait at once). */
#define POSTCOPY_TIMEOUT_US (3600ull * 1000000u)

/* After asking for postcopy, a failure can be rolled back only if the old QEMU itself says
 * its migration failed or was cancelled (then nothing switched, and QEMU resumed it if it
 * ran): 1 when that is certain, 0 otherwise (a switch may have happened or may come). */
int txn_postcopy_called_off(struct qu_txn *t)
{
	struct qu_mig_status m = { .status = "" };
	uint64_t deadline = qu_now_us() + 10000000u;
	while (qu_mig_query(t->old, deadline, &m) == 0 &&
	       (!strcmp(m.status, "setup") || !strcmp(m.status, "active") || !strcmp(m.status, "device")) &&
	       qu_now_us() < deadline)
		usleep(20000);
	return !strcmp(m.status, "failed") || !strcmp(m.status, "cancelled");
}

/* After the switch the new QEMU loads the device state and, started with -S, stays paused
 * for our `cont` (there is no event for that: ask until it says so). */
static int wait_target_switched(struct qu_txn *t)
{
	char state[32];
	for (;;) {
		int r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state));
		if (r < 0) {
			qu_err_wrap(r, "the new QEMU after the postcopy switch");
			txn_add_target_stderr(t);
			return r;
		}
		if (!strcmp(state, "paused") || !strcmp(state, "running"))
			return 0;
		if (strcmp(state, "inmigrate"))
			return qu_err(-EIO, "the new QEMU is in run state '%s' after the postcopy switch", state);
		if (qu_now_us() >= t->deadline)
			return qu_err(-ETIMEDOUT, "the new QEMU did not load the device state after the postcopy switch");
		if (qu_pidfd_wait_exit(t->pidfd_old, qu_now_us() + 300u) == 0)
			return qu_err(-ECHILD, "the old QEMU died right after the postcopy switch");
	}
}

/* Postcopy, the low-memory copy (asked for in start_migration): the old QEMU switches at
 * once (stopped first under TCG before 9.0, where a live phase loses writes), the new QEMU runs the guest while the
 * pages follow on demand and in the background, and the old QEMU frees each page once sent
 * (release-ram). The switch is the point of no return; the old QEMU may go only when it has
 * sent its last page. */
static int postcopy(struct qu_txn *t)
{
	static const char *const switch_end[] = { "postcopy-active", "completed", "failed", "cancelled", NULL };
	json_object *data = NULL, *st;
	int r;
	/* The switch comes within moments, but a stalled one cannot be called off safely. */
	t->deadline = qu_now_us() + POSTCOPY_TIMEOUT_US;
	if ((r = qu_qmp_wait_event(t->old, "MIGRATION", switch_end, t->pidfd_old, t->deadline, &data)) < 0)
		return r;
	const char *status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	/* QEMU checks for the end before the postcopy request: a small guest may be done first. */
	int finished = !strcmp(status, "completed");
	if (strcmp(status, "postcopy-active") && strcmp(status, "completed")) {
		r = qu_err(-EIO, "the old QEMU's migration ended with status '%s' before the postcopy switch", status);
		json_object_put(data);
		qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 1000000u);
		txn_add_target_stderr(t);
		return r;
	}
	json_object_put(data);
	t->switched = 1;
	qu_cancel_enable(0);
	qu_info("postcopy switch: the guest moves to the new QEMU, its pages follow");
	if (qu_fault(QU_FI_POSTCOPY_SWITCHED) < 0)
		qu_info("warning after the postcopy switch: %s; finishing the upgrade", qu_err_msg());
	if ((r = wait_target_switched(t)) < 0)
		return r;
	t->rep->extra_memory_bytes = qu_proc_anon_bytes(t->new_pid);
	if ((r = txn_journal_step(t, QU_PH_RESUMING)) < 0 || (r = txn_resume_target(t)) < 0)
		return r;
	txn_commit(t);
	if (!finished && (r = txn_wait_source(t)) < 0)
		return r;
	r = qu_qmp_wait_event(t->ctl, "MIGRATION", qu_mig_end, t->pidfd_new, t->deadline, &data);
	if (r < 0)
		return qu_err_wrap(r, "the new QEMU did not receive the last pages");
	status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	if (strcmp(status, "completed"))
		r = qu_err(-EIO, "the new QEMU's incoming postcopy ended with status '%s'", status);
	json_object_put(data);
	return r;
}

const struct qu_strategy_ops qu_postcopy_ops = {
	.moving = "copying RAM",
	.prepare = txn_prepare_target,
	.migrate = txn_start_migration, /* asks for the switch right after `migrate` */
	.hand_over = postcopy,
};
