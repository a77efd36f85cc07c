#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/report.h"

#include <errno.h>
#include <stdio.h>

/* A copy by precopy (the guest running, or stopped first under TCG before 9.0): the old QEMU
 * sends all of guest RAM into the shared memfd the new QEMU maps, then the device state; the
 * new one loads it paused and its `cont` is the commit point. After it, the VM's RAM is
 * shared and its next upgrade is a handover. */
const struct qu_strategy_ops qu_copy_ops = {
	.moving = "copying RAM",
	.prepare = txn_prepare_target,
	.migrate = txn_start_migration,
	.hand_over = txn_precopy_finish,
};

/* While QEMU copies guest RAM: its own counters, for the caller's progress display. */
void txn_report_progress(struct qu_txn *t)
{
	struct qu_mig_status m;
	if (qu_mig_query(t->old, t->deadline, &m) < 0)
		return;
	struct qu_progress p = { .transferred = m.transferred, .remaining = m.remaining, .total = m.total,
				 .mbps = m.mbps, .eta_s = -1 };
	if (p.mbps > 0)
		p.eta_s = (double)p.remaining * 8.0 / (p.mbps * 1e6);
	t->copy->progress(&p, t->copy->progress_arg);
}

/* A copy that did not converge in time: say how far it got and what to change. */
int txn_copy_timed_out(struct qu_txn *t)
{
	struct qu_mig_status m;
	qu_mig_query(t->old, qu_now_us() + 2000000u, &m); /* zeros when it does not answer */
	double sent = (double)m.transferred / 1048576.0, left = (double)m.remaining / 1048576.0, mbps = m.mbps;
	/* Less than the guest's RAM sent: the first pass itself was too slow for the time allowed
	 * (a loaded host, a slow link), whatever the guest does; more: the guest dirties pages
	 * faster than the later passes send them. */
	int first_pass = m.total > 0 && m.transferred < m.total;
	return qu_err(-ETIMEDOUT, "copying guest RAM did not finish in time: %.0f MiB sent, %.0f MiB still dirty, "
		      "%.0f MB/s; %s: raise --timeout or --max-downtime, or lift --max-bandwidth%s", sent, left,
		      mbps / 8.0,
		      first_pass ? "the first pass over guest RAM had not ended: the copy is slower than the time "
				   "allowed"
				 : "the guest rewrites its memory faster than it can be sent within the downtime limit",
		      t->plan->remote && !t->plan->no_tls ? " (TLS costs throughput: --no-tls on a network you trust)" : "");
}
