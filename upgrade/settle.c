#include "upgrade/settle.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/log.h"
#include "upgrade/paths.h"
#include "upgrade/undo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SETTLE_TIMEOUT_US (30u * 1000000u)

/* The old QEMU's migration status, when it alone answers the VM's QMP path (the new QEMU
 * listens on the same socket while it lives: ask this only with the new one gone). */
static int mig_status(struct qu_qmp *q, uint64_t deadline, char *mig, size_t len)
{
	struct qu_mig_status s;
	int r = qu_mig_query(q, deadline, &s);
	if (r == 0)
		snprintf(mig, len, "%s", s.status);
	return r;
}

static int old_status(const struct qu_journal *j, uint64_t deadline, char *mig, size_t len)
{
	struct qu_qmp *q = NULL;
	struct qu_mig_status s;
	int r = qu_connect_old(j, deadline, &q);
	if (r == 0 && (r = qu_mig_query(q, deadline, &s)) == 0)
		snprintf(mig, len, "%s", s.status);
	qu_qmp_close(q);
	return r;
}

static int switched_status(const char *mig)
{
	return qu_mig_postcopy_status(mig) || !strcmp(mig, "completed");
}

/* A postcopy upgrade whose tool died (or failed) after asking for the switch. Once the old
 * QEMU has switched, the guest's pages live in both QEMUs and pages it sent are freed in
 * it: resuming it would run the guest on lost memory, so the only way is forward (let the
 * pages finish, resume the new QEMU, only then retire the old one). Returns 1 when settled
 * (forward, or the guest reported lost), 0 when it is certain that no switch happened (the
 * caller rolls back), -errno when it cannot tell: the journal stays for --recover. */
static int settle_postcopy(const struct qu_journal *j, struct qu_hold *h, char *what, size_t len)
{
	struct qu_qmp *q = NULL;
	char mig[32] = "", state[32] = "";
	uint64_t deadline = qu_now_us() + SETTLE_TIMEOUT_US;
	int new_alive = qu_new_alive(j, h);

	if (!new_alive) {
		/* The channel is broken: an old QEMU that had not switched fails its migration
		 * within moments (and QEMU resumes it if it ran); one that had, keeps it. */
		while (qu_old_alive(j, h) && old_status(j, deadline, mig, sizeof(mig)) == 0 &&
		       (!strcmp(mig, "active") || !strcmp(mig, "setup") || !strcmp(mig, "device")) && qu_now_us() < deadline)
			usleep(100000);
		if (!strcmp(mig, "failed") || !strcmp(mig, "cancelled"))
			return 0;
		if (!qu_old_alive(j, h)) {
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
	       qu_new_alive(j, h))
		usleep(200000);
	if (!q)
		return qu_err(-EAGAIN, "PID %d: postcopy upgrade: the new QEMU %d does not answer its monitor; "
			      "left as it is (run qemu-upgrade --recover later)", (int)j->old_pid, (int)j->new_pid);
	/* Asked for but not yet done: the switch comes within moments. */
	while (mig_status(q, deadline, mig, sizeof(mig)) == 0 &&
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
	while (!strncmp(mig, "postcopy", 8) && qu_new_alive(j, h) &&
	       qu_old_alive(j, h) && qu_now_us() < deadline) {
		usleep(100000);
		char now[32];
		if (mig_status(q, deadline, now, sizeof(now)) == 0)
			snprintf(mig, sizeof(mig), "%s", now);
	}
	if (strcmp(mig, "completed")) {
		snprintf(what, len, "PID %d: postcopy did not complete (status '%s'%s): the guest's state is split "
			 "between the old QEMU %d and the new QEMU %d and is likely lost; both left as they are",
			 (int)j->old_pid, mig, qu_old_alive(j, h) ? "" : ", the old QEMU died",
			 (int)j->old_pid, (int)j->new_pid);
		qu_qmp_close(q);
		return 1;
	}
	if (qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state)) == 0 &&
	    !strcmp(state, "paused") && j->was_running)
		qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL);
	qu_qmp_close(q);
	qu_settings_back_on_new(j, h);
	/* The old QEMU's last page went out before the new one completed. */
	if (qu_old_alive(j, h)) {
		qu_retire_old(j, h, 1);
	} else {
		qu_paths_settle(j, 1);
		qu_libvirt_committed(j);
	}
	snprintf(what, len, "PID %d: finished the postcopy upgrade: new QEMU %d runs the guest, old QEMU retired",
		 (int)j->old_pid, (int)j->new_pid);
	return 1;
}

/* Settled (r == 0): the journal and the private monitor's path go. Otherwise the journal
 * stays for --recover. */
static int finished(const struct qu_journal *j, int r)
{
	if (r == -EAGAIN)
		return r;
	if (j->ctl[0])
		unlink(j->ctl);
	if (r == 0)
		qu_journal_remove(j->old_pid);
	return r;
}

/* settle_postcopy's outcome: 1 settled (forward, or the guest reported lost), -errno when
 * it cannot tell (the journal stays). */
static int postcopy_settled(const struct qu_journal *j, int r, char *what, size_t len, enum qu_settle_way *way)
{
	if (r < 0) {
		snprintf(what, len, "%s", qu_err_msg());
		if (way)
			*way = QU_SETTLE_UNKNOWN;
		return -EAGAIN;
	}
	if (way)
		*way = strstr(what, "finished the postcopy upgrade") ? QU_SETTLE_FORWARD : QU_SETTLE_LOST;
	return finished(j, 0);
}

/* What the journal and the two processes say now. */
static void facts_of(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline, struct qu_settle_facts *f)
{
	*f = (struct qu_settle_facts){ .phase = j->phase, .remote = j->remote[0] != '\0',
				       .postcopy_asked = j->postcopy && j->postcopy_asked,
				       .old_alive = qu_old_alive(j, h) };
	/* Ask the new QEMU only where its answer decides (its monitor may be slow to answer). */
	if (j->phase >= QU_PH_SOURCE_COMPLETED && j->phase <= QU_PH_COMMITTED)
		f->new_state = qu_new_state(j, h, deadline);
	else
		f->new_state = qu_new_alive(j, h) ? QU_NEW_INCOMING : (j->new_pid > 0 ? QU_NEW_GONE : QU_NEW_NONE);
}

/* The old QEMU died after sending everything; the new one loaded it: it runs the guest now. */
static int resume_new(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline)
{
	struct qu_qmp *q = h->ctl;
	int r = q ? 0 : qu_qmp_connect(j->ctl, deadline, &q);
	if (r == 0)
		r = qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL);
	if (q != h->ctl)
		qu_qmp_close(q);
	return r;
}

/* The new QEMU has the guest: it gets the old one's migration settings, and the old QEMU
 * (if it still lives) goes; the paths and pidfile end as the new QEMU's either way. */
static void forward(const struct qu_journal *j, struct qu_hold *h)
{
	qu_settings_back_on_new(j, h);
	qu_taps_settle(j, h, 0);
	qu_retire_old(j, h, 1);
}

int qu_settle_held(const struct qu_journal *j, struct qu_hold *h, int remote_refused, char *what, size_t len,
		   enum qu_settle_way *way_out)
{
	uint64_t deadline = qu_now_us() + SETTLE_TIMEOUT_US;
	struct qu_settle_facts f;
	if (j->cpr_exec && j->phase >= QU_PH_MIGRATING && j->phase < QU_PH_RETIRED) {
		enum qu_settle_way way;
		int r = qu_cpr_exec_settle(j, h, what, len, &way);
		if (way_out)
			*way_out = way;
		return finished(j, r);
	}
	facts_of(j, h, deadline, &f);
	f.remote_refused = remote_refused;
	enum qu_settle_way way = qu_settle_decide(&f);
	int old = (int)j->old_pid, r = 0;
	qu_debug("settling PID %d at phase %s: old QEMU %s, new QEMU %s: %s", old, qu_phase_name(j->phase),
		 f.old_alive ? "alive" : "gone", qu_new_state_name(f.new_state), qu_settle_way_name(way));
	if (way == QU_SETTLE_POSTCOPY) {
		/* Settled by the postcopy rules, which say what they did; or certainly not
		 * switched: the usual rules, as if postcopy had never been asked for. */
		r = settle_postcopy(j, h, what, len);
		if (r != 0)
			return postcopy_settled(j, r, what, len, way_out);
		facts_of(j, h, deadline, &f);
		f.postcopy_asked = 0;
		way = qu_settle_decide(&f);
	}
	char done[256] = "";
	switch (way) {
	case QU_SETTLE_POSTCOPY:
		break; /* not reached: decided without postcopy above */
	case QU_SETTLE_NOTHING:
		snprintf(what, len, "PID %d: nothing to do (%s)", old, qu_phase_name(j->phase));
		break;
	case QU_SETTLE_RESUME_NEW:
		if ((r = resume_new(j, h, deadline)) < 0) {
			snprintf(what, len, "PID %d: the old QEMU is gone and the new QEMU %d, which loaded the guest, "
				 "could not be resumed: %s", old, (int)j->new_pid, qu_err_msg());
			way = QU_SETTLE_UNKNOWN;
			break;
		}
		/* fall through */
	case QU_SETTLE_FORWARD:
		forward(j, h);
		snprintf(what, len, "PID %d: finished the upgrade: new QEMU %d runs the guest, old QEMU retired", old,
			 (int)j->new_pid);
		break;
	case QU_SETTLE_BACK:
		r = qu_undo(j, h, deadline, done, sizeof(done));
		snprintf(what, len, "PID %d: rolled back from phase %s: %s%s%s", old, qu_phase_name(j->phase), done,
			 r < 0 ? ": " : "", r < 0 ? qu_err_msg() : "");
		break;
	case QU_SETTLE_LEAVE_PAUSED:
		if (j->remote[0]) {
			snprintf(what, len, "PID %d: upgrade to %s: the agent there was asked to resume the guest; the old "
				 "QEMU is left paused and will not be resumed: check on %s that the guest runs, then kill "
				 "PID %d", old, j->remote, j->remote, old);
			break;
		}
		qu_paths_settle(j, 0);
		snprintf(what, len, "PID %d: the new QEMU %d died after it took over the guest (the commit point): the "
			 "guest is lost; the old QEMU is left paused with the guest as it was at the handover, not "
			 "resumed, since the guest has run on since (its memory and disks moved on); resume it (QMP "
			 "cont) only if you accept that, or kill PID %d", old, (int)j->new_pid, old);
		break;
	case QU_SETTLE_UNKNOWN:
		snprintf(what, len, "PID %d: cannot tell whether the new QEMU %d runs the guest (it lives but does not "
			 "answer its monitor at phase %s): both left as they are; run qemu-upgrade --recover later", old,
			 (int)j->new_pid, qu_phase_name(j->phase));
		break;
	case QU_SETTLE_LOST:
		if (qu_new_alive(j, h))
			qu_stop_new(j, h); /* it never got the whole guest */
		qu_paths_settle(j, 0);
		snprintf(what, len, "PID %d: the old QEMU died at phase %s, before the new QEMU had the whole guest: "
			 "the guest is lost", old, qu_phase_name(j->phase));
		break;
	}
	if (way_out)
		*way_out = way;
	return finished(j, way == QU_SETTLE_UNKNOWN ? -EAGAIN : r);
}

int qu_settle(const struct qu_journal *j, char *what, size_t len)
{
	struct qu_hold h = QU_HOLD_NONE;
	what[0] = '\0';
	return qu_settle_held(j, &h, 0, what, len, NULL);
}
