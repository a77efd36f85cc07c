/* How an upgrade moves the guest: one name for each way, chosen by the plan (upgrade/plan.c)
 * and carried out by its own file behind one interface (upgrade/txn.h). */
#ifndef QU_STRATEGY_H
#define QU_STRATEGY_H

enum qu_strategy {
	QU_STRATEGY_NONE,        /* refused, or not planned yet */
	QU_STRATEGY_SHARED,      /* shared-RAM handover: RAM stays in place (x-ignore-shared),
				  * only device state moves (upgrade/pageflip/handover.c) */
	QU_STRATEGY_CPR,         /* cpr-transfer: QEMU passes its RAM descriptors itself
				  * (upgrade/pageflip/cpr.c) */
	QU_STRATEGY_COPY,        /* precopy into shared RAM, the guest running (pageflip/copy.c) */
	QU_STRATEGY_STOP_COPY,   /* the same copy with the guest stopped (TCG before 9.0) */
	QU_STRATEGY_POSTCOPY,    /* copy in bounded memory: postcopy with release-ram
				  * (upgrade/pageflip/postcopy.c) */
	QU_STRATEGY_REMOTE,      /* to another host: RAM over TCP, disks mirrored or shared
				  * (upgrade/to-remote.c) */
	QU_STRATEGY_REMOTE_STOP, /* the same with the guest stopped for the copy */
	QU_STRATEGY_CPR_EXEC,    /* cpr-exec: the old QEMU execs the new binary in its own
				  * process, the PID stays (upgrade/pageflip/cprexec.c); only when
				  * asked for (QU_FLAG_KEEP_PID) */
};

/* The name reports, logs and tests use ("shared-ram-handover", "precopy", ...). */
const char *qu_strategy_name(enum qu_strategy s);

/* RAM stays where it is: x-ignore-shared on both sides. */
static inline int qu_strategy_shares_ram(enum qu_strategy s) { return s == QU_STRATEGY_SHARED; }
static inline int qu_strategy_postcopy(enum qu_strategy s) { return s == QU_STRATEGY_POSTCOPY; }
static inline int qu_strategy_cpr(enum qu_strategy s) { return s == QU_STRATEGY_CPR; }
static inline int qu_strategy_cpr_exec(enum qu_strategy s) { return s == QU_STRATEGY_CPR_EXEC; }
static inline int qu_strategy_remote(enum qu_strategy s)
{
	return s == QU_STRATEGY_REMOTE || s == QU_STRATEGY_REMOTE_STOP;
}

#endif
