#include "upgrade/execute.h"
#include "qemu-upgrade.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/ramblocks.h"
#include "upgrade/clock.h"
#include "upgrade/fault.h"
#include "upgrade/guardian.h"
#include "upgrade/journal.h"
#include "upgrade/paths.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/launcher.h"
#include "upgrade/ptyrelay.h"
#include "upgrade/log.h"
#include "upgrade/testhooks.h"
#include "upgrade/settle.h"
#include "upgrade/undo.h"
#include "upgrade/stream.h"
#include "remote/blk/mirror.h"
#include "remote/client.h"
#include "remote/tls.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <unistd.h>

/* No cap on the local channel: QEMU 7.2's default of 128 MiB/s would stretch every copy. */
#define UNLIMITED_BANDWIDTH (1ULL << 40)
/* After a postcopy switch there is no rollback: wait for the pages as long as both QEMUs
 * live (each one's death ends the wait at once). */
#define POSTCOPY_TIMEOUT_US (3600ull * 1000000u)
/* The agent waits up to 120 s to load and resume. */
#define REMOTE_RESUME_TIMEOUT_US (150ull * 1000000u)

struct txn {
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
	int local[QU_MAX_CARRIED]; /* harvested copies of the carried descriptors */
	int tap_hdr[QU_MAX_CARRIED]; /* vnet header size of each tap queue before the new QEMU */
	int switched;             /* postcopy: the old QEMU handed the guest over; no way back */
	int unsettled;            /* postcopy failed past the point of asking and could not be settled */
	int postcopy_asked;       /* migrate-start-postcopy was accepted (or its answer lost) */
	int continued;            /* remote: migrate-continue sent after the pre-switchover pause */
	int resume_sent;          /* remote: the agent was asked to resume the guest there */
	struct qu_tls tls;        /* remote: the old QEMU's TLS credentials */
	int relay_go[QU_MAX_PTYS]; /* per pty relay: a byte at the commit point lets it start */
	size_t nrelays;
};

/* Remembers the old QEMU's migration settings (in the journal too), so that a rollback
 * leaves them as they were. */
static int save_old_settings(struct txn *t)
{
	int r = qu_mig_get(t->old, t->deadline, &t->j.old_settings);
	if (r == 0)
		t->j.caps_saved = 1;
	return r;
}

static int harvest(struct txn *t)
{
	const struct qu_plan *p = t->plan;
	for (size_t i = 0; i < p->nfds; i++) {
		if (p->fds[i].kind == QU_FD_RAM && p->fds[i].old_fd < 0) {
			/* Converted RAM: a fresh memfd the migration fills. */
			t->local[i] = memfd_create("memory-backend-memfd", MFD_CLOEXEC);
			if (t->local[i] < 0 || ftruncate(t->local[i], (off_t)p->fds[i].size) < 0)
				return qu_err(-errno, "cannot make a %llu-byte memfd for the guest's RAM: %s",
					      p->fds[i].size, strerror(errno));
			continue;
		}
		if (p->fds[i].kind == QU_FD_PTY) {
			/* The master goes to a relay; the new QEMU gets a socket to it. */
			int master = qu_pidfd_getfd(t->pidfd_old, p->fds[i].old_fd), sv[2];
			if (master < 0)
				return qu_err(master, "cannot take %s (fd %d) from PID %d: %s", p->fds[i].name,
					      p->fds[i].old_fd, (int)t->vm->pid, strerror(-master));
			int go[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(go, O_CLOEXEC) < 0) {
				int e = errno;
				close(master);
				return qu_err(-e, "socketpair: %s", strerror(e));
			}
			int r = qu_ptyrelay_start(master, sv[0], go[0], &t->vm->ctx);
			close(master);
			close(sv[0]);
			close(go[0]);
			t->relay_go[t->nrelays++] = go[1];
			if (r < 0) {
				close(sv[1]);
				return r;
			}
			t->local[i] = sv[1];
			continue;
		}
		if (p->fds[i].kind == QU_FD_VHOST) {
			/* The new QEMU becomes its owner (VHOST_SET_OWNER) when it sets the tap up. */
			t->local[i] = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
			if (t->local[i] < 0)
				return qu_err(-errno, "cannot open /dev/vhost-net for %s: %s", p->fds[i].name, strerror(errno));
			continue;
		}
		if (p->fds[i].kind == QU_FD_NAMESPACE || p->fds[i].kind == QU_FD_DIRECTORY) {
			/* By PID: the pin check after the harvest proves they were the old QEMU's. */
			char path[64];
			int dir = p->fds[i].kind == QU_FD_DIRECTORY;
			snprintf(path, sizeof(path), "/proc/%d/%s%s", (int)t->vm->pid, dir ? "" : "ns/", p->fds[i].name);
			t->local[i] = open(path, dir ? O_PATH | O_DIRECTORY | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
			if (t->local[i] < 0)
				return qu_err(-errno, "cannot open %s: %s", path, strerror(errno));
			continue;
		}
		t->local[i] = qu_pidfd_getfd(t->pidfd_old, p->fds[i].old_fd);
		if (t->local[i] < 0)
			return qu_err(t->local[i], "cannot take %s (fd %d) from PID %d: %s", p->fds[i].name,
				      p->fds[i].old_fd, (int)t->vm->pid, strerror(-t->local[i]));
	}
	return 0;
}

/* A new QEMU that opens a tap resets its vnet header size (and offloads) while the old QEMU
 * still runs the guest on it: frames would be read with the wrong header until the state is
 * loaded. The header size is the tap device's, so it is read before and put back at once.
 * A multiqueue tap's queue that the guest does not use is detached in the kernel, but a
 * starting QEMU believes every queue attached and aborts when detaching one fails: such
 * queues are attached again just before it starts (it detaches them itself as it sets up
 * the NIC; frames the kernel steers to them meanwhile are lost). */
static void tap_headers(struct txn *t, int restore)
{
	for (size_t i = 0; i < t->plan->nfds; i++) {
		if (t->plan->fds[i].kind != QU_FD_TAP || t->local[i] < 0)
			continue;
		if (!restore) {
			struct ifreq ifr;
			if (ioctl(t->local[i], TUNGETVNETHDRSZ, &t->tap_hdr[i]) < 0)
				t->tap_hdr[i] = -1;
			memset(&ifr, 0, sizeof(ifr));
			if (ioctl(t->local[i], TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_DETACH_QUEUE)) {
				memset(&ifr, 0, sizeof(ifr));
				ifr.ifr_flags = IFF_ATTACH_QUEUE;
				if (ioctl(t->local[i], TUNSETQUEUE, &ifr) < 0)
					qu_info("warning: %s: cannot attach the queue: %s", t->plan->fds[i].name,
						strerror(errno));
			}
		} else if (t->tap_hdr[i] > 0 && ioctl(t->local[i], TUNSETVNETHDRSZ, &t->tap_hdr[i]) < 0) {
			qu_info("warning: %s: cannot restore the vnet header size: %s", t->plan->fds[i].name,
				strerror(errno));
		}
	}
}

/* While the new QEMU starts it sets the tap's header size twice (netdev setup, then the
 * NIC's realize); a watcher puts the old size back within a fraction of a millisecond each
 * time, until the new QEMU answers its monitor (then it is done with the tap). */
struct tap_watch {
	struct txn *t;
	pthread_t thread;
	volatile int stop;
	int running;
};

static void *tap_watch_loop(void *arg)
{
	struct tap_watch *w = arg;
	while (!w->stop) {
		for (size_t i = 0; i < w->t->plan->nfds; i++) {
			int cur;
			if (w->t->plan->fds[i].kind != QU_FD_TAP || w->t->local[i] < 0 || w->t->tap_hdr[i] <= 0)
				continue;
			if (ioctl(w->t->local[i], TUNGETVNETHDRSZ, &cur) == 0 && cur != w->t->tap_hdr[i])
				ioctl(w->t->local[i], TUNSETVNETHDRSZ, &w->t->tap_hdr[i]);
		}
		usleep(200);
	}
	return NULL;
}

static void tap_watch_start(struct txn *t, struct tap_watch *w)
{
	w->t = t;
	w->stop = 0;
	w->running = 0;
	for (size_t i = 0; i < t->plan->nfds; i++)
		if (t->plan->fds[i].kind == QU_FD_TAP && t->tap_hdr[i] > 0)
			w->running = pthread_create(&w->thread, NULL, tap_watch_loop, w) == 0;
}

static void tap_watch_stop(struct tap_watch *w)
{
	if (!w->running)
		return;
	w->stop = 1;
	pthread_join(w->thread, NULL);
	w->running = 0;
}

static void close_harvest(struct txn *t)
{
	for (size_t i = 0; i < t->plan->nfds; i++)
		qu_close(&t->local[i]);
}

/* Starts the new QEMU paused, waiting for the migration stream on fd QU_FD_MIG. */
static int start_target(struct txn *t, int ctl_qemu, int mig_new)
{
	const struct qu_plan *p = t->plan;
	struct qu_launch_fd fds[QU_MAX_CARRIED + 4];
	size_t n = 0;
	int errpipe[2] = { -1, -1 };

	/* The binary that was checked and probed, and no other: by descriptor. */
	int prog = qu_binary_reopen(&p->target);
	if (prog < 0)
		return prog;
	fds[n++] = (struct qu_launch_fd){ prog, 0, QU_FD_PROGRAM, "program", NULL };
	fds[n++] = (struct qu_launch_fd){ ctl_qemu, QU_FD_CTL, QU_FD_CONTROL, "private monitor", NULL };
	fds[n++] = (struct qu_launch_fd){ mig_new, QU_FD_MIG, QU_FD_MIGRATION, "migration channel", NULL };
	for (size_t i = 0; i < p->nfds; i++)
		fds[n++] = (struct qu_launch_fd){ t->local[i], p->fds[i].target, p->fds[i].kind, p->fds[i].name,
						   p->fds[i].spec };
	if (p->capture_stderr) {
		if (pipe2(errpipe, O_CLOEXEC) < 0)
			return qu_err(-errno, "pipe: %s", strerror(errno));
		fds[n++] = (struct qu_launch_fd){ errpipe[1], 2, QU_FD_STDIO, "stderr (captured)", NULL };
	}
	char **argv = qu_argv_flatten(&p->argv);
	if (!argv) {
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
static void add_target_stderr(struct txn *t)
{
	/* A step that failed on the new QEMU's monitor says why in socket words (Broken pipe):
	 * when the process is gone, say that first. */
	if (t->pidfd_new >= 0 && qu_pidfd_wait_exit(t->pidfd_new, qu_now_us()) == 0)
		qu_err_wrap(-ECHILD, "the new QEMU %d is gone", (int)t->new_pid);
	qu_err_append_output(t->stderr_rd, "the new QEMU");
}

/* Firmware and ROMs are RAM blocks: a new release whose files changed size would have its
 * stream rejected. Compared while the old QEMU still runs untouched. */
static int check_ramblocks(struct txn *t)
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

static int prepare_target(struct txn *t)
{
	int r = qu_qmp_connect(t->j.ctl, t->deadline, &t->ctl);
	if (r < 0)
		return qu_err_wrap(r, "the new QEMU's monitor");
	if ((r = check_ramblocks(t)) < 0)
		return r;
	struct qu_mig_settings want = { .ignore_shared = t->plan->ignore_shared, .events = 1,
					.postcopy = t->plan->postcopy };
	char uri[32];
	snprintf(uri, sizeof(uri), "fd:%d", QU_FD_MIG);
	return qu_mig_incoming(t->ctl, &want, uri, t->deadline);
}

static int journal_step(struct txn *t, enum qu_phase phase);

static int start_migration(struct txn *t, int mig_old)
{
	int r = save_old_settings(t);
	if (r < 0 || (r = journal_step(t, QU_PH_MIGRATING)) < 0)
		return r;
	struct qu_mig_settings want = { .ignore_shared = t->plan->ignore_shared, .events = 1,
					.postcopy = t->plan->postcopy, .release_ram = t->plan->postcopy,
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
	t->j.postcopy = t->plan->postcopy;
	if (t->plan->postcopy && (r = journal_step(t, QU_PH_POSTCOPY)) < 0)
		return r;
	/* Copy with the guest stopped where a live copy would lose writes (TCG before 9.0); a
	 * rollback resumes it. */
	if (t->plan->stop_first && (r = qu_qmp_execute(t->old, "stop", NULL, -1, t->deadline, NULL)) < 0)
		return r;
	/* Once postcopy is asked for, only QEMU may call it off (a failed migration before the
	 * switch): a Ctrl-C from here on would race the switch, so it is ignored. */
	if (t->plan->postcopy)
		qu_cancel_enable(0);
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if ((r = qu_qmp_execute(t->old, "migrate", args, -1, t->deadline, NULL)) < 0)
		return r;
	if (!t->plan->postcopy)
		return 0;
	/* A QMP error answer means QEMU did not take the request: nothing to fear yet. Anything
	 * else (the answer lost) must be taken as asked. */
	r = qu_qmp_execute(t->old, "migrate-start-postcopy", NULL, -1, t->deadline, NULL);
	t->postcopy_asked = r != -EREMOTEIO;
	t->j.postcopy_asked = t->postcopy_asked;
	if (t->postcopy_asked)
		journal_step(t, QU_PH_POSTCOPY); /* for the guardian: forward only from here */
	return r;
}

/* An abstract UNIX socket name in QEMU's JSON migration-channel form. */
static json_object *channel(const char *type, const char *name)
{
	json_object *c = json_object_new_object(), *a = json_object_new_object();
	json_object_object_add(a, "transport", json_object_new_string("socket"));
	json_object_object_add(a, "type", json_object_new_string("unix"));
	json_object_object_add(a, "path", json_object_new_string(name));
	json_object_object_add(a, "abstract", json_object_new_boolean(1));
	json_object_object_add(c, "channel-type", json_object_new_string(type));
	json_object_object_add(c, "addr", a);
	return c;
}

/* Whether PID listens on the abstract UNIX socket @name (in its network namespace). */
static int listening(pid_t pid, const char *name)
{
	char path[64], *text = NULL, *save = NULL;
	int found = 0;
	snprintf(path, sizeof(path), "/proc/%d/net/unix", (int)pid);
	if (qu_read_file(path, &text, NULL) < 0)
		return 0;
	for (char *line = strtok_r(text, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save)) {
		unsigned long flags;
		char *at = strrchr(line, '@');
		found = at && !strcmp(at + 1, name) && sscanf(line, "%*s %*s %*s %lx", &flags) == 1 && (flags & 0x10000);
	}
	free(text);
	return found;
}

/* The new QEMU listens on the cpr channel early in its start; the old QEMU's migrate fails at
 * once if nothing listens yet. */
static int wait_cpr_listening(struct txn *t)
{
	while (!listening(t->new_pid, t->plan->cpr_channel)) {
		if (qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 2000u) == 0) {
			qu_err(-ECHILD, "the new QEMU exited before it listened on its cpr channel");
			add_target_stderr(t);
			return -ECHILD;
		}
		if (qu_now_us() >= t->deadline)
			return qu_err(-ETIMEDOUT, "the new QEMU did not listen on its cpr channel @%s", t->plan->cpr_channel);
	}
	return 0;
}

/* cpr-transfer finds RAM descriptors by backend id and silently makes fresh RAM for an id it
 * does not find: the new QEMU must map the very memfds the old one has, or the guest would
 * run on empty memory. */
static int check_same_ram(struct txn *t)
{
	char *maps = NULL, path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)t->new_pid);
	int r = qu_read_file(path, &maps, NULL);
	if (r < 0)
		return qu_err(r, "cannot read %s", path);
	for (size_t i = 0; i < t->vm->nram && r == 0; i++) {
		struct stat st;
		char fdpath[64];
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", (int)t->vm->pid, t->vm->ram[i].old_fd);
		if (t->vm->ram[i].old_fd < 0 || stat(fdpath, &st) < 0) {
			r = qu_err(-ENOENT, "guest RAM '%s': its descriptor in the old QEMU is unknown", t->vm->ram[i].id);
			break;
		}
		/* maps: "start-end perms offset major:minor inode path" */
		int found = 0;
		char *save = NULL, *copy = strdup(maps);
		for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line && !found; line = strtok_r(NULL, "\n", &save)) {
			unsigned maj, min;
			unsigned long ino;
			found = sscanf(line, "%*s %*s %*s %x:%x %lu", &maj, &min, &ino) == 3 && ino == (unsigned long)st.st_ino &&
				makedev(maj, min) == st.st_dev;
		}
		free(copy);
		if (!found)
			r = qu_err(-EIO, "cpr-transfer: the new QEMU does not map guest RAM '%s' (inode %lu) of the old one",
				   t->vm->ram[i].id, (unsigned long)st.st_ino);
	}
	free(maps);
	return r;
}

/* cpr-transfer: the new QEMU, started with the cpr channel on its command line, first waits
 * for the old one's RAM descriptors; only then does its monitor answer. The old QEMU sends
 * them in `migrate`, then waits until the new one has taken the main channel (the closing
 * of the cpr socket says so), which happens at `migrate-incoming`. Both channels are
 * abstract UNIX sockets: QEMU 10.0 takes no descriptor for either (its cpr input wants a
 * UNIX socket, and its old side crashes with a main channel given as fd). */
static int cpr_start(struct txn *t)
{
	int r;
	if ((r = wait_cpr_listening(t)) < 0 || (r = save_old_settings(t)) < 0 ||
	    (r = journal_step(t, QU_PH_MIGRATING)) < 0)
		return r;
	struct qu_mig_settings want = { .events = 1 };
	snprintf(want.mode, sizeof(want.mode), "cpr-transfer");
	if ((r = qu_mig_set(t->old, &want, t->deadline)) < 0)
		return r;
	json_object *args = json_object_new_object(), *ch = json_object_new_array();
	json_object_array_add(ch, channel("main", t->plan->main_channel));
	json_object_array_add(ch, channel("cpr", t->plan->cpr_channel));
	json_object_object_add(args, "channels", ch);
	if ((r = qu_qmp_execute(t->old, "migrate", args, -1, t->deadline, NULL)) < 0)
		return r;
	if ((r = qu_qmp_connect(t->j.ctl, t->deadline, &t->ctl)) < 0)
		return qu_err_wrap(r, "the new QEMU's monitor");
	want = (struct qu_mig_settings){ .events = 1 };
	if ((r = check_same_ram(t)) < 0 || (r = check_ramblocks(t)) < 0 || (r = qu_mig_set(t->ctl, &want, t->deadline)) < 0)
		return r;
	args = json_object_new_object();
	ch = json_object_new_array();
	json_object_array_add(ch, channel("main", t->plan->main_channel));
	json_object_object_add(args, "channels", ch);
	return qu_qmp_execute(t->ctl, "migrate-incoming", args, -1, t->deadline, NULL);
}

/* While QEMU copies guest RAM: its own counters, for the caller's progress display. */
static void report_progress(struct txn *t)
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
static int copy_timed_out(struct txn *t)
{
	struct qu_mig_status m;
	qu_mig_query(t->old, qu_now_us() + 2000000u, &m); /* zeros when it does not answer */
	double sent = (double)m.transferred / 1048576.0, left = (double)m.remaining / 1048576.0, mbps = m.mbps;
	return qu_err(-ETIMEDOUT, "copying guest RAM did not finish in time: %.0f MiB sent, %.0f MiB still dirty, "
		      "%.0f MB/s; the guest rewrites its memory faster than it can be sent within the downtime "
		      "limit: raise --timeout or --max-downtime, or lift --max-bandwidth%s", sent, left, mbps / 8.0,
		      t->plan->remote && !t->plan->no_tls ? " (TLS costs throughput: --no-tls on a network you trust)" : "");
}

static const char *const mig_end_or_pause[] = { "completed", "failed", "cancelled", "pre-switchover", NULL };

/* Waits for the old QEMU to send everything: status completed, or, when the plan pauses it
 * before the switch-over (remote disk mirrors), pre-switchover until migrate-continue. */
static int wait_source(struct txn *t)
{
	json_object *data = NULL, *st;
	const char *const *until = t->plan->pause_switchover && !t->continued ? mig_end_or_pause : qu_mig_end;
	int r;
	/* A copy takes seconds: report progress every half second until it ends. */
	int progress = t->copy && t->copy->progress && !t->plan->ignore_shared;
	for (;;) {
		uint64_t step = progress ? qu_now_us() + 500000u : t->deadline;
		r = qu_qmp_wait_event(t->old, "MIGRATION", until, t->switched ? t->pidfd_old : -1,
				      step < t->deadline ? step : t->deadline, &data);
		if (r != -ETIMEDOUT || qu_now_us() >= t->deadline)
			break;
		report_progress(t);
	}
	if (r == -ETIMEDOUT && !t->plan->ignore_shared && !t->switched)
		return copy_timed_out(t);
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
static int wait_target_loaded(struct txn *t)
{
	int r = qu_mig_wait_incoming(t->ctl, t->pidfd_new, t->deadline);
	if (r < 0) {
		add_target_stderr(t);
		return r;
	}
	char state[32];
	if ((r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state))) < 0) {
		add_target_stderr(t);
		return r;
	}
	if (strcmp(state, "paused") && strcmp(state, "prelaunch"))
		return qu_err(-EIO, "the new QEMU is in run state '%s' after loading, expected 'paused'", state);
	return 0;
}

/* What the transaction holds, for the steps it shares with the guardian (upgrade/undo.h). */
static struct qu_hold held(const struct txn *t)
{
	return (struct qu_hold){ .old = t->old, .ctl = t->ctl, .pidfd_old = t->pidfd_old, .pidfd_new = t->pidfd_new };
}

/* Every commit decision is proven against the process, not inferred from an earlier answer:
 * right before `cont`, the new QEMU's pidfd says it lives and its private monitor that it
 * holds the guest, paused. */
static int target_ready(struct txn *t)
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

static int resume_target(struct txn *t)
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
static void measure_pause(struct txn *t)
{
	int64_t stop = 0, resume = 0;
	uint64_t soon = qu_now_us() + 1000000u;
	if (qu_qmp_event_time(t->old, "STOP", soon, &stop) == 0 &&
	    qu_qmp_event_time(t->ctl, "RESUME", soon, &resume) == 0 && resume >= stop)
		t->rep->pause_ms = (double)(resume - stop) / 1000.0;
	else
		t->rep->pause_ms = -1;
}

static void collect_stats(struct txn *t)
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

static int journal_step(struct txn *t, enum qu_phase phase)
{
	t->j.phase = phase;
	qu_debug("phase %s", qu_phase_name(phase));
	return qu_journal_write(&t->j);
}

/* Where a test may inject a fault, and where a pending Ctrl-C takes effect. */
static int checkpoint(enum qu_fault_point point)
{
	return qu_fault(point) ?: qu_cancel_check();
}

/* The guest runs on the new QEMU: pty relays may read the pty now (a rollback instead
 * closes their go pipes unwritten, and they end). */
static void relays_go(struct txn *t, int go)
{
	for (size_t i = 0; i < t->nrelays; i++) {
		if (go && write(t->relay_go[i], "G", 1) != 1)
			qu_info("warning: a pty relay did not get the go: %s", strerror(errno));
		qu_close(&t->relay_go[i]);
	}
	t->nrelays = 0;
}

static void commit(struct txn *t)
{
	relays_go(t, 1);
	t->j.phase = QU_PH_COMMITTED;
	if (journal_step(t, QU_PH_COMMITTED) < 0 || qu_fault(QU_FI_COMMITTED) < 0)
		qu_info("warning after the commit point: %s; finishing the upgrade", qu_err_msg());
	t->rep->commit_ms = (double)(qu_now_us() - t->rep->start_us) / 1000.0;
	qu_info("new QEMU PID %d runs the guest (commit point)", (int)t->new_pid);
}

/* Handover and precopy: the old QEMU sends everything, the new one loads it paused, and its
 * `cont` is the commit point. */
static int precopy_finish(struct txn *t)
{
	int r;
	if ((r = wait_source(t)) < 0) {
		/* Usually the new QEMU refused the stream: give it a moment to exit and say why. */
		qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 1000000u);
		add_target_stderr(t);
		return r;
	}
	if ((r = journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0 || (r = checkpoint(QU_FI_SOURCE_COMPLETED)) < 0 ||
	    (r = wait_target_loaded(t)) < 0 || (r = checkpoint(QU_FI_TARGET_LOADED)) < 0)
		return r;
	t->rep->extra_memory_bytes = qu_proc_anon_bytes(t->new_pid);
	/* From here on the guest moves forward: a Ctrl-C no longer rolls back. */
	qu_cancel_enable(0);
	if ((r = journal_step(t, QU_PH_RESUMING)) < 0 || (r = resume_target(t)) < 0)
		return r;
	commit(t);
	return 0;
}

/* After asking for postcopy, a failure can be rolled back only if the old QEMU itself says
 * its migration failed or was cancelled (then nothing switched, and QEMU resumed it if it
 * ran): 1 when that is certain, 0 otherwise (a switch may have happened or may come). */
static int postcopy_called_off(struct txn *t)
{
	struct qu_mig_status m = { .status = "" };
	uint64_t deadline = qu_now_us() + 10000000u;
	while (qu_mig_query(t->old, deadline, &m) == 0 &&
	       (!strcmp(m.status, "setup") || !strcmp(m.status, "active") || !strcmp(m.status, "device")) &&
	       qu_now_us() < deadline)
		usleep(20000);
	return !strcmp(m.status, "failed") || !strcmp(m.status, "cancelled");
}

/* After the switch the new QEMU loads the device state and, started with -S, stays paused
 * for our `cont` (there is no event for that: ask until it says so). */
static int wait_target_switched(struct txn *t)
{
	char state[32];
	for (;;) {
		int r = qu_qmp_query_string(t->ctl, "query-status", "status", t->deadline, state, sizeof(state));
		if (r < 0) {
			qu_err_wrap(r, "the new QEMU after the postcopy switch");
			add_target_stderr(t);
			return r;
		}
		if (!strcmp(state, "paused") || !strcmp(state, "running"))
			return 0;
		if (strcmp(state, "inmigrate"))
			return qu_err(-EIO, "the new QEMU is in run state '%s' after the postcopy switch", state);
		if (qu_now_us() >= t->deadline)
			return qu_err(-ETIMEDOUT, "the new QEMU did not load the device state after the postcopy switch");
		if (qu_pidfd_wait_exit(t->pidfd_old, qu_now_us() + 300u) == 0)
			return qu_err(-ECHILD, "the old QEMU died right after the postcopy switch");
	}
}

/* Postcopy, the low-memory copy (asked for in start_migration): the old QEMU switches at
 * once (stopped first under TCG before 9.0, where a live phase loses writes), the new QEMU runs the guest while the
 * pages follow on demand and in the background, and the old QEMU frees each page once sent
 * (release-ram). The switch is the point of no return; the old QEMU may go only when it has
 * sent its last page. */
static int postcopy(struct txn *t)
{
	static const char *const switch_end[] = { "postcopy-active", "completed", "failed", "cancelled", NULL };
	json_object *data = NULL, *st;
	int r;
	/* The switch comes within moments, but a stalled one cannot be called off safely. */
	t->deadline = qu_now_us() + POSTCOPY_TIMEOUT_US;
	if ((r = qu_qmp_wait_event(t->old, "MIGRATION", switch_end, t->pidfd_old, t->deadline, &data)) < 0)
		return r;
	const char *status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	/* QEMU checks for the end before the postcopy request: a small guest may be done first. */
	int finished = !strcmp(status, "completed");
	if (strcmp(status, "postcopy-active") && strcmp(status, "completed")) {
		r = qu_err(-EIO, "the old QEMU's migration ended with status '%s' before the postcopy switch", status);
		json_object_put(data);
		qu_pidfd_wait_exit(t->pidfd_new, qu_now_us() + 1000000u);
		add_target_stderr(t);
		return r;
	}
	json_object_put(data);
	t->switched = 1;
	qu_cancel_enable(0);
	qu_info("postcopy switch: the guest moves to the new QEMU, its pages follow");
	if (qu_fault(QU_FI_POSTCOPY_SWITCHED) < 0)
		qu_info("warning after the postcopy switch: %s; finishing the upgrade", qu_err_msg());
	if ((r = wait_target_switched(t)) < 0)
		return r;
	t->rep->extra_memory_bytes = qu_proc_anon_bytes(t->new_pid);
	if ((r = journal_step(t, QU_PH_RESUMING)) < 0 || (r = resume_target(t)) < 0)
		return r;
	commit(t);
	if (!finished && (r = wait_source(t)) < 0)
		return r;
	r = qu_qmp_wait_event(t->ctl, "MIGRATION", qu_mig_end, t->pidfd_new, t->deadline, &data);
	if (r < 0)
		return qu_err_wrap(r, "the new QEMU did not receive the last pages");
	status = json_object_object_get_ex(data, "status", &st) ? json_object_get_string(st) : "?";
	if (strcmp(status, "completed"))
		r = qu_err(-EIO, "the new QEMU's incoming postcopy ended with status '%s'", status);
	json_object_put(data);
	return r;
}

/* The new QEMU's private monitor: a listening socket at a path of our own, so that the
 * guardian or --recover can still ask the new QEMU whether it runs the guest. */
static int ctl_listen(const char *path)
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

static void journal_init(struct txn *t)
{
	const struct qu_vm *vm = t->vm;
	struct qu_journal *j = &t->j;
	memset(j, 0, sizeof(*j));
	j->tool_pid = getpid();
	j->old_pid = vm->pid;
	j->old_start = vm->pin.start;
	j->was_running = !strcmp(vm->runstate, "running");
	snprintf(j->qmp, sizeof(j->qmp), "%s", vm->qmp_path);
	qu_ident_of(&vm->ctx, &j->vm_user); /* what is done to the VM's paths is done as its user */
	if (t->plan->remote)
		snprintf(j->remote, sizeof(j->remote), "%s", t->plan->remote->host);
	else
		qu_state_path(vm->pid, "ctl", j->ctl, sizeof(j->ctl));
	snprintf(j->pidfile, sizeof(j->pidfile), "%s", vm->pidfile);
	for (size_t i = 0; i < vm->nlis; i++)
		if (vm->lis[i].path[0])
			snprintf(j->listeners[j->nlisteners++], QU_SUN_PATH_MAX, "%s", vm->lis[i].path);
	/* Retire the old QEMU with SIGKILL (qu_retire_old says why); QEMU_UPGRADE_RETIRE=quit
	 * lets it exit cleanly (SIGTERM) instead, where no tap downscript would run. */
	const char *how = qu_test_env("QEMU_UPGRADE_RETIRE");
	j->kill_old = !how || strcmp(how, "quit");
	for (size_t i = 0; i < vm->ntaps; i++)
		j->kill_old |= vm->taps[i].downscript;
}

/* --remote: the agent creates the images to copy into, re-creates the descriptors from their
 * specs and starts the new QEMU paused, listening for the migration and exporting the disks.
 * The context goes without cgroups and CPU numbers: they are this host's. */
static int start_target_remote(struct txn *t)
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
	for (size_t i = 0; i < p->nfds; i++)
		if (p->fds[i].kind != QU_FD_NAMESPACE && p->fds[i].kind != QU_FD_DIRECTORY)
			fds[n++] = (struct qu_launch_fd){ -1, p->fds[i].target, p->fds[i].kind, p->fds[i].name, p->fds[i].spec };
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
static int finish_mirrors(struct txn *t)
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
	return wait_source(t);
}

/* The upgrade onto another host: the same transaction, with the new QEMU behind the agent.
 * Once the agent is asked to resume the guest there, the old QEMU is never resumed. */
static int run_remote(struct txn *t)
{
	struct qu_remote *rm = t->plan->remote;
	int r;
	if ((r = journal_step(t, QU_PH_TARGET_STARTING)) < 0 || (r = start_target_remote(t)) < 0 ||
	    (r = journal_step(t, QU_PH_TARGET_STARTED)) < 0 || (r = checkpoint(QU_FI_TARGET_STARTED)) < 0 ||
	    (r = check_ramblocks(t)) < 0)
		return r;
	/* The old QEMU's end of TLS: the key is read when the object is made, so its file goes
	 * at once. */
	if (!t->plan->no_tls) {
		t->j.tls = 1;
		if ((r = journal_step(t, QU_PH_TARGET_STARTED)) < 0 ||
		    (r = qu_tls_add(t->old, &rm->seal, "client", t->vm->ctx.uid, t->vm->ctx.gid, t->deadline, &t->tls)) < 0)
			return r;
		qu_tls_remove(NULL, &t->tls, t->deadline);
		t->tls.added = 1;
	}
	if (t->plan->copy_disks) {
		t->j.mirrors = 1;
		if ((r = journal_step(t, QU_PH_TARGET_STARTED)) < 0 ||
		    (r = qu_mirror_start(t->old, t->plan->disks, t->plan->copy_disks, rm->nbd_addr,
					 t->plan->no_tls ? NULL : QU_TLS_ID, t->deadline)) < 0 ||
		    (r = qu_mirror_wait_ready(t->old, __builtin_popcount(t->plan->copy_disks), t->deadline)) < 0)
			return r;
		qu_info("disks copied to %s; the guest's writes now go to both", rm->host);
	}
	if ((r = checkpoint(QU_FI_TARGET_PREPARED)) < 0 || (r = start_migration(t, -1)) < 0)
		return r;
	qu_info("migration started (copying RAM to %s)", rm->host);
	if ((r = checkpoint(QU_FI_MIGRATING)) < 0 || (r = wait_source(t)) < 0 ||
	    (t->plan->pause_switchover && (r = finish_mirrors(t)) < 0))
		return r;
	if ((r = journal_step(t, QU_PH_SOURCE_COMPLETED)) < 0 || (r = checkpoint(QU_FI_SOURCE_COMPLETED)) < 0)
		return r;
	if ((r = qu_remote_check(rm)) < 0)
		return r;
	qu_cancel_enable(0);
	if ((r = journal_step(t, QU_PH_RESUMING)) < 0)
		return r;
	/* The resume has its own time: the copy may have used most of the deadline, and an
	 * answer lost to a timeout leaves the guest undecided. Longer than the agent's own wait. */
	t->resume_sent = 1;
	if ((r = qu_remote_resume(rm, qu_now_us() + REMOTE_RESUME_TIMEOUT_US)) < 0)
		return r;
	commit(t);
	t->rep->announced = rm->announced;
	t->rep->tls = rm->tls;
	collect_stats(t);
	int64_t stop = 0;
	t->rep->pause_ms = -1;
	if (qu_qmp_event_time(t->old, "STOP", qu_now_us() + 1000000u, &stop) == 0 && rm->resumed_us >= stop)
		t->rep->pause_ms = (double)(rm->resumed_us - stop) / 1000.0;
	if (t->rep->downtime_ms < 0)
		t->rep->downtime_ms = t->rep->pause_ms;
	struct qu_hold h = held(t);
	qu_retire_old(&t->j, &h);
	qu_info("old QEMU PID %d retired; the guest runs on %s", (int)t->vm->pid, rm->host);
	if (journal_step(t, QU_PH_RETIRED) < 0 || qu_fault(QU_FI_RETIRED) < 0)
		qu_info("warning after the upgrade: %s", qu_err_msg());
	return 0;
}

/* After the commit: the report's numbers, the new QEMU configured for migration as the old
 * one was (a later save or migration of the VM must not inherit x-ignore-shared), and the old
 * QEMU retired, but only once the new QEMU is proven to hold the guest: alive by its pidfd
 * and answering on its private monitor. A new QEMU that died after taking over leaves the
 * guest lost, and the old QEMU paused (settled by the same rules as the guardian's). */
static int finish(struct txn *t)
{
	struct qu_hold h = held(t);
	collect_stats(t);
	measure_pause(t);
	qu_settings_back_on_new(&t->j, &h);
	/* QEMU 7.2 reports its own clock as the downtime of a postcopy whose switch took under
	 * a millisecond: a number longer than the whole upgrade is not a downtime. */
	if (t->rep->downtime_ms < 0 || t->rep->downtime_ms > (double)(qu_now_us() - t->rep->start_us) / 1000.0)
		t->rep->downtime_ms = t->rep->pause_ms;
	qu_debug("%d threads got the CPU affinity of the old QEMU's thread of the same name",
		 qu_thread_affinity_copy(t->vm->pid, t->new_pid));
	enum qu_new_state now = qu_new_state(&t->j, &h, t->deadline);
	if (now == QU_NEW_GONE || now == QU_NEW_SILENT)
		return qu_err(-EIO, "the new QEMU %d is %s after it took over the guest", (int)t->new_pid,
			      now == QU_NEW_GONE ? "gone" : "not answering its monitor");
	qu_retire_old(&t->j, &h);
	qu_info("old QEMU PID %d retired", (int)t->vm->pid);
	if (journal_step(t, QU_PH_RETIRED) < 0 || qu_fault(QU_FI_RETIRED) < 0)
		qu_info("warning after the upgrade: %s", qu_err_msg());
	return 0;
}

static int run(struct txn *t)
{
	int ctl = -1, mig[2] = { -1, -1 };
	int r;
	journal_init(t);
	if ((r = journal_step(t, QU_PH_PLANNED)) < 0)
		return r;
	if ((r = qu_guardian_start(t->vm->pid, t->lock_fd, &t->guardian)) < 0 ||
	    (r = checkpoint(QU_FI_PLANNED)) < 0)
		return r;
	/* The process inspect pinned, and no other that got its PID since. */
	if ((r = qu_pin_check(&t->vm->pin)) < 0)
		return r;
	t->pidfd_old = fcntl(t->vm->pin.pidfd, F_DUPFD_CLOEXEC, 3);
	if (t->pidfd_old < 0)
		return qu_err(-errno, "dup: %s", strerror(errno));
	if (t->plan->remote)
		return run_remote(t);
	/* Namespaces and directories were opened by PID: still the same process? */
	if ((r = harvest(t)) < 0 || (r = qu_pin_check(&t->vm->pin)) < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, mig) < 0) {
		r = qu_err(-errno, "socketpair: %s", strerror(errno));
		goto out;
	}
	if ((ctl = ctl_listen(t->j.ctl)) < 0) {
		r = ctl;
		goto out;
	}
	if ((r = journal_step(t, QU_PH_TARGET_STARTING)) < 0)
		goto out;
	qu_pidfile_aside(&t->j.vm_user, t->j.pidfile);
	tap_headers(t, 0);
	struct tap_watch watch;
	tap_watch_start(t, &watch);
	r = start_target(t, ctl, mig[1]);
	qu_close(&ctl);
	qu_close(&mig[1]);
	if (r < 0) {
		tap_watch_stop(&watch);
		goto out;
	}
	t->j.new_pid = t->new_pid;
	t->j.new_start = qu_proc_starttime(t->new_pid);
	if ((r = journal_step(t, QU_PH_TARGET_STARTED)) == 0 && (r = checkpoint(QU_FI_TARGET_STARTED)) == 0)
		r = t->plan->cpr ? cpr_start(t) : prepare_target(t);
	/* The new QEMU answers its monitor only after its netdevs and NICs are set up. */
	tap_watch_stop(&watch);
	tap_headers(t, 1);
	close_harvest(t); /* the new QEMU has its own copies now */
	if (r < 0) {
		add_target_stderr(t);
		goto out;
	}
	if ((r = checkpoint(QU_FI_TARGET_PREPARED)) < 0 || (!t->plan->cpr && (r = start_migration(t, mig[0])) < 0))
		goto out;
	qu_close(&mig[0]);
	qu_info("migration started (%s)", t->plan->cpr ? "cpr-transfer: QEMU passed its RAM descriptors" :
		t->plan->ignore_shared ? "x-ignore-shared: RAM stays in place" : "copying RAM");
	if ((r = checkpoint(QU_FI_MIGRATING)) < 0)
		goto out;
	if (t->plan->postcopy)
		r = postcopy(t);
	else
		r = precopy_finish(t);
	if (r == 0)
		r = finish(t);
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
static int settle_failure(struct txn *t, int r)
{
	struct qu_report *rep = t->rep;
	char msg[sizeof(rep->error)], what[768] = "", there[96] = "";
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
	struct qu_hold h = held(t);
	int forward_only = t->postcopy_asked &&
			   (t->switched || t->j.phase >= QU_PH_RESUMING || !postcopy_called_off(t));
	if (t->postcopy_asked && !forward_only)
		t->j.postcopy_asked = 0; /* QEMU itself called the postcopy off: nothing switched */
	if (forward_only) {
		/* The settling waits on both monitors for as long as the pages take, each of which
		 * serves one client: ours go first. */
		qu_info("%s; postcopy had been asked for: no way back, settling forward", msg);
		qu_qmp_close(t->ctl);
		t->ctl = NULL;
		qu_qmp_disconnect(t->old);
		h = held(t);
		h.old = NULL;
	}
	/* --remote: until the agent was asked to resume, or when it answered that it did not,
	 * it stops the new QEMU there and removes what it made (as it does by itself when our
	 * connection ends). */
	int refused = t->plan->remote && t->resume_sent && r == -ECANCELED;
	if (t->plan->remote && (!t->resume_sent || refused))
		snprintf(there, sizeof(there), "%s; ", qu_remote_abort(t->plan->remote, qu_now_us() + 10000000u) == 0 ?
			 "new QEMU on the other host stopped" : "agent unreachable (it stops the new QEMU when the connection ends)");
	enum qu_settle_way way = QU_SETTLE_UNKNOWN;
	int s = qu_settle_held(&t->j, &h, refused, what, sizeof(what), &way);
	switch (way) {
	case QU_SETTLE_FORWARD:
	case QU_SETTLE_RESUME_NEW:
		qu_info("%s (after: %s)", what, msg);
		relays_go(t, 1);
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
static int execute(struct txn *t)
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
	relays_go(t, 0);
	close_harvest(t);
	qu_qmp_close(t->ctl);
	qu_close(&t->pidfd_old);
	qu_close(&t->pidfd_new);
	qu_close(&t->stderr_rd);
	return r;
}

int qu_execute(const struct qu_vm *vm, const struct qu_plan *plan, struct qu_qmp *old_qmp, int lock_fd,
	       const struct qu_copy_options *copy, uint64_t deadline_us, struct qu_report *rep)
{
	struct txn *t = malloc(sizeof(*t));
	if (!t)
		return qu_err(-ENOMEM, "out of memory");
	*t = (struct txn){ .vm = vm, .plan = plan, .old = old_qmp, .rep = rep, .copy = copy, .deadline = deadline_us,
			   .lock_fd = lock_fd, .guardian = { .link = -1 }, .pidfd_old = -1, .pidfd_new = -1,
			   .stderr_rd = -1 };
	for (size_t i = 0; i < QU_MAX_CARRIED; i++)
		t->local[i] = -1;
	int r = execute(t);
	free(t);
	return r;
}
