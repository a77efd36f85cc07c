#include "upgrade/decision.h"

/* Before the old QEMU sent everything, only it holds the whole guest. */
static enum qu_settle_way back_or_lost(const struct qu_settle_facts *f)
{
	return f->old_alive ? QU_SETTLE_BACK : QU_SETTLE_LOST;
}

/* --remote: the new QEMU's PID is not ours to watch. Once the agent was asked to resume
 * the guest there, only its own "did not" lets the old QEMU run it again. */
static enum qu_settle_way remote_way(const struct qu_settle_facts *f)
{
	if (f->phase >= QU_PH_COMMITTED)
		return QU_SETTLE_FORWARD;
	if (f->phase == QU_PH_RESUMING && !f->remote_refused)
		return QU_SETTLE_LEAVE_PAUSED;
	return back_or_lost(f);
}

/* After the commit (`cont` answered) the guest has run on the new QEMU: its RAM and disks
 * moved on, so the old QEMU's state is stale and it must never run the guest again. */
static enum qu_settle_way committed_way(const struct qu_settle_facts *f)
{
	switch (f->new_state) {
	case QU_NEW_SILENT:
		return QU_SETTLE_UNKNOWN;
	case QU_NEW_GONE:
	case QU_NEW_NONE:
		return f->old_alive ? QU_SETTLE_LEAVE_PAUSED : QU_SETTLE_LOST;
	default:
		return QU_SETTLE_FORWARD; /* it answers: the guest is there, whatever its run state */
	}
}

/* Between the old QEMU's last byte and the commit: the new QEMU says whether it runs. */
static enum qu_settle_way handover_way(const struct qu_settle_facts *f)
{
	switch (f->new_state) {
	case QU_NEW_RUNNING:
		return QU_SETTLE_FORWARD;
	case QU_NEW_OTHER:
		/* Asked to run (resuming) and then stopped: the guest ran there. */
		return f->phase == QU_PH_RESUMING ? QU_SETTLE_FORWARD : back_or_lost(f);
	case QU_NEW_LOADED:
		return f->old_alive ? QU_SETTLE_BACK : QU_SETTLE_RESUME_NEW;
	case QU_NEW_SILENT:
		/* cont sent and no answer: it may run the guest; resuming the old QEMU as well
		 * would run it twice. */
		return f->phase == QU_PH_RESUMING ? QU_SETTLE_UNKNOWN : back_or_lost(f);
	default:
		/* Gone (or never got there): the old QEMU still has all of it. A new QEMU that died
		 * within its `cont` may have run the guest for that moment: the one risk left, as
		 * small as the window between the last check that it answers and the `cont`. */
		return back_or_lost(f);
	}
}

enum qu_settle_way qu_settle_decide(const struct qu_settle_facts *f)
{
	switch (f->phase) {
	case QU_PH_PLANNED:
	case QU_PH_ROLLED_BACK:
		return QU_SETTLE_NOTHING;
	case QU_PH_RETIRED:
		return f->old_alive ? QU_SETTLE_FORWARD : QU_SETTLE_NOTHING;
	default:
		break;
	}
	if ((int)f->phase < QU_PH_PLANNED || f->phase > QU_PH_ROLLED_BACK)
		return QU_SETTLE_UNKNOWN; /* a journal of another version */
	if (f->remote)
		return remote_way(f);
	if (f->postcopy_asked && f->phase >= QU_PH_POSTCOPY && f->phase <= QU_PH_COMMITTED)
		return QU_SETTLE_POSTCOPY;
	if (f->phase == QU_PH_COMMITTED)
		return committed_way(f);
	if (f->phase == QU_PH_SOURCE_COMPLETED || f->phase == QU_PH_RESUMING)
		return handover_way(f);
	return back_or_lost(f);
}

const char *qu_settle_way_name(enum qu_settle_way way)
{
	static const char *const names[] = {
		[QU_SETTLE_NOTHING] = "nothing", [QU_SETTLE_BACK] = "back", [QU_SETTLE_FORWARD] = "forward",
		[QU_SETTLE_RESUME_NEW] = "resume-new", [QU_SETTLE_POSTCOPY] = "postcopy",
		[QU_SETTLE_LEAVE_PAUSED] = "leave-paused", [QU_SETTLE_UNKNOWN] = "unknown", [QU_SETTLE_LOST] = "lost",
	};
	return (unsigned)way < sizeof(names) / sizeof(names[0]) && names[way] ? names[way] : "?";
}

const char *qu_new_state_name(enum qu_new_state state)
{
	static const char *const names[] = {
		[QU_NEW_NONE] = "none", [QU_NEW_GONE] = "gone", [QU_NEW_SILENT] = "silent",
		[QU_NEW_INCOMING] = "incoming", [QU_NEW_LOADED] = "loaded", [QU_NEW_RUNNING] = "running",
		[QU_NEW_OTHER] = "other",
	};
	return (unsigned)state < sizeof(names) / sizeof(names[0]) && names[state] ? names[state] : "?";
}
