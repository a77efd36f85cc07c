#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "remote/blk/mirror.h"
#include "remote/client.h"
#include "upgrade/context.h"
#include "upgrade/launcher.h"
#include "upgrade/report.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* The agent waits up to 120 s to load and resume. */
#define REMOTE_RESUME_TIMEOUT_US (150ull * 1000000u)
/* --remote: the agent creates the images to copy into, re-creates the descriptors from their
 * specs and starts the new QEMU paused, listening for the migration and exporting the disks.
 * The context goes without cgroups and CPU numbers: they are this host's. */
static int start_target_remote(struct qu_txn *t)
{
	const struct qu_plan *p = t->plan;
	struct qu_remote *rm = p->remote;
	struct qu_launch_fd fds[QU_MAX_CARRIED];
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; r == 0 && p->disks && i < p->disks->n; i++)
		if (p->copy_disks & (1u << i))
			r = qu_remote_disk(rm, p->disks->d[i].file, p->disks->d[i].format, p->disks->d[i].size,
					   p->disks->d[i].device);
	if (r < 0 || (r = qu_remote_tls(rm, !p->no_tls)) < 0)
		return r;
	n = qu_launch_fds_of(p->fds, p->nfds, NULL, 1, fds);
	struct qu_context *ctx = malloc(sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	*ctx = t->vm->ctx;
	ctx->ncgroups = 0;
	ctx->userns = 0; /* refused by the plan */
	CPU_ZERO(&ctx->affinity);
	char *context = qu_context_encode(ctx), **argv = qu_argv_flatten(&p->argv);
	free(ctx);
	struct qu_launch spec = { .argv = argv, .envp = t->vm->env, .cwd = t->vm->cwd[0] ? t->vm->cwd : NULL,
				  .context = context, .fds = fds, .nfds = n };
	r = context && argv ? qu_remote_start(rm, &spec, t->deadline) : -ENOMEM;
	qu_strv_free(argv);
	free(context);
	if (r < 0)
		return qu_err_wrap(r, "starting the new QEMU on %s", rm->host);
	qu_info("new QEMU started on %s: PID %d (%s), waiting at %s", rm->host, (int)rm->new_pid,
		p->target.version_line, rm->migrate_uri);
	return 0;
}

/* With the old QEMU paused before the switch-over, the disk copies end exact (no write can
 * come any more), then the old QEMU sends the last of the state. */
static int finish_mirrors(struct qu_txn *t)
{
	int r = qu_mirror_complete(t->old, __builtin_popcount(t->plan->copy_disks), t->deadline);
	if (r < 0)
		return r;
	json_object *args = json_object_new_object();
	json_object_object_add(args, "state", json_object_new_string("pre-switchover"));
	if ((r = qu_qmp_execute(t->old, "migrate-continue", args, -1, t->deadline, NULL)) < 0)
		return r;
	t->continued = 1;
	t->j.mirrors = 0;
	return txn_wait_source(t);
}

/* The upgrade onto another host: the same transaction, with the new QEMU behind the agent.
 * Once the agent is asked to resume the guest there, the old QEMU is never resumed. */
static int run_remote(struct qu_txn *t)
{
	struct qu_remote *rm = t->plan->remote;
	int r;
	if ((r = txn_journal_step(t, QU_PH_TARGET_STARTING)) < 0 || (r = start_target_remote(t)) < 0 ||
	    (r = txn_journal_step(t, QU_PH_TARGET_STARTED)) < 0 || (r = txn_checkpoint(QU_FI_TARGET_STARTED)) < 0 ||
	    (r = txn_check_ramblocks(t)) < 0)
		return r;
	/* The old QEMU's end of TLS: the key is read when the object is made, so its file goes
	 * at once. */
	if (!t->plan->no_tls) {
		t->j.tls = 1;
		if ((r = txn_journal_step(t, QU_PH_TARGET_STARTED)) < 0 ||
		    (r = qu_tls_add(t->old, &rm->psk, "client", t->vm->ctx.uid, t->vm->ctx.gid, NULL, NULL, t->deadline,
				      &t->tls)) < 0)
			return r;
		qu_tls_remove(NULL, &t->tls, t->deadline);
		t->tls.added = 1;
	}
	if (t->plan->copy_disks) {
		t->j.mirrors = 1;
		if ((r = txn_journal_step(t, QU_PH_TARGET_STARTED)) < 0 ||
		    (r = qu_mirror_start(t->old, t->plan->disks, t->plan->copy_disks, rm->nbd_addr,
					 t->plan->no_tls ? NULL : QU_TLS_ID, t->deadline)) < 0 ||
		    (r = qu_mirror_wait_ready(t->old, __builtin_popcount(t->plan->copy_disks), t->deadline)) < 0)
			return r;
		qu_info("disks copied to %s; the guest's writes now go to both", rm->host);
	}
	if ((r = txn_checkpoint(QU_FI_TARGET_PREPARED)) < 0 || (r = txn_start_migration(t, -1)) < 0)
		return r;
	qu_info("migration started (copying RAM to %s)", rm->host);
	if ((r = txn_checkpoint(QU_FI_MIGRATING)) < 0 || (r = txn_wait_source(t)) < 0 ||
	    (t->plan->pause_switchover && (r = finish_mirrors(t)) < 0))
		return r;
	if ((r = txn_journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0 || (r = txn_checkpoint(QU_FI_SOURCE_COMPLETED)) < 0)
		return r;
	if ((r = qu_remote_check(rm)) < 0)
		return r;
	qu_cancel_enable(0);
	if ((r = txn_journal_step(t, QU_PH_RESUMING)) < 0)
		return r;
	/* The resume has its own time: the copy may have used most of the deadline, and an
	 * answer lost to a timeout leaves the guest undecided. Longer than the agent's own wait. */
	t->resume_sent = 1;
	if ((r = qu_remote_resume(rm, qu_now_us() + REMOTE_RESUME_TIMEOUT_US)) < 0)
		return r;
	txn_commit(t);
	t->rep->announced = rm->announced;
	t->rep->tls = rm->tls;
	txn_collect_stats(t);
	int64_t stop = 0;
	t->rep->pause_ms = -1;
	if (qu_qmp_event_time(t->old, "STOP", qu_now_us() + 1000000u, &stop) == 0 && rm->resumed_us >= stop)
		t->rep->pause_ms = (double)(rm->resumed_us - stop) / 1000.0;
	if (t->rep->downtime_ms < 0)
		t->rep->downtime_ms = t->rep->pause_ms;
	struct qu_hold h = txn_held(t);
	qu_retire_old(&t->j, &h);
	qu_info("old QEMU PID %d retired; the guest runs on %s", (int)t->vm->pid, rm->host);
	if (txn_journal_step(t, QU_PH_RETIRED) < 0 || qu_fault(QU_FI_RETIRED) < 0)
		qu_info("warning after the upgrade: %s", qu_err_msg());
	return 0;
}

const struct qu_strategy_ops qu_remote_ops = {
	.run = run_remote,
};
