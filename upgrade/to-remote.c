#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "remote/blk/mirror.h"
#include "remote/blk/verify.h"
#include "upgrade/fdpass/asuser.h"
#include "remote/client.h"
#include "upgrade/context.h"
#include "upgrade/launcher.h"
#include "upgrade/report.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The agent waits up to 120 s to load and resume. */
#define REMOTE_RESUME_TIMEOUT_US (150ull * 1000000u)

int qu_remote_send(const struct qu_vm *vm, const struct qu_plan *p, uint64_t deadline_us, char *why, size_t len)
{
	struct qu_remote *rm = p->remote;
	struct qu_launch_fd fds[QU_MAX_CARRIED];
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; r == 0 && p->disks && i < p->disks->n; i++) {
		const struct qu_disk *d = &p->disks->d[i];
		int top = !!(p->top_disks & (1u << i));
		/* A top whose backing chain did not check out is refused by the plan already: the
		 * policy's admit hears of the rest. */
		if (top && !p->base_sum[i][0])
			continue;
		if (p->copy_disks & (1u << i))
			r = qu_remote_disk(rm, d->file, d->format, d->size, d->device, top ? d->backing_name : NULL,
					   d->chain[0].format, d->chain[0].file, p->base_sum[i]);
	}
	if (r < 0 || (!why && (r = qu_remote_tls(rm, !p->no_tls)) < 0))
		return r;
	n = qu_launch_fds_of(p->fds, p->nfds, NULL, 1, fds);
	struct qu_context *ctx = malloc(sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	*ctx = vm->ctx;
	ctx->ncgroups = 0;
	ctx->userns = 0; /* refused by the plan */
	CPU_ZERO(&ctx->affinity);
	char *context = qu_context_encode(ctx), **argv = qu_argv_flatten(&p->argv);
	free(ctx);
	struct qu_launch spec = { .argv = argv, .envp = vm->env, .cwd = vm->cwd[0] ? vm->cwd : NULL,
				  .context = context, .fds = fds, .nfds = n };
	if (!context || !argv)
		r = -ENOMEM;
	else
		r = why ? qu_remote_admit(rm, &spec, deadline_us, why, len) : qu_remote_start(rm, &spec, deadline_us);
	qu_strv_free(argv);
	free(context);
	return r;
}

/* --remote: the agent creates the images to copy into, re-creates the descriptors from their
 * specs and starts the new QEMU paused, listening for the migration and exporting the disks. */
static int start_target_remote(struct qu_txn *t)
{
	struct qu_remote *rm = t->plan->remote;
	int r = qu_remote_send(t->vm, t->plan, t->deadline, NULL, 0);
	if (r < 0)
		return qu_err_wrap(r, "starting the new QEMU on %s", rm->host);
	qu_info("new QEMU started on %s: PID %d (%s), waiting at %s", rm->host, (int)rm->new_pid,
		t->plan->target.version_line, rm->migrate_uri);
	return 0;
}

/* With the old QEMU paused before the switch-over, the disk copies end exact (no write can
 * come any more), then the old QEMU sends the last of the state. */
static int finish_mirrors(struct qu_txn *t)
{
	int r = qu_mirror_complete(t->old, __builtin_popcount(t->plan->copy_disks), t->deadline, &t->rep->disk_copied_bytes);
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

/* --verify, with both QEMUs paused and the copy complete (the old QEMU flushed its images when
 * the migration completed): each host sums its copy of each disk at once, and a difference
 * fails the move before the commit point, so that the guest resumes here. */
static int verify_disks(struct qu_txn *t)
{
	const struct qu_plan *p = t->plan;
	struct qu_ident who;
	qu_ident_of(&t->vm->ctx, &who);
	for (size_t i = 0; p->disks && i < p->disks->n; i++) {
		const struct qu_disk *d = &p->disks->d[i];
		const char *chain[QU_MAX_BACKING];
		char mine[QU_DIGEST_HEX], theirs[QU_DIGEST_HEX], why[512], here[512] = "";
		int top = !!(p->top_disks & (1u << i));
		if (!(p->copy_disks & (1u << i)))
			continue;
		for (int k = 0; k < d->nchain && k < QU_MAX_BACKING; k++)
			chain[k] = d->chain[k].file;
		int r = qu_remote_verify_ask(p->remote, d->device, top);
		int h = r < 0 ? r : qu_verify_sum(&who, d->file, d->format, chain, d->backing ? d->nchain : 0, top, t->deadline, mine);
		if (h < 0)
			snprintf(here, sizeof(here), "%s", qu_err_msg());
		if (r < 0 || (r = qu_remote_verify_answer(p->remote, t->deadline, theirs, why, sizeof(why))) < 0)
			return r;
		if (h < 0)
			return qu_err(h, "--verify: %s", here);
		if (r == 1)
			return qu_err(-EIO, "--verify: disk '%s' on %s: %s", d->device, p->remote->host, why);
		if (strcmp(mine, theirs))
			return qu_err(-EIO, "--verify: disk '%s' (%s) differs on %s after the copy (SHA-256 of %s %.16s... "
				      "here, %.16s... there): not resuming it there", d->device, d->file, p->remote->host,
				      top ? "its top image" : "what it holds", mine, theirs);
		qu_info("--verify: disk '%s' is the same on both hosts (%s, SHA-256 %.16s...)", d->device,
			top ? "top image" : "whole disk", mine);
	}
	t->rep->verified = 1;
	return 0;
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
		    (r = qu_mirror_start(t->old, t->plan->disks, t->plan->copy_disks, t->plan->top_disks, rm->nbd_addr,
					 t->plan->no_tls ? NULL : QU_TLS_ID, t->deadline)) < 0 ||
		    (r = qu_mirror_wait_ready(t->old, __builtin_popcount(t->plan->copy_disks), t->deadline)) < 0)
			return r;
		/* A READY mirror in the background mode may fall behind again (its dirty blocks are
		 * copied later): from 8.2 it is made write-blocking before the pause. Older QEMU stops
		 * the guest in pre-switchover and completes the mirrors there (docs/remote.md). */
		if (t->plan->write_blocking &&
		    (r = qu_mirror_write_blocking(t->old, __builtin_popcount(t->plan->copy_disks), t->deadline)) < 0)
			return r;
		qu_info("disks copied to %s; the guest's writes now go to both%s", rm->host,
			t->plan->write_blocking ? " (write-blocking)" : "");
	}
	if ((r = txn_checkpoint(QU_FI_TARGET_PREPARED)) < 0 || (r = txn_start_migration(t, -1)) < 0)
		return r;
	qu_info("migration started (copying RAM to %s)", rm->host);
	if ((r = txn_checkpoint(QU_FI_MIGRATING)) < 0 || (r = txn_wait_source(t)) < 0 ||
	    (t->plan->pause_switchover && (r = finish_mirrors(t)) < 0))
		return r;
	if ((r = txn_journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0 || (r = txn_checkpoint(QU_FI_SOURCE_COMPLETED)) < 0)
		return r;
	if (t->plan->verify && t->plan->copy_disks && (r = verify_disks(t)) < 0)
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
	qu_retire_old(&t->j, &h, 1);
	qu_info("old QEMU PID %d retired; the guest runs on %s", (int)t->vm->pid, rm->host);
	if (txn_journal_step(t, QU_PH_RETIRED) < 0 || qu_fault(QU_FI_RETIRED) < 0)
		qu_info("warning after the upgrade: %s", qu_err_msg());
	return 0;
}

const struct qu_strategy_ops qu_remote_ops = {
	.run = run_remote,
};
