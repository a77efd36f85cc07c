/* The transaction's state and its shared steps (upgrade/steps.c), for the sequencer
 * (upgrade/execute.c) and the strategies behind one interface: shared-RAM handover
 * (upgrade/pageflip/handover.c), cpr-transfer (pageflip/cpr.c), a copy by precopy
 * (pageflip/copy.c), postcopy (pageflip/postcopy.c) and another host (upgrade/to-remote.c).
 * Internal to the library. */
#ifndef QU_TXN_H
#define QU_TXN_H

#include "remote/tls.h"
#include "upgrade/execute.h"
#include "upgrade/fault.h"
#include "upgrade/fdpass/harvest.h"
#include "upgrade/guardian.h"
#include "upgrade/journal.h"
#include "upgrade/plan.h"
#include "upgrade/undo.h"

#include <stdint.h>
#include <sys/types.h>

struct qu_qmp;
struct qu_report;
struct qu_copy_options;

struct qu_txn {
	const struct qu_vm *vm;
	const struct qu_plan *plan;
	struct qu_qmp *old, *ctl;
	struct qu_report *rep;
	const struct qu_copy_options *copy;
	uint64_t deadline;
	struct qu_journal j;      /* j.phase is where the transaction is */
	struct qu_guardian guardian;
	int lock_fd;
	int pidfd_old, pidfd_new;
	pid_t new_pid;
	int stderr_rd;            /* the new QEMU's stderr, when the tool captures it */
	struct qu_harvest h;      /* our copies of the carried descriptors, tap headers, pty relays */
	int switched;             /* postcopy: the old QEMU handed the guest over; no way back */
	int unsettled;            /* failed past the point of no return, or the guest may run elsewhere */
	int postcopy_asked;       /* migrate-start-postcopy was accepted (or its answer lost) */
	int continued;            /* remote: migrate-continue sent after the pre-switchover pause */
	int resume_sent;          /* remote: the agent was asked to resume the guest there */
	struct qu_tls tls;        /* remote: the old QEMU's TLS credentials */
};

/* One strategy: the steps between the new QEMU's start and the commit point. The sequencer
 * starts the new QEMU (with the harvested descriptors), then calls prepare, migrate (when
 * not NULL) and hand_over in turn; every step returns 0 or -errno with a message, and a
 * failure is settled by the same rules as the guardian's. A strategy that is a whole ladder
 * of its own (another host) has run instead. */
struct qu_strategy_ops {
	const char *moving;   /* for the log: "migration started (...)" */
	int (*prepare)(struct qu_txn *t);            /* connect to the new QEMU, set its incoming */
	int (*migrate)(struct qu_txn *t, int mig_old); /* start the old QEMU's migration */
	int (*hand_over)(struct qu_txn *t);          /* until the new QEMU runs the guest */
	int (*run)(struct qu_txn *t);                /* instead of all of the above */
};

extern const struct qu_strategy_ops qu_handover_ops, qu_copy_ops, qu_cpr_ops, qu_postcopy_ops, qu_remote_ops,
	qu_cpr_exec_ops;
const struct qu_strategy_ops *qu_strategy_ops(enum qu_strategy s);

/* The shared steps (upgrade/steps.c). */
int txn_journal_step(struct qu_txn *t, enum qu_phase phase);
int txn_checkpoint(enum qu_fault_point point);
struct qu_hold txn_held(const struct qu_txn *t);
void txn_journal_init(struct qu_txn *t);
int txn_ctl_listen(const char *path);
int txn_save_old_settings(struct qu_txn *t);
int txn_start_target(struct qu_txn *t, int ctl_qemu, int mig_new);
void txn_add_target_stderr(struct qu_txn *t);
int txn_check_ramblocks(struct qu_txn *t);
int txn_prepare_target(struct qu_txn *t);
int txn_start_migration(struct qu_txn *t, int mig_old);
int txn_wait_source(struct qu_txn *t);
int txn_wait_target_loaded(struct qu_txn *t);
int txn_resume_target(struct qu_txn *t);
void txn_relays_go(struct qu_txn *t, int go);
void txn_commit(struct qu_txn *t);
int txn_precopy_finish(struct qu_txn *t);
void txn_collect_stats(struct qu_txn *t);
int txn_finish(struct qu_txn *t);

/* The copy's own (upgrade/pageflip/copy.c): progress while it runs, and what to say when it
 * did not converge in time. */
void txn_report_progress(struct qu_txn *t);
int txn_copy_timed_out(struct qu_txn *t);
/* Postcopy's (upgrade/pageflip/postcopy.c): after a failure once postcopy was asked for,
 * 1 when QEMU certainly called it off (nothing switched). */
int txn_postcopy_called_off(struct qu_txn *t);

#endif
