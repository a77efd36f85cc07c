/* cpr-exec (--keep-pid, QEMU >= 10.2 on both sides): the old QEMU saves its device state into
 * a file of ours and execs the new binary in its own process; the new image maps the same
 * guest RAM (CPR keeps its memfds open across the exec), waits at -incoming defer, and loads
 * the state when the tool asks. The PID stays. Measured in docs/cpr-exec-research.md.
 *
 * The point of no return is the exec: before it a failure is the usual rollback (QEMU itself
 * resumes the old image when the exec fails); after it, the old image is gone and only the new
 * one can run the guest (qu_cpr_exec_settle in cprexec-settle.c, also the guardian's and
 * --recover's). */
#include "upgrade/txn.h"
#include "upgrade/pageflip/cprexec.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/tapwatch.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/launcher.h"
#include "upgrade/log.h"
#include "upgrade/report.h"
#include "upgrade/settle.h"
#include "upgrade/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The old QEMU: mode cpr-exec with the new command line as the exec's argv (argv[0] the new
 * binary's absolute path: QEMU runs it with execvp, in the VM's own environment). */
static int set_exec(struct qu_txn *t)
{
	struct qu_mig_settings want = { .events = 1 };
	int r = qu_mig_set(t->old, &want, t->deadline);
	if (r < 0)
		return r;
	char **argv = qu_argv_flatten(&t->plan->argv);
	if (!argv)
		return -ENOMEM;
	json_object *args = json_object_new_object(), *cmd = json_object_new_array();
	/* Tests put a failing exec in place (QEMU_UPGRADE_CPR_EXEC_PROGRAM: a missing file, or
	 * one that exits) or a command line the state does not fit (QEMU_UPGRADE_CPR_EXEC_APPEND,
	 * words split at spaces, e.g. "-smp 2"). */
	const char *program = qu_test_env("QEMU_UPGRADE_CPR_EXEC_PROGRAM"), *append = qu_test_env("QEMU_UPGRADE_CPR_EXEC_APPEND");
	for (char **a = argv; *a; a++)
		json_object_array_add(cmd, json_object_new_string(a == argv && program ? program : *a));
	qu_strv_free(argv);
	char *words = append ? strdup(append) : NULL, *save = NULL;
	for (char *w = words ? strtok_r(words, " ", &save) : NULL; w; w = strtok_r(NULL, " ", &save))
		json_object_array_add(cmd, json_object_new_string(w));
	free(words);
	json_object_object_add(args, "mode", json_object_new_string("cpr-exec"));
	json_object_object_add(args, "cpr-exec-command", cmd);
	return qu_qmp_execute(t->old, "migrate-set-parameters", args, -1, t->deadline, NULL);
}

/* Until the old image has saved the state (completed: the exec follows at once) or the exec
 * failed (failed: QEMU resumed the old image by itself, and says why). */
static int wait_saved(struct qu_txn *t)
{
	json_object *data = NULL, *st;
	int r = qu_qmp_wait_event(t->old, "MIGRATION", qu_mig_end, -1, t->deadline, &data);
	if (r < 0)
		return r;
	const char *status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	r = strcmp(status, "completed") ? -EIO : 0;
	if (r < 0) {
		struct qu_mig_status m;
		qu_mig_query(t->old, t->deadline, &m);
		qu_err(r, "the old QEMU's cpr-exec ended with status '%s'%s%s (before the point of no return: QEMU "
		       "resumes the old image itself)", status, m.error[0] ? ": " : "", m.error);
	}
	json_object_put(data);
	return r;
}

/* The exec closes every monitor connection: our end reads EOF. An exec that fails (execvp
 * returns: no such file, EPERM under spawn=deny) turns the completed migration into a failed
 * one, and QEMU resumes the old image itself. */
static int wait_exec(struct qu_txn *t)
{
	static const char *const failed[] = { "failed", NULL };
	int r = qu_qmp_wait_event(t->old, "MIGRATION", failed, t->pidfd_old, t->deadline, NULL);
	if (r == -ECONNRESET)
		return 0;
	if (r == 0) {
		struct qu_mig_status m;
		qu_mig_query(t->old, t->deadline, &m);
		return qu_err(-EIO, "QEMU PID %d could not execute the new binary%s%s (QEMU resumed the old image itself)",
			      (int)t->vm->pid, m.error[0] ? ": " : "", m.error);
	}
	if (r == -ECHILD)
		return qu_err(-ECHILD, "QEMU PID %d died instead of executing the new binary", (int)t->vm->pid);
	return qu_err_wrap(r, "QEMU PID %d did not execute the new binary", (int)t->vm->pid);
}

/* The guest's pause: the old image's STOP to the new image's RESUME (QEMU stamps both with
 * the host's wall clock). */
static void measure_pause(struct qu_txn *t, int64_t stop, int64_t resume)
{
	if (stop > 0 && resume >= stop)
		t->rep->pause_ms = t->rep->downtime_ms = (double)(resume - stop) / 1000.0;
	else
		t->rep->pause_ms = t->rep->downtime_ms = -1;
}

/* Past the exec the new image failed (it exited, did not answer, or could not load the
 * state): whatever is left of the PID goes, and the old binary starts as a new process on our
 * copies of the kept descriptors (guest RAM, taps, inherited sockets, the namespaces and
 * directories), at the numbers the old one had them, and loads the state the old image saved
 * (mode cpr-exec: the RAM is in place, not in the file). The guest runs on as it was; the PID
 * is not kept. 0 when the guest runs again (the transaction still failed), -errno if not. */
static int rollback_outside(struct qu_txn *t, int prog, const char *why)
{
	struct qu_journal *j = &t->j;
	const struct qu_plan *p = t->plan;
	struct qu_launch_fd fds[QU_MAX_CARRIED + 3];
	int errpipe[2] = { -1, -1 }, r;
	int64_t resume = 0;
	qu_info("%s; rolling back: the old binary starts as a new process from the saved state", why);
	if (qu_pidfd_wait_exit(t->pidfd_old, qu_now_us()) != 0) {
		qu_pidfd_kill(t->pidfd_old, SIGKILL);
		qu_pidfd_wait_exit(t->pidfd_old, t->deadline);
	}
	qu_qmp_close(t->ctl);
	t->ctl = NULL;
	size_t n = 0;
	fds[n++] = (struct qu_launch_fd){ prog, 0, QU_FD_PROGRAM, "program (the old binary)", NULL };
	n += qu_launch_fds_of(p->fds, p->nfds, t->h.local, 0, fds + n);
	if (pipe2(errpipe, O_CLOEXEC) == 0)
		fds[n++] = (struct qu_launch_fd){ errpipe[1], 2, QU_FD_STDIO, "stderr (captured)", NULL };
	int saved = cpr_exec_open_state(j, O_RDONLY);
	if (saved < 0) {
		qu_close(&errpipe[0]);
		qu_close(&errpipe[1]);
		return saved;
	}
	/* Above every kept descriptor: those keep the numbers the old process gave them. */
	int saved_at = QU_FD_FIRST_CARRIED;
	for (size_t i = 0; i < n; i++)
		saved_at = fds[i].target >= saved_at ? fds[i].target + 1 : saved_at;
	fds[n++] = (struct qu_launch_fd){ saved, saved_at, QU_FD_MIGRATION, "saved state", NULL };
	char **argv = qu_argv_flatten(&p->back_argv), *context = qu_context_encode(&t->vm->ctx);
	struct qu_launch spec = { .argv = argv, .envp = t->vm->env, .cwd = t->vm->cwd[0] ? t->vm->cwd : NULL,
				  .context = context, .fds = fds, .nfds = n };
	r = argv && context ? qu_launch_local(&spec, t->deadline, &t->new_pid) : -ENOMEM;
	qu_strv_free(argv);
	free(context);
	close(saved);
	qu_close(&errpipe[1]);
	qu_close(&t->stderr_rd);
	t->stderr_rd = errpipe[0];
	if (r < 0)
		return qu_err_wrap(r, "starting the old binary again");
	if ((t->pidfd_new = qu_pidfd_open(t->new_pid)) < 0)
		return qu_err(t->pidfd_new, "pidfd_open(%d): %s", (int)t->new_pid, strerror(-t->pidfd_new));
	j->new_pid = t->new_pid;
	j->new_start = qu_proc_starttime(t->new_pid);
	txn_journal_step(t, QU_PH_RESUMING);
	struct qu_hold h = txn_held(t);
	struct qu_mig_settings want = { .events = 1 };
	snprintf(want.mode, sizeof(want.mode), "cpr-exec");
	char state[32] = "";
	if ((r = cpr_exec_reconnect(j, &h, t->pidfd_new, t->deadline, &t->ctl)) < 0 ||
	    (r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state))) < 0 ||
	    (r = strcmp(state, "inmigrate") ? qu_err(-EIO, "it is in run state '%s'", state) : 0) < 0 ||
	    (r = qu_mig_set(t->ctl, &want, t->deadline)) < 0 || (r = cpr_exec_load_state(j, t->ctl, t->pidfd_new, t->deadline, &resume, saved_at)) < 0) {
		txn_add_target_stderr(t);
		return qu_err_wrap(r, "the old binary, started again as PID %d", (int)t->new_pid);
	}
	if (qu_mig_set(t->ctl, &j->old_settings, t->deadline) < 0)
		qu_info("warning: QEMU PID %d keeps mode cpr-exec: %s", (int)t->new_pid, qu_err_msg());
	snprintf(t->rep->rolled_back, sizeof(t->rep->rolled_back), "the new image failed after the exec; the old binary "
		 "runs the guest again from the saved state, in a new process: PID %d (the PID %d was not kept)",
		 (int)t->new_pid, (int)t->vm->pid);
	return 0;
}

static int cpr_exec_steps(struct qu_txn *t, int prog);

static int cpr_exec_run(struct qu_txn *t)
{
	struct qu_journal *j = &t->j;
	int r;
	t->new_pid = t->vm->pid; /* the report's "new PID": the same */
	j->cpr_exec = 1;
	j->cpr_fdset = -1;
	j->ctl[0] = '\0'; /* no private monitor: the VM's own, at its path */
	/* What a rollback after the exec needs, taken while the old image runs: its binary (the
	 * package upgrade may have replaced the file at its path) and our copies of the kept
	 * descriptors (guest RAM, taps, inherited sockets, namespaces, directories). */
	char exe[64];
	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)t->vm->pid);
	int prog = open(exe, O_RDONLY | O_CLOEXEC);
	if (prog < 0)
		return qu_err(-errno, "cannot open %s (the old binary, for a rollback): %s", exe, strerror(errno));
	r = qu_harvest(&t->h, t->plan->fds, t->plan->nfds, t->vm->pid, t->pidfd_old, &t->vm->ctx);
	if (r < 0 || (r = qu_pin_check(&t->vm->pin)) < 0) {
		close(prog);
		return r;
	}
	r = cpr_exec_steps(t, prog);
	close(prog);
	return r;
}

/* A failure past the exec: the rollback in a new process; the transaction fails either
 * way, and the journal says it is settled (nothing is left for the guardian) when the guest
 * runs again. */
static int after_exec_failed(struct qu_txn *t, int prog, int r, const char *what)
{
	char both[400];
	snprintf(both, sizeof(both), "%s (QEMU PID %d): %s", what, (int)t->vm->pid, qu_err_msg());
	if (rollback_outside(t, prog, both) < 0) {
		char why[512], path[PATH_MAX];
		snprintf(why, sizeof(why), "%s", qu_err_msg());
		cpr_exec_state_path(&t->j, path, sizeof(path));
		/* A QEMU that could not take the guest back holds nothing: it goes. */
		if (t->pidfd_new >= 0) {
			qu_pidfd_kill(t->pidfd_new, SIGKILL);
			qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 5000000u);
		}
		t->unsettled = 1;
		t->rep->unsettled = 1;
		return qu_err(r, "%s; the rollback into a new process failed too (%s): the guest is lost (its device "
			      "state stays in %s)", both, why, path);
	}
	t->j.phase = QU_PH_ROLLED_BACK;
	qu_journal_remove(t->vm->pid);
	return qu_err(r, "%s; rolled back into a new process, PID %d: the PID was not kept", both, (int)t->new_pid);
}

/* The steps; prog is the old binary, for a rollback. */
static int cpr_exec_steps(struct qu_txn *t, int prog)
{
	struct qu_journal *j = &t->j;
	int r, set = -1;
	int64_t stop = 0, resume = 0;
	int fd = cpr_exec_open_state(j, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0)
		return fd;
	/* The descriptor set is journaled: whoever settles a rollback takes it out again. */
	if ((r = txn_save_old_settings(t)) < 0 || (r = txn_journal_step(t, QU_PH_MIGRATING)) < 0 ||
	    (r = set_exec(t)) < 0 || (r = set = j->cpr_fdset = cpr_exec_add_fd(t->old, fd, t->deadline)) < 0 ||
	    (r = txn_journal_step(t, QU_PH_MIGRATING)) < 0 || (r = txn_checkpoint(QU_FI_TARGET_PREPARED)) < 0) {
		close(fd);
		if (set >= 0)
			cpr_exec_remove_fdset(t->old, set, t->deadline);
		return r;
	}
	close(fd);
	char uri[48];
	snprintf(uri, sizeof(uri), "file:/dev/fdset/%d", set);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	qu_info("migration started (cpr-exec: QEMU PID %d saves its device state and executes %s)", (int)t->vm->pid,
		t->plan->target.path);
	if ((r = qu_qmp_execute(t->old, "migrate", args, -1, t->deadline, NULL)) < 0 || (r = wait_saved(t)) < 0) {
		cpr_exec_remove_fdset(t->old, set, t->deadline);
		return r;
	}
	/* Received before the completion: at hand. */
	qu_qmp_event_time(t->old, "STOP", qu_now_us() + 100000u, &stop);
	/* Past the point of no return: the exec follows the completion at once. */
	qu_cancel_enable(0);
	if ((r = txn_journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0)
		return r;
	if ((r = wait_exec(t)) < 0) {
		cpr_exec_remove_fdset(t->old, set, t->deadline);
		return r;
	}
	if ((r = txn_checkpoint(QU_FI_SOURCE_COMPLETED)) < 0)
		return r;
	struct qu_hold h = txn_held(t);
	h.old = NULL;
	char state[32] = "";
	if ((r = cpr_exec_reconnect(j, &h, t->pidfd_old, t->deadline, &t->ctl)) < 0 ||
	    (r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state))) < 0 ||
	    (r = strcmp(state, "inmigrate") ? qu_err(-EIO, "it is in run state '%s', not waiting for its state", state) : 0) < 0)
		return after_exec_failed(t, prog, r, "after the exec, the new image did not wait for its state");
	qu_info("QEMU PID %d runs %s, waiting for its state", (int)t->vm->pid, t->plan->target.version_line);
	if ((r = txn_journal_step(t, QU_PH_RESUMING)) < 0)
		return r;
	if ((r = cpr_exec_load_state(j, t->ctl, t->pidfd_old, t->deadline, &resume, -1)) < 0)
		return after_exec_failed(t, prog, r, "the new image could not load the state");
	if ((r = txn_checkpoint(QU_FI_TARGET_LOADED)) < 0)
		return r;
	txn_commit(t);
	measure_pause(t, stop, resume);
	/* The new image holds the taps by fd= at the numbers the old one had. */
	int taps[QU_MAX_NETDEVS];
	qu_tapwatch_take(t->vm, t->pidfd_old, taps);
	qu_tapwatch_start(t->vm, taps, t->vm->pid, t->rep->tap_watch, sizeof(t->rep->tap_watch));
	if (t->rep->tap_watch[0])
		qu_info("down scripts: %s", t->rep->tap_watch);
	/* The journal's new_pid is 0 (no second process); the settings go back on the image that
	 * runs now, through the connection just made. */
	if (qu_mig_set(t->ctl, &j->old_settings, t->deadline) < 0)
		qu_info("warning: QEMU PID %d keeps the upgrade's migration settings (mode cpr-exec): %s; set them back "
			"with QMP migrate-set-parameters before migrating or saving it", (int)t->vm->pid, qu_err_msg());
	if (txn_journal_step(t, QU_PH_RETIRED) < 0 || qu_fault(QU_FI_RETIRED) < 0)
		qu_info("warning after the upgrade: %s", qu_err_msg());
	return 0;
}

const struct qu_strategy_ops qu_cpr_exec_ops = {
	.moving = "cpr-exec: the same process executes the new binary",
	.run = cpr_exec_run,
};
