/* Which way an interrupted or failed upgrade settles: a pure function of what the journal
 * says and what the two QEMU processes are now. The tool's own failure path, the guardian and
 * `--recover` all take this one decision (upgrade/settle.c gathers the facts and acts on it);
 * the phase table of docs/faults.md is its unit test (tests/unit/test-decision.c). */
#ifndef QU_DECISION_H
#define QU_DECISION_H

#include "upgrade/journal.h"

/* The new QEMU as its pidfd and its private monitor show it. */
enum qu_new_state {
	QU_NEW_NONE,      /* never started, or not ours to ask (on another host) */
	QU_NEW_GONE,      /* it exited */
	QU_NEW_SILENT,    /* alive, but its private monitor does not answer */
	QU_NEW_INCOMING,  /* answers: still loading the state (inmigrate, or paused before the end) */
	QU_NEW_LOADED,    /* answers: paused, its incoming migration completed */
	QU_NEW_RUNNING,   /* answers: running the guest */
	QU_NEW_OTHER,     /* answers: another run state (a guest that ran and stopped: io-error, ...) */
};

struct qu_settle_facts {
	enum qu_phase phase;     /* the journal's */
	int remote;              /* the new QEMU is on another host */
	int remote_refused;      /* the agent answered that it did not resume the guest (tool only) */
	int postcopy_asked;      /* migrate-start-postcopy was accepted: forward only once switched */
	int old_alive;
	enum qu_new_state new_state;
};

enum qu_settle_way {
	QU_SETTLE_NOTHING,      /* nothing was touched, or it is settled already */
	QU_SETTLE_BACK,         /* undo: the new QEMU stopped, the old one as it was */
	QU_SETTLE_FORWARD,      /* the new QEMU has the guest: the old QEMU retired */
	QU_SETTLE_RESUME_NEW,   /* the old QEMU died after sending everything and the new one
				 * loaded it: resume the new QEMU, then forward */
	QU_SETTLE_POSTCOPY,     /* ask QEMU whether the postcopy switch happened (settle.c) */
	QU_SETTLE_LEAVE_PAUSED, /* the guest ran, or may run, elsewhere: the old QEMU is left
				 * paused, never resumed, for the operator */
	QU_SETTLE_UNKNOWN,      /* cannot tell who has the guest: left as it is, the journal
				 * stays for --recover */
	QU_SETTLE_LOST,         /* no QEMU holds the whole guest any more */
};

enum qu_settle_way qu_settle_decide(const struct qu_settle_facts *f);
const char *qu_settle_way_name(enum qu_settle_way way);
const char *qu_new_state_name(enum qu_new_state state);

#endif
