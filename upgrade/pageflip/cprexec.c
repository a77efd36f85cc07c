/* cpr-exec (--keep-pid, QEMU >= 10.2 on both sides): the old QEMU saves its device state into
 * a file of ours and execs the new binary in its own process; the new image maps the same
 * guest RAM (CPR keeps its memfds open across the exec), waits at -incoming defer, and loads
 * the state when the tool asks. The PID stays. Measured in docs/cpr-exec-research.md.
 *
 * The point of no return is the exec: before it a failure is the usual rollback (QEMU itself
 * resumes the old image when the exec fails); after it, the old image is gone and only the new
 * one can run the guest (qu_cpr_exec_settle below, also the guardian's and --recover's). */
#include "upgrade/txn.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
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

/* How often the tool knocks at the VM's QMP path while the exec runs: each try that lands
 * before the new image listens costs nothing, and every millisecond here is in the pause. */
#define RECONNECT_EVERY_US 2000u

/* add-fd: QEMU gets fd in a new descriptor set; returns the set's id, or -errno. */
static int add_fd(struct qu_qmp *q, int fd, uint64_t deadline)
{
	json_object *ret = NULL, *v;
	int r = qu_qmp_execute(q, "add-fd", NULL, fd, deadline, &ret);
	if (r < 0)
		return r;
	long long id = json_object_object_get_ex(ret, "fdset-id", &v) ? json_object_get_int64(v) : -1;
	json_object_put(ret);
	if (id < 0 || id > QU_MAX_FDSET_ID)
		return qu_err(-EPROTO, "add-fd: QEMU's answer has no usable fdset-id");
	return (int)id;
}

static void remove_fdset(struct qu_qmp *q, int id, uint64_t deadline)
{
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdset-id", json_object_new_int(id));
	qu_qmp_execute(q, "remove-fd", args, -1, deadline, NULL);
}

/* The state file, opened by root in the state directory (0700): QEMU never opens a path of
 * ours, it gets descriptors (add-fd, then file:/dev/fdset/N). */
static void state_path(const struct qu_journal *j, char *path, size_t len)
{
	qu_state_path(j->old_pid, "cprstate", path, len);
}

static int open_state(const struct qu_journal *j, int flags)
{
	char path[PATH_MAX];
	state_path(j, path, sizeof(path));
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return qu_err(-errno, "cannot open the cpr-exec state file %s: %s", path, strerror(errno));
	/* The VM's user owns its state: a QEMU started again for a rollback opens it through
	 * /proc/self/fd (the directory stays root's alone). */
	if ((flags & O_CREAT) && fchown(fd, j->vm_user.uid, j->vm_user.gid) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot give %s to the VM's user: %s", path, strerror(e));
	}
	return fd;
}

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

/* The VM's monitor, as inspect reached it, tried every few milliseconds: the old image's
 * listening socket resets a connection it still held, and the new image binds anew. pidfd
 * (or, at -1, the journal's PID) says whether the process still lives. */
static int alive(const struct qu_journal *j, struct qu_hold *h, int pidfd)
{
	return pidfd >= 0 ? qu_pidfd_wait_exit(pidfd, qu_now_us()) != 0 : qu_old_alive(j, h);
}

static int reconnect(const struct qu_journal *j, struct qu_hold *h, int pidfd, uint64_t deadline, struct qu_qmp **q)
{
	if (j->qmp_root)
		return qu_connect_old(j, deadline, q); /* libvirt's, checked to be this PID's */
	int r;
	do {
		int fd = qu_connect_as(&j->vm_user, j->qmp);
		uint64_t soon = qu_now_us() + 2000000u;
		r = fd < 0 ? fd : qu_qmp_connected(fd, j->qmp, soon < deadline ? soon : deadline, q);
		if (r == 0 || !alive(j, h, pidfd))
			break;
	} while (qu_now_us() < deadline && usleep(RECONNECT_EVERY_US) == 0);
	if (r < 0 && !alive(j, h, pidfd))
		return qu_err(-ECHILD, "the QEMU process is gone");
	return r < 0 ? qu_err_wrap(r, "the VM's monitor %s", j->qmp) : 0;
}

/* The new image loads the saved state (exit-on-error off: a failed load leaves it alive and
 * says why) and, the guest having run before, resumes it by itself: *resumed gets the wall
 * clock time QEMU stamped on its RESUME. */
static int load_state(const struct qu_journal *j, struct qu_qmp *q, int pidfd, uint64_t deadline, int64_t *resumed,
		      int inherited)
{
	int set = -1;
	char uri[48];
	/* A process of our own start inherited the file at a number; the exec'd image gets it
	 * in a descriptor set (a fresh QEMU in cpr-exec mode looks a set's members up in the
	 * CPR state it does not have, and reads nothing). */
	if (inherited >= 0) {
		snprintf(uri, sizeof(uri), "file:/proc/self/fd/%d", inherited); /* fd: takes no file */
	} else {
		int fd = open_state(j, O_RDONLY);
		if (fd < 0)
			return fd;
		set = add_fd(q, fd, deadline);
		close(fd);
		if (set < 0)
			return set;
		snprintf(uri, sizeof(uri), "file:/dev/fdset/%d", set);
	}
	struct qu_mig_settings want = { .events = 1 };
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	json_object_object_add(args, "exit-on-error", json_object_new_boolean(0));
	int r = qu_mig_set(q, &want, deadline);
	r = r ?: qu_qmp_execute(q, "migrate-incoming", args, -1, deadline, NULL);
	if (r == 0 && (r = qu_mig_wait_incoming(q, pidfd, deadline)) < 0) {
		struct qu_mig_status m;
		char said[256];
		snprintf(said, sizeof(said), "%s", qu_err_msg());
		if (qu_mig_query(q, deadline, &m) == 0 && m.error[0])
			r = qu_err(r, "%s: %s", said, m.error);
		else
			r = qu_err(r, "%s", said);
	}
	if (set >= 0)
		remove_fdset(q, set, deadline);
	if (r < 0 || !j->was_running)
		return r;
	r = qu_qmp_event_time(q, "RESUME", deadline, resumed);
	char state[32] = "";
	if (r == 0 && (r = qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state))) == 0 &&
	    strcmp(state, "running"))
		r = qu_err(-EIO, "the new image is in run state '%s' after loading, expected 'running'", state);
	return r;
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
	int saved = open_state(j, O_RDONLY);
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
	if ((r = reconnect(j, &h, t->pidfd_new, t->deadline, &t->ctl)) < 0 ||
	    (r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state))) < 0 ||
	    (r = strcmp(state, "inmigrate") ? qu_err(-EIO, "it is in run state '%s'", state) : 0) < 0 ||
	    (r = qu_mig_set(t->ctl, &want, t->deadline)) < 0 || (r = load_state(j, t->ctl, t->pidfd_new, t->deadline, &resume, saved_at)) < 0) {
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
		state_path(&t->j, path, sizeof(path));
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
	int fd = open_state(j, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0)
		return fd;
	/* The descriptor set is journaled: whoever settles a rollback takes it out again. */
	if ((r = txn_save_old_settings(t)) < 0 || (r = txn_journal_step(t, QU_PH_MIGRATING)) < 0 ||
	    (r = set_exec(t)) < 0 || (r = set = j->cpr_fdset = add_fd(t->old, fd, t->deadline)) < 0 ||
	    (r = txn_journal_step(t, QU_PH_MIGRATING)) < 0 || (r = txn_checkpoint(QU_FI_TARGET_PREPARED)) < 0) {
		close(fd);
		if (set >= 0)
			remove_fdset(t->old, set, t->deadline);
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
		remove_fdset(t->old, set, t->deadline);
		return r;
	}
	/* Received before the completion: at hand. */
	qu_qmp_event_time(t->old, "STOP", qu_now_us() + 100000u, &stop);
	/* Past the point of no return: the exec follows the completion at once. */
	qu_cancel_enable(0);
	if ((r = txn_journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0)
		return r;
	if ((r = wait_exec(t)) < 0) {
		remove_fdset(t->old, set, t->deadline);
		return r;
	}
	if ((r = txn_checkpoint(QU_FI_SOURCE_COMPLETED)) < 0)
		return r;
	struct qu_hold h = txn_held(t);
	h.old = NULL;
	char state[32] = "";
	if ((r = reconnect(j, &h, t->pidfd_old, t->deadline, &t->ctl)) < 0 ||
	    (r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state))) < 0 ||
	    (r = strcmp(state, "inmigrate") ? qu_err(-EIO, "it is in run state '%s', not waiting for its state", state) : 0) < 0)
		return after_exec_failed(t, prog, r, "after the exec, the new image did not wait for its state");
	qu_info("QEMU PID %d runs %s, waiting for its state", (int)t->vm->pid, t->plan->target.version_line);
	if ((r = txn_journal_step(t, QU_PH_RESUMING)) < 0)
		return r;
	if ((r = load_state(j, t->ctl, t->pidfd_old, t->deadline, &resume, -1)) < 0)
		return after_exec_failed(t, prog, r, "the new image could not load the state");
	if ((r = txn_checkpoint(QU_FI_TARGET_LOADED)) < 0)
		return r;
	txn_commit(t);
	measure_pause(t, stop, resume);
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

/* Settling a cpr-exec upgrade from the journal and the one process: the tool's own failure
 * path, the guardian and --recover. The process tells where it is: the old image (its
 * migration failed, or it is still saving, or it saved and is about to exec), the new image
 * waiting for its state (then the way is forward: load it), or the new image running. */
static int transitional(struct qu_qmp *q, uint64_t deadline, char *state, size_t len)
{
	struct qu_mig_status m;
	if (qu_qmp_query_string(q, "query-status", "status", deadline, state, len) < 0 || qu_mig_query(q, deadline, &m) < 0)
		return -1; /* gone from under us: the exec, or the process's end */
	/* Saving, or saved and about to exec (postmigrate): its monitor closes in moments. */
	return qu_mig_running(m.status) || (!strcmp(m.status, "completed") && strcmp(state, "running") &&
					    strcmp(state, "inmigrate"));
}

int qu_cpr_exec_settle(const struct qu_journal *j, struct qu_hold *h, char *what, size_t len, enum qu_settle_way *way)
{
	uint64_t deadline = qu_now_us() + 30u * 1000000u;
	int pid = (int)j->old_pid, r = 0, t = -1;
	struct qu_qmp *mine = NULL, *q = NULL;
	char state[32] = "";
	*way = QU_SETTLE_UNKNOWN;
	/* A monitor serves one client at a time: a connection the caller holds goes first. */
	struct qu_qmp *held[2] = { h->ctl, h->old };
	for (int i = 0; i < 2 && !q; i++)
		if (held[i] && (t = transitional(held[i], deadline, state, sizeof(state))) == 0)
			q = held[i];
	while (!q) {
		if (!qu_old_alive(j, h)) {
			*way = QU_SETTLE_LOST;
			snprintf(what, len, "PID %d: QEMU died during its cpr-exec upgrade (phase %s): the guest is lost",
				 pid, qu_phase_name(j->phase));
			return -ESRCH;
		}
		qu_qmp_close(mine);
		mine = NULL;
		if (qu_now_us() >= deadline || reconnect(j, h, -1, deadline, &mine) < 0) {
			snprintf(what, len, "PID %d: cpr-exec upgrade at phase %s: QEMU does not answer its monitor "
				 "(%s); left as it is: run qemu-upgrade --recover", pid, qu_phase_name(j->phase),
				 qu_err_msg());
			qu_qmp_close(mine);
			return -EAGAIN;
		}
		if ((t = transitional(mine, deadline, state, sizeof(state))) == 0)
			q = mine;
		else
			usleep(20000);
	}
	if (!strcmp(state, "inmigrate")) {
		/* The exec happened: the new image waits for the state. */
		int64_t resumed;
		if ((r = load_state(j, q, h->pidfd_old, deadline, &resumed, -1)) < 0) {
			*way = QU_SETTLE_LOST;
			snprintf(what, len, "PID %d: after the exec, the new image could not load the saved state: %s; "
				 "the guest does not run", pid, qu_err_msg());
			qu_qmp_close(mine);
			return r;
		}
		*way = QU_SETTLE_FORWARD;
	} else {
		/* The new image loaded the state (only after the journal said resuming), or the old
		 * one runs on (its exec failed, or it never began; a "completed" it reports may be
		 * an earlier upgrade's): either way it gets its settings back, and runs. */
		*way = j->phase >= QU_PH_RESUMING ? QU_SETTLE_FORWARD : QU_SETTLE_BACK;
		/* Back in the old image: the state file's descriptor set is ours to take out (it
		 * would stand in the way of the next --keep-pid). */
		if (*way == QU_SETTLE_BACK && j->cpr_fdset >= 0)
			remove_fdset(q, j->cpr_fdset, deadline);
		if (strcmp(state, "running") && j->was_running && (r = qu_qmp_execute(q, "cont", NULL, -1, deadline, NULL)) < 0) {
			*way = QU_SETTLE_UNKNOWN;
			snprintf(what, len, "PID %d: cpr-exec upgrade: QEMU is in run state '%s' and could not be resumed: %s",
				 pid, state, qu_err_msg());
			qu_qmp_close(mine);
			return -EAGAIN;
		}
	}
	if (j->caps_saved && qu_mig_set(q, &j->old_settings, deadline) < 0)
		qu_info("warning: QEMU PID %d keeps the upgrade's migration settings (mode cpr-exec): %s", pid, qu_err_msg());
	qu_qmp_close(mine);
	if (*way == QU_SETTLE_FORWARD)
		snprintf(what, len, "PID %d: finished the cpr-exec upgrade: the new binary runs the guest in the same PID",
			 pid);
	else
		snprintf(what, len, "PID %d: rolled back from phase %s: the old QEMU runs the guest on in the same PID, "
			 "its migration settings restored", pid, qu_phase_name(j->phase));
	return 0;
}
