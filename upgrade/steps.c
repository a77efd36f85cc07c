#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/ramblocks.h"
#include "remote/client.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/launcher.h"
#include "upgrade/libvirtgate.h"
#include "upgrade/log.h"
#include "upgrade/report.h"
#include "upgrade/tapwatch.h"
#include "upgrade/testhooks.h"
#include "upgrade/threadcg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* No cap on the local channel: QEMU 7.2's default of 128 MiB/s would stretch every copy. */
#define UNLIMITED_BANDWIDTH (1ULL << 40)

int txn_journal_step(struct qu_txn *t, enum qu_phase phase)
{
	t->j.phase = phase;
	qu_debug("phase %s", qu_phase_name(phase));
	return qu_journal_write(&t->j);
}

/* Where a test may inject a fault, and where a pending Ctrl-C takes effect. */
int txn_checkpoint(enum qu_fault_point point)
{
	return qu_fault(point) ?: qu_cancel_check();
}

/* Remembers the old QEMU's migration settings (in the journal too), so that a rollback
 * leaves them as they were. */
int txn_save_old_settings(struct qu_txn *t)
{
	int r = qu_mig_get(t->old, t->deadline, &t->j.old_settings);
	if (r == 0)
		t->j.caps_saved = 1;
	return r;
}

/* libvirt's PID file for the domain, made for the new QEMU to lock before its exec (libvirt
 * locks it in the QEMU it starts): placed above every other target, or -1 (not libvirt's, no
 * PID file, or it cannot be made: then the rewrite after the commit writes the old file,
 * unlocked, as before). */
static int libvirt_pidfile(const struct qu_txn *t, const struct qu_launch_fd *fds, size_t n, struct qu_launch_fd *out)
{
	struct qu_libvirt lv;
	if (t->plan->remote || !t->vm->qmp_root || qu_libvirt_detect_pid(t->vm->pid, &lv) != 1)
		return -1;
	int fd = qu_libvirt_pidfile_prepare(&lv);
	if (fd < 0) {
		if (fd != -ENOENT)
			qu_info("warning: %s's PID file will not be locked by the new QEMU: %s", lv.name, qu_err_msg());
		return -1;
	}
	int target = QU_FD_FIRST_CARRIED;
	for (size_t i = 0; i < n; i++)
		target = fds[i].target >= target ? fds[i].target + 1 : target;
	*out = (struct qu_launch_fd){ fd, target, QU_FD_PIDFILE, "libvirt's PID file", NULL };
	return fd;
}

/* Starts the new QEMU paused, waiting for the migration stream on fd QU_FD_MIG. */
int txn_start_target(struct qu_txn *t, int ctl_qemu, int mig_new)
{
	const struct qu_plan *p = t->plan;
	struct qu_launch_fd fds[QU_MAX_CARRIED + 5];
	size_t n = 0;
	int errpipe[2] = { -1, -1 };

	/* The binary that was checked and probed, and no other: by descriptor. */
	int prog = qu_binary_reopen(&p->target);
	if (prog < 0)
		return prog;
	fds[n++] = (struct qu_launch_fd){ prog, 0, QU_FD_PROGRAM, "program", NULL };
	fds[n++] = (struct qu_launch_fd){ ctl_qemu, QU_FD_CTL, QU_FD_CONTROL, "private monitor", NULL };
	fds[n++] = (struct qu_launch_fd){ mig_new, QU_FD_MIG, QU_FD_MIGRATION, "migration channel", NULL };
	n += qu_launch_fds_of(p->fds, p->nfds, t->h.local, 0, fds + n);
	if (p->capture_stderr) {
		if (pipe2(errpipe, O_CLOEXEC) < 0)
			return qu_err(-errno, "pipe: %s", strerror(errno));
		fds[n++] = (struct qu_launch_fd){ errpipe[1], 2, QU_FD_STDIO, "stderr (captured)", NULL };
	}
	int pidfile = libvirt_pidfile(t, fds, n, &fds[n]);
	n += pidfile >= 0;
	char **argv = qu_argv_flatten(&p->argv);
	if (!argv) {
		qu_close(&pidfile);
		qu_close(&errpipe[0]);
		qu_close(&errpipe[1]);
		close(prog);
		return -ENOMEM;
	}
	char *context = qu_context_encode(&t->vm->ctx);
	struct qu_launch spec = { .argv = argv, .envp = t->vm->env, .cwd = t->vm->cwd[0] ? t->vm->cwd : NULL,
				  .context = context, .fds = fds, .nfds = n };
	int r = context ? qu_launch_local(&spec, t->deadline, &t->new_pid) : -ENOMEM;
	close(prog);
	qu_close(&pidfile);
	qu_strv_free(argv);
	free(context);
	qu_close(&errpipe[1]);
	t->stderr_rd = errpipe[0];
	if (r < 0)
		return qu_err_wrap(r, "starting the new QEMU");
	t->pidfd_new = qu_pidfd_open(t->new_pid);
	if (t->pidfd_new < 0)
		return qu_err(t->pidfd_new, "pidfd_open(%d): %s", (int)t->new_pid, strerror(-t->pidfd_new));
	qu_info("new QEMU started: PID %d (%s)", (int)t->new_pid, p->target.version_line);
	return 0;
}

/* What the new QEMU printed before it died, appended to the current error. */
void txn_add_target_stderr(struct qu_txn *t)
{
	/* A step that failed on the new QEMU's monitor says why in socket words (Broken pipe):
	 * when the process is gone, say that first. */
	if (t->pidfd_new >= 0 && qu_pidfd_wait_exit(t->pidfd_new, qu_now_us()) == 0)
		qu_err_wrap(-ECHILD, "the new QEMU %d is gone", (int)t->new_pid);
	qu_err_append_output(t->stderr_rd, "the new QEMU");
}

/* Firmware and ROMs are RAM blocks: a new release whose files changed size would have its
 * stream rejected. Compared while the old QEMU still runs untouched. */
int txn_check_ramblocks(struct qu_txn *t)
{
	struct qu_ramblock *old = calloc(2 * QU_MAX_RAMBLOCKS, sizeof(*old));
	char why[512];
	if (!old)
		return -ENOMEM;
	int nold = qu_ramblocks_query(t->old, t->deadline, old, QU_MAX_RAMBLOCKS), nnew = -1, r = 0;
	/* On another host the agent read them for us. */
	if (nold >= 0 && t->plan->remote)
		nnew = t->plan->remote->ramblocks ? qu_ramblocks_unpack(t->plan->remote->ramblocks, old + QU_MAX_RAMBLOCKS,
								       QU_MAX_RAMBLOCKS) : -ENOENT;
	else if (nold >= 0)
		nnew = qu_ramblocks_query(t->ctl, t->deadline, old + QU_MAX_RAMBLOCKS, QU_MAX_RAMBLOCKS);
	if (nold < 0 || nnew < 0)
		qu_debug("RAM blocks not compared (info ramblock: %s)", strerror(-(nold < 0 ? nold : nnew)));
	else if (qu_ramblocks_compare(old, (size_t)nold, old + QU_MAX_RAMBLOCKS, (size_t)nnew, why, sizeof(why)) < 0)
		r = qu_err(-EINVAL, "%s", why);
	free(old);
	return r;
}

int txn_prepare_target(struct qu_txn *t)
{
	int r = qu_qmp_connect(t->j.ctl, t->deadline, &t->ctl);
	if (r < 0)
		return qu_err_wrap(r, "the new QEMU's monitor");
	if ((r = txn_check_ramblocks(t)) < 0)
		return r;
	struct qu_mig_settings want = { .ignore_shared = qu_strategy_shares_ram(t->plan->strategy), .events = 1,
					.postcopy = qu_strategy_postcopy(t->plan->strategy) };
	char uri[32];
	snprintf(uri, sizeof(uri), "fd:%d", QU_FD_MIG);
	return qu_mig_incoming(t->ctl, &want, uri, t->deadline);
}

int txn_start_migration(struct qu_txn *t, int mig_old)
{
	int r = txn_save_old_settings(t);
	if (r < 0 || (r = txn_journal_step(t, QU_PH_MIGRATING)) < 0)
		return r;
	struct qu_mig_settings want = { .ignore_shared = qu_strategy_shares_ram(t->plan->strategy), .events = 1,
					.postcopy = qu_strategy_postcopy(t->plan->strategy), .release_ram = qu_strategy_postcopy(t->plan->strategy),
					.pause_switchover = t->plan->pause_switchover,
					.max_bandwidth = (int64_t)UNLIMITED_BANDWIDTH };
	if (t->copy && t->copy->max_bandwidth)
		want.max_bandwidth = (int64_t)t->copy->max_bandwidth;
	if (t->copy && t->copy->max_downtime_ms)
		want.downtime_limit = t->copy->max_downtime_ms;
	if (t->plan->remote && !t->plan->no_tls) {
		want.tls_set = 1;
		snprintf(want.tls_creds, sizeof(want.tls_creds), "%s", QU_TLS_ID);
	}
	if ((r = qu_mig_set(t->old, &want, t->deadline)) < 0)
		return r;
	json_object *args;
	const char *uri = "fd:" QU_MIG_FDNAME;
	if (t->plan->remote) {
		/* Straight to the new QEMU over TCP. */
		uri = t->plan->remote->migrate_uri;
	} else {
		args = json_object_new_object();
		json_object_object_add(args, "fdname", json_object_new_string(QU_MIG_FDNAME));
		if ((r = qu_qmp_execute(t->old, "getfd", args, mig_old, t->deadline, NULL)) < 0)
			return r;
	}
	/* Postcopy is asked for before the old QEMU stops (the journal write takes time) and
	 * right after `migrate`, before the migration thread's first round: QEMU then switches
	 * without sending any page first, and the pause is the device state alone. */
	t->j.postcopy = qu_strategy_postcopy(t->plan->strategy);
	if (qu_strategy_postcopy(t->plan->strategy) && (r = txn_journal_step(t, QU_PH_POSTCOPY)) < 0)
		return r;
	/* Copy with the guest stopped where a live copy would lose writes (TCG before 9.0); a
	 * rollback resumes it. */
	if (t->plan->stop_first && (r = qu_qmp_execute(t->old, "stop", NULL, -1, t->deadline, NULL)) < 0)
		return r;
	/* Once postcopy is asked for, only QEMU may call it off (a failed migration before the
	 * switch): a Ctrl-C from here on would race the switch, so it is ignored. */
	if (qu_strategy_postcopy(t->plan->strategy))
		qu_cancel_enable(0);
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if ((r = qu_qmp_execute(t->old, "migrate", args, -1, t->deadline, NULL)) < 0)
		return r;
	if (!qu_strategy_postcopy(t->plan->strategy))
		return 0;
	/* A QMP error answer means QEMU did not take the request: nothing to fear yet. Anything
	 * else (the answer lost) must be taken as asked. */
	r = qu_qmp_execute(t->old, "migrate-start-postcopy", NULL, -1, t->deadline, NULL);
	t->postcopy_asked = r != -EREMOTEIO;
	t->j.postcopy_asked = t->postcopy_asked;
	if (t->postcopy_asked)
		txn_journal_step(t, QU_PH_POSTCOPY); /* for the guardian: forward only from here */
	return r;
}

static const char *const mig_end_or_pause[] = { "completed", "failed", "cancelled", "pre-switchover", NULL };

/* Waits for the old QEMU to send everything: status completed, or, when the plan pauses it
 * before the switch-over (remote disk mirrors), pre-switchover until migrate-continue. */
int txn_wait_source(struct qu_txn *t)
{
	json_object *data = NULL, *st;
	const char *const *until = t->plan->pause_switchover && !t->continued ? mig_end_or_pause : qu_mig_end;
	int r;
	/* A copy takes seconds: report progress every half second until it ends. */
	int progress = t->copy && t->copy->progress && !qu_strategy_shares_ram(t->plan->strategy);
	for (;;) {
		uint64_t step = progress ? qu_now_us() + 500000u : t->deadline;
		r = qu_qmp_wait_event(t->old, "MIGRATION", until, t->switched ? t->pidfd_old : -1,
				      step < t->deadline ? step : t->deadline, &data);
		if (r != -ETIMEDOUT || qu_now_us() >= t->deadline)
			break;
		txn_report_progress(t);
	}
	if (r == -ETIMEDOUT && !qu_strategy_shares_ram(t->plan->strategy) && !t->switched)
		return txn_copy_timed_out(t);
	if (r < 0)
		return r;
	const char *status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	r = strcmp(status, "completed") && (until != mig_end_or_pause || strcmp(status, "pre-switchover")) ? -EIO : 0;
	if (r < 0) {
		struct qu_mig_status m;
		qu_mig_query(t->old, t->deadline, &m);
		qu_err(r, "the old QEMU's migration ended with status '%s'%s%s", status, m.error[0] ? ": " : "", m.error);
	}
	json_object_put(data);
	return r;
}

/* The new QEMU has loaded the state when its incoming migration completes; if it exits
 * instead, the load failed (QEMU exits on a failed incoming migration). */
int txn_wait_target_loaded(struct qu_txn *t)
{
	int r = qu_mig_wait_incoming(t->ctl, t->pidfd_new, t->deadline);
	if (r < 0) {
		txn_add_target_stderr(t);
		return r;
	}
	char state[32];
	if ((r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state))) < 0) {
		txn_add_target_stderr(t);
		return r;
	}
	if (strcmp(state, "paused") && strcmp(state, "prelaunch"))
		return qu_err(-EIO, "the new QEMU is in run state '%s' after loading, expected 'paused'", state);
	return 0;
}

/* What the transaction holds, for the steps it shares with the guardian (upgrade/undo.h). */
struct qu_hold txn_held(const struct qu_txn *t)
{
	return (struct qu_hold){ .old = t->old, .ctl = t->ctl, .pidfd_old = t->pidfd_old, .pidfd_new = t->pidfd_new };
}

/* Every commit decision is proven against the process, not inferred from an earlier answer:
 * right before `cont`, the new QEMU's pidfd says it lives and its private monitor that it
 * holds the guest, paused. */
static int target_ready(struct qu_txn *t)
{
	char state[32] = "";
	if (qu_pidfd_wait_exit(t->pidfd_new, qu_now_us()) == 0)
		return qu_err(-ECHILD, "the new QEMU %d exited before its cont", (int)t->new_pid);
	int r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state));
	if (r < 0)
		return qu_err_wrap(r, "the new QEMU %d does not answer before its cont", (int)t->new_pid);
	if (strcmp(state, "paused") && strcmp(state, "running"))
		return qu_err(-EIO, "the new QEMU %d is in run state '%s' before its cont", (int)t->new_pid, state);
	return 0;
}

int txn_resume_target(struct qu_txn *t)
{
	int r = target_ready(t);
	if (r < 0 || (r = qu_qmp_execute(t->ctl, "cont", NULL, -1, t->deadline, NULL)) < 0)
		return r;
	char state[32];
	r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state));
	if (r < 0)
		return r;
	if (strcmp(state, "running"))
		return qu_err(-EIO, "the new QEMU is in run state '%s' after cont", state);
	return 0;
}

/* The guest's pause as the host clock saw it: from the old QEMU's STOP event to the new
 * QEMU's RESUME event (QEMU stamps both with the host's wall clock). */
static void measure_pause(struct qu_txn *t)
{
	int64_t stop = 0, resume = 0;
	uint64_t soon = qu_now_us() + 1000000u;
	if (qu_qmp_event_time(t->old, "STOP", soon, &stop) == 0 &&
	    qu_qmp_event_time(t->ctl, "RESUME", soon, &resume) == 0 && resume >= stop)
		t->rep->pause_ms = (double)(resume - stop) / 1000.0;
	else
		t->rep->pause_ms = -1;
}

void txn_collect_stats(struct qu_txn *t)
{
	struct qu_mig_status m;
	if (qu_mig_query(t->old, t->deadline, &m) < 0)
		return;
	/* QEMU's downtime counts from its own stop, which a VM we stopped first never had (its
	 * number is then meaningless): the pause the host saw stands in for it. */
	if (m.downtime_ms >= 0)
		t->rep->downtime_ms = (double)m.downtime_ms;
	if (t->plan->stop_first)
		t->rep->downtime_ms = -1;
	t->rep->transferred_bytes = m.transferred;
	t->rep->ram_copied_bytes = m.copied;
}

/* The guest runs on the new QEMU: pty relays may read the pty now (a rollback instead
 * closes their go pipes unwritten, and they end). */
void txn_relays_go(struct qu_txn *t, int go)
{
	qu_harvest_relays_go(&t->h, go);
}

void txn_commit(struct qu_txn *t)
{
	txn_relays_go(t, 1);
	t->j.phase = QU_PH_COMMITTED;
	if (txn_journal_step(t, QU_PH_COMMITTED) < 0 || qu_fault(QU_FI_COMMITTED) < 0)
		qu_info("warning after the commit point: %s; finishing the upgrade", qu_err_msg());
	t->rep->commit_ms = (double)(qu_now_us() - t->rep->start_us) / 1000.0;
	qu_info("new QEMU PID %d runs the guest (commit point)", (int)t->new_pid);
}

/* Handover and precopy: the old QEMU sends everything, the new one loads it paused, and its
 * `cont` is the commit point. */
int txn_precopy_finish(struct qu_txn *t)
{
	int r;
	if ((r = txn_wait_source(t)) < 0) {
		/* Usually the new QEMU refused the stream: give it a moment to exit and say why. */
		qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 1000000u);
		txn_add_target_stderr(t);
		return r;
	}
	if ((r = txn_journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0 || (r = txn_checkpoint(QU_FI_SOURCE_COMPLETED)) < 0 ||
	    (r = txn_wait_target_loaded(t)) < 0 || (r = txn_checkpoint(QU_FI_TARGET_LOADED)) < 0)
		return r;
	t->rep->extra_memory_bytes = qu_proc_anon_bytes(t->new_pid);
	/* From here on the guest moves forward: a Ctrl-C no longer rolls back. */
	qu_cancel_enable(0);
	if ((r = txn_journal_step(t, QU_PH_RESUMING)) < 0 || (r = txn_resume_target(t)) < 0)
		return r;
	txn_commit(t);
	return 0;
}

/* The new QEMU's private monitor: a listening socket at a path of our own, so that the
 * guardian or --recover can still ask the new QEMU whether it runs the guest. */
int txn_ctl_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return qu_err(-ENAMETOOLONG, "state directory path too long for a socket: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return qu_err(-errno, "socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 2) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot listen on %s: %s", path, strerror(e));
	}
	return fd;
}

void txn_journal_init(struct qu_txn *t)
{
	const struct qu_vm *vm = t->vm;
	struct qu_journal *j = &t->j;
	memset(j, 0, sizeof(*j));
	j->tool_pid = getpid();
	j->old_pid = vm->pid;
	j->old_start = vm->pin.start;
	j->was_running = !strcmp(vm->runstate, "running");
	snprintf(j->qmp, sizeof(j->qmp), "%s", vm->qmp_path);
	j->qmp_root = vm->qmp_root;
	qu_ident_of(&vm->ctx, &j->vm_user); /* what is done to the VM's paths is done as its user */
	if (t->plan->remote)
		snprintf(j->remote, sizeof(j->remote), "%s", t->plan->remote->host);
	else
		qu_state_path(vm->pid, "ctl", j->ctl, sizeof(j->ctl));
	snprintf(j->pidfile, sizeof(j->pidfile), "%s", vm->pidfile);
	for (size_t i = 0; i < vm->nlis; i++)
		if (vm->lis[i].path[0])
			snprintf(j->listeners[j->nlisteners++], QU_SUN_PATH_MAX, "%s", vm->lis[i].path);
	for (size_t i = 0; i < vm->nrebound; i++)
		snprintf(j->rebound[j->nrebound++], QU_SUN_PATH_MAX, "%s", vm->rebound[i]);
	/* Retire the old QEMU with SIGKILL (qu_retire_old says why); QEMU_UPGRADE_RETIRE=quit
	 * lets it exit cleanly (SIGTERM) instead, where no tap downscript would run. */
	const char *how = qu_test_env("QEMU_UPGRADE_RETIRE");
	j->kill_old = !how || strcmp(how, "quit");
	for (size_t i = 0; i < vm->ntaps; i++)
		j->kill_old |= vm->taps[i].downscript;
}

/* After the commit: the report's numbers, the new QEMU configured for migration as the old
 * one was (a later save or migration of the VM must not inherit x-ignore-shared), and the old
 * QEMU retired, but only once the new QEMU is proven to hold the guest: alive by its pidfd
 * and answering on its private monitor. A new QEMU that died after taking over leaves the
 * guest lost, and the old QEMU paused (settled by the same rules as the guardian's). */
int txn_finish(struct qu_txn *t)
{
	struct qu_hold h = txn_held(t);
	txn_collect_stats(t);
	measure_pause(t);
	qu_settings_back_on_new(&t->j, &h);
	/* QEMU 7.2 reports its own clock as the downtime of a postcopy whose switch took under
	 * a millisecond: a number longer than the whole upgrade is not a downtime. */
	if (t->rep->downtime_ms < 0 || t->rep->downtime_ms > (double)(qu_now_us() - t->rep->start_us) / 1000.0)
		t->rep->downtime_ms = t->rep->pause_ms;
	qu_debug("%d threads got the CPU affinity of the old QEMU's thread of the same name",
		 qu_thread_affinity_copy(t->vm->pid, t->new_pid));
	/* Per-thread cgroups (libvirt's vcpuN, iothreadN, emulator) while the old threads still
	 * show theirs; past the commit a thread that cannot join is a warning, not a rollback. */
	int cg_failed, cg_moved = qu_thread_cgroups_copy(t->vm->pid, t->new_pid, &cg_failed);
	if (cg_moved < 0)
		qu_info("warning after the commit point: cannot carry the threads' cgroups: %s", strerror(-cg_moved));
	else if (cg_moved || cg_failed)
		qu_info("%d threads joined the cgroups of the old QEMU's thread of the same name, %d could not",
			cg_moved, cg_failed);
	enum qu_new_state now = qu_new_state(&t->j, &h, t->deadline);
	if (now == QU_NEW_GONE || now == QU_NEW_SILENT)
		return qu_err(-EIO, "the new QEMU %d is %s after it took over the guest", (int)t->new_pid,
			      now == QU_NEW_GONE ? "gone" : "not answering its monitor");
	/* QEMU runs no downscript= for the taps it now holds by fd=: watchers do (started once
	 * the old QEMU is gone), with the taps taken from it while it still has them. */
	int taps[QU_MAX_NETDEVS];
	qu_tapwatch_take(t->vm, t->pidfd_old, taps);
	/* After a copy the old QEMU's exit frees the memory the host's ledger counted for it:
	 * the booking lasts until it has. Otherwise nothing waits for it (qu_retire_old). */
	qu_retire_old(&t->j, &h, t->plan->ram_copy_bytes > 0 || t->j.postcopy);
	qu_info("old QEMU PID %d retired", (int)t->vm->pid);
	qu_tapwatch_start(t->vm, taps, t->new_pid, t->rep->tap_watch, sizeof(t->rep->tap_watch));
	if (t->rep->tap_watch[0])
		qu_info("down scripts: %s", t->rep->tap_watch);
	if (txn_journal_step(t, QU_PH_RETIRED) < 0 || qu_fault(QU_FI_RETIRED) < 0)
		qu_info("warning after the upgrade: %s", qu_err_msg());
	return 0;
}
