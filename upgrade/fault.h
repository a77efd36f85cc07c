/* Fault injection for tests: QEMU_UPGRADE_FAULT=N makes numbered fault point N fail as if
 * the step there had failed (-EIO); QEMU_UPGRADE_FAULT=N:kill makes the tool SIGKILL itself
 * there, to prove that the guardian settles what it leaves; QEMU_UPGRADE_FAULT=N:wait makes
 * it wait there for a signal (SIGINT, SIGTERM, SIGHUP), to prove they roll back;
 * QEMU_UPGRADE_FAULT=N:pause=MS stops there for MS milliseconds and goes on (time for a test
 * to kill a QEMU at that point). The points are the journal's
 * phases (docs/faults.md). */
#ifndef QU_FAULT_H
#define QU_FAULT_H

enum qu_fault_point {
	QU_FI_PLANNED = 1,          /* journal written, nothing touched */
	QU_FI_TARGET_STARTED = 2,   /* new QEMU started, paused */
	QU_FI_TARGET_PREPARED = 3,  /* new QEMU waits for the stream */
	QU_FI_MIGRATING = 4,        /* migrate issued on the old QEMU */
	QU_FI_SOURCE_COMPLETED = 5, /* old QEMU sent everything, paused */
	QU_FI_TARGET_LOADED = 6,    /* new QEMU loaded the state, paused */
	QU_FI_COMMITTED = 7,        /* new QEMU runs the guest */
	QU_FI_RETIRED = 8,          /* old QEMU gone */
	QU_FI_POSTCOPY_SWITCHED = 9, /* postcopy: the old QEMU switched, pages still move */
	/* In `qemu-upgrade agent` (set in the agent's environment): */
	QU_FI_AGENT_BEFORE_CONT = 10, /* the state is loaded there, the guest not yet resumed */
	QU_FI_AGENT_AFTER_CONT = 11,  /* the guest runs there, its answer not yet sent */
	/* In the tool again: */
	QU_FI_INSPECT_PINNED = 12,  /* the PID is pinned (pidfd), nothing read yet */
};

/* 0, or -EIO (with a message) when the environment names this point. */
int qu_fault(enum qu_fault_point point);

#endif
