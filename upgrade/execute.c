/* The transaction: a short sequencer over the shared steps (upgrade/steps.c) and one
 * strategy (upgrade/txn.h), and, after a failure, the guardian's rules with what this process
 * holds (upgrade/settle.c). */
#include "upgrade/execute.h"
#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/option.h"
#include "qemu-integration/qmp.h"
#include "remote/client.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/paths.h"
#include "upgrade/settle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* QEMU steers a tap with its own eBPF program where virtio-net's RSS is on, and keeps the
 * program's descriptor: the tool then leaves the tap's steering alone. */
static int holds_bpf_program(const struct qu_vm *vm)
{
	for (size_t i = 0; i < vm->fds.n; i++)
		if (vm->fds.e[i].link && !strcmp(vm->fds.e[i].link, "anon_inode:bpf-prog"))
			return 1;
	return 0;
}

/* A virtio-net device with rss=on: QEMU steers its tap with an eBPF program of its own (or
 * removes any as it sets the NIC up, where it computes RSS itself), which the tool's steering
 * must neither replace nor remove. */
static int nic_rss_on(const struct qu_vm *vm)
{
	int on = 0;
	for (size_t i = 0; i < vm->argv.n && !on; i++) {
		const struct qu_arg *a = &vm->argv.a[i];
		if (!a->opt || !a->val || strcmp(a->opt, "device"))
			continue;
		json_object *o = qu_option_parse(a->opt, a->val);
		on = o && qu_option_true(o, "rss");
		json_object_put(o);
	}
	return on;
}

/* The sequencer: the steps every local strategy takes, in order, with the strategy's own
 * between the new QEMU's start and the commit point. */
static int run(struct qu_txn *t)
{
	const struct qu_strategy_ops *ops = qu_strategy_ops(t->plan->strategy);
	int ctl = -1, mig[2] = { -1, -1 };
	int r;
	if (!ops)
		return qu_err(-EINVAL, "no way to carry out strategy %s", qu_strategy_name(t->plan->strategy));
	txn_journal_init(t);
	if ((r = txn_journal_step(t, QU_PH_PLANNED)) < 0)
		return r;
	if ((r = qu_guardian_start(t->vm->pid, t->lock_fd, &t->guardian)) < 0 ||
	    (r = txn_checkpoint(QU_FI_PLANNED)) < 0)
		return r;
	/* The process inspect pinned, and no other that got its PID since. */
	if ((r = qu_pin_check(&t->vm->pin)) < 0)
		return r;
	t->pidfd_old = fcntl(t->vm->pin.pidfd, F_DUPFD_CLOEXEC, 3);
	if (t->pidfd_old < 0)
		return qu_err(-errno, "dup: %s", strerror(errno));
	if (ops->run)
		return ops->run(t);
	/* Namespaces and directories were opened by PID: still the same process? */
	const struct qu_carried *fds = t->plan->fds;
	size_t nfds = t->plan->nfds;
	if ((r = qu_harvest(&t->h, fds, nfds, t->vm->pid, t->pidfd_old, &t->vm->ctx)) < 0 ||
	    (r = qu_pin_check(&t->vm->pin)) < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, mig) < 0) {
		r = qu_err(-errno, "socketpair: %s", strerror(errno));
		goto out;
	}
	if ((ctl = txn_ctl_listen(t->j.ctl)) < 0) {
		r = ctl;
		goto out;
	}
	/* Written down before they are attached, so that whoever settles the upgrade (this
	 * process, its guardian, --recover) detaches them again and removes the steering. */
	int steer = !holds_bpf_program(t->vm) && !nic_rss_on(t->vm);
	t->j.ntapq = qu_tap_unused_queues(&t->h, fds, nfds, t->j.tapq_old, t->j.tapq_new, t->j.tapq_name,
						QU_JOURNAL_MAX_TAPQ);
	t->j.tap_steered = steer && t->j.ntapq > 0;
	if ((r = txn_journal_step(t, QU_PH_TARGET_STARTING)) < 0)
		goto out;
	qu_pidfile_aside(&t->j.vm_user, t->j.pidfile);
	const char *rebound[QU_MAX_REBOUND];
	for (size_t i = 0; i < t->j.nrebound; i++)
		rebound[i] = t->j.rebound[i];
	qu_rebound_aside(&t->j.vm_user, rebound, t->j.nrebound);
	if ((r = qu_tap_prepare(&t->h, fds, nfds, steer)) < 0) {
		qu_tap_restore(&t->h, fds, nfds, 0);
		goto out;
	}
	if (t->j.ntapq) { /* only those it did attach (the guest may have enabled one meanwhile) */
		t->j.ntapq = qu_tap_attached_queues(&t->h, fds, nfds, t->j.tapq_old, t->j.tapq_new, t->j.tapq_name,
						  QU_JOURNAL_MAX_TAPQ);
		if ((r = txn_journal_step(t, QU_PH_TARGET_STARTING)) < 0)
			goto out;
	}
	struct qu_tap_watch watch;
	qu_tap_watch_start(&watch, &t->h, fds, nfds);
	r = txn_start_target(t, ctl, mig[1]);
	qu_close(&ctl);
	qu_close(&mig[1]);
	if (r < 0) {
		qu_tap_watch_stop(&watch);
		qu_tap_restore(&t->h, fds, nfds, 0);
		goto out;
	}
	t->j.new_pid = t->new_pid;
	t->j.new_start = qu_proc_starttime(t->new_pid);
	if ((r = txn_journal_step(t, QU_PH_TARGET_STARTED)) == 0 && (r = txn_checkpoint(QU_FI_TARGET_STARTED)) == 0)
		r = ops->prepare(t);
	/* The new QEMU answers its monitor only after its netdevs and NICs are set up. */
	qu_tap_watch_stop(&watch);
	qu_tap_restore(&t->h, fds, nfds, r == 0);
	/* Steering removed now: whoever settles later must not remove a program the new QEMU may
	 * install (the next journal step says so). */
	t->j.tap_steered = qu_tap_steered(&t->h);
	qu_harvest_close(&t->h, nfds); /* the new QEMU has its own copies now */
	if (r < 0) {
		txn_add_target_stderr(t);
		goto out;
	}
	if ((r = txn_checkpoint(QU_FI_TARGET_PREPARED)) < 0 || (ops->migrate && (r = ops->migrate(t, mig[0])) < 0))
		goto out;
	qu_close(&mig[0]);
	qu_info("migration started (%s)", ops->moving);
	if ((r = txn_checkpoint(QU_FI_MIGRATING)) < 0 || (r = ops->hand_over(t)) < 0)
		goto out;
	if (r == 0)
		r = txn_finish(t);
out:
	qu_close(&ctl);
	qu_close(&mig[0]);
	qu_close(&mig[1]);
	return r;
}

/* After a failure, the guardian's rules (upgrade/settle.c) with what this process holds:
 * before the commit, back (the old QEMU as it was); where the new QEMU proves it has the
 * guest, forward; once postcopy was asked for and QEMU did not call it off, forward only.
 * Returns r, or 0 when the upgrade went through after all. */
static int settle_failure(struct qu_txn *t, int r)
{
	struct qu_report *rep = t->rep;
	char msg[sizeof(rep->error)], what[768] = "", there[320] = "";
	snprintf(msg, sizeof(msg), "%s", qu_err_msg());
	/* A pending Ctrl-C asked for this: it must not cut the settling's own waits. */
	qu_cancel_enable(0);
	if (t->j.phase >= QU_PH_RETIRED)
		return r;
	if (t->j.phase < QU_PH_TARGET_STARTING) {
		if (t->j.ctl[0])
			unlink(t->j.ctl);
		qu_err(r, "%s", msg);
		return r;
	}
	struct qu_hold h = txn_held(t);
	int forward_only = t->postcopy_asked &&
			   (t->switched || t->j.phase >= QU_PH_RESUMING || !txn_postcopy_called_off(t));
	if (t->postcopy_asked && !forward_only)
		t->j.postcopy_asked = 0; /* QEMU itself called the postcopy off: nothing switched */
	if (forward_only) {
		/* The settling waits on both monitors for as long as the pages take, each of which
		 * serves one client: ours go first. */
		qu_info("%s; postcopy had been asked for: no way back, settling forward", msg);
		qu_qmp_close(t->ctl);
		t->ctl = NULL;
		qu_qmp_disconnect(t->old);
		h = txn_held(t);
		h.old = NULL;
	}
	/* --remote: until the agent was asked to resume, or when it answered that it did not,
	 * it stops the new QEMU there and removes what it made (as it does by itself when our
	 * connection ends). */
	int refused = t->plan->remote && t->resume_sent && r == -ECANCELED;
	if (t->plan->remote && (!t->resume_sent || refused)) {
		char said[200] = "";
		int stopped = qu_remote_abort(t->plan->remote, qu_now_us() + 10000000u) == 0;
		if (!stopped)
			qu_remote_last_words(t->plan->remote, said, sizeof(said));
		snprintf(there, sizeof(there), "%s%s%s; ", stopped ? "new QEMU on the other host stopped" :
			 "agent unreachable (it stops the new QEMU when the connection ends)", said[0] ? ": it said: " : "", said);
	}
	enum qu_settle_way way = QU_SETTLE_UNKNOWN;
	int s = qu_settle_held(&t->j, &h, refused, what, sizeof(what), &way);
	switch (way) {
	case QU_SETTLE_FORWARD:
	case QU_SETTLE_RESUME_NEW:
		qu_info("%s (after: %s)", what, msg);
		txn_relays_go(t, 1);
		t->j.phase = QU_PH_RETIRED;
		return 0; /* the new QEMU had the guest: the upgrade went through after all */
	case QU_SETTLE_BACK:
	case QU_SETTLE_NOTHING:
		snprintf(rep->rolled_back, sizeof(rep->rolled_back), "%s%s", there, what);
		t->j.phase = QU_PH_ROLLED_BACK;
		if (forward_only)
			qu_err(r, "%s; postcopy had been asked for, but QEMU called it off: %s", msg, what);
		else
			qu_err(r, "%s", msg);
		return r;
	default:
		/* The guest is lost, or it may run elsewhere, or nobody can tell: not "rolled back". */
		t->unsettled = 1;
		rep->unsettled = 1;
		/* The guest may run on the other host: the journal stays, so that the VM reads as
		 * unsettled until the operator has looked there and run --recover. */
		if (way == QU_SETTLE_LEAVE_PAUSED && t->plan->remote && qu_journal_write(&t->j) < 0)
			qu_info("warning: the journal could not be kept: %s", qu_err_msg());
		qu_err(r, "%s; %s%s%s", msg, forward_only ? "postcopy had been asked for, so there is no way back: " : "",
		       what, s == -EAGAIN ? " (the journal stays: run qemu-upgrade --recover)" : "");
		return r;
	}
}

/* The transaction's state is large (the journal, the harvested descriptors): on the heap. */
static int execute(struct qu_txn *t)
{
	int r = run(t);
	if (r < 0)
		r = settle_failure(t, r);
	/* Settled either way: nothing for the guardian or --recover to do (an unsettled one
	 * keeps its journal for --recover). */
	if (t->j.phase && !t->unsettled)
		qu_journal_remove(t->vm->pid);
	qu_guardian_release(&t->guardian);
	if (r == 0 && t->j.ctl[0])
		unlink(t->j.ctl);
	if (r == 0)
		t->rep->new_pid = t->plan->remote ? t->plan->remote->new_pid : t->new_pid;
	else if (t->unsettled && t->plan->remote)
		t->rep->new_pid = t->plan->remote->new_pid; /* where the guest may run: the operator checks it */
	txn_relays_go(t, 0);
	qu_tap_steer_release(&t->h);
	qu_harvest_close(&t->h, t->plan->nfds);
	qu_qmp_close(t->ctl);
	qu_close(&t->pidfd_old);
	qu_close(&t->pidfd_new);
	qu_close(&t->stderr_rd);
	return r;
}

int qu_execute(const struct qu_vm *vm, const struct qu_plan *plan, struct qu_qmp *old_qmp, int lock_fd,
	       const struct qu_copy_options *copy, uint64_t deadline_us, struct qu_report *rep)
{
	struct qu_txn *t = malloc(sizeof(*t));
	if (!t)
		return qu_err(-ENOMEM, "out of memory");
	*t = (struct qu_txn){ .vm = vm, .plan = plan, .old = old_qmp, .rep = rep, .copy = copy, .deadline = deadline_us,
			   .lock_fd = lock_fd, .guardian = { .link = -1 }, .pidfd_old = -1, .pidfd_new = -1,
			   .stderr_rd = -1 };
	qu_harvest_init(&t->h);
	int r = execute(t);
	free(t);
	return r;
}
