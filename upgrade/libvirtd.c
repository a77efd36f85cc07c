#include "upgrade/libvirtd.h"
#include "qemu-integration/binary.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/run.h"
#include "upgrade/safepath.h"
#include "upgrade/statedir.h"
#include "upgrade/systemd.h"
#include "upgrade/testhooks.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct {
	const char *name, *pidfile;
} daemons[] = {
	{ "libvirtd", "/run/libvirtd.pid" },
	{ "virtqemud", "/run/libvirt/virtqemud.pid" },
};

#define JOURNAL_MAX 16384

/* Test hooks (upgrade/testhooks.h), for tests/unit/test-libvirtd.c, which drives this code
 * with stand-in daemons and a stand-in systemctl: QEMU_UPGRADE_LIBVIRT_ROOT puts the daemons'
 * PID files under another root directory, QEMU_UPGRADE_SYSTEMD_INIT (0 or 1) says whether
 * PID 1 is systemd, QEMU_UPGRADE_SYSTEMCTL names the systemctl to run. The installed tool
 * reads none of them. */
static void daemon_pidfile(size_t i, char *buf, size_t len)
{
	const char *root = qu_test_env("QEMU_UPGRADE_LIBVIRT_ROOT");
	snprintf(buf, len, "%s%s", root ? root : "", daemons[i].pidfile);
}

static int systemd_is_init(void)
{
	const char *t = qu_test_env("QEMU_UPGRADE_SYSTEMD_INIT");
	return t ? !strcmp(t, "1") : qu_systemd_is_init();
}

static const char *systemctl_path(void)
{
	const char *p = qu_test_env("QEMU_UPGRADE_SYSTEMCTL");
	return p ? p : "/bin/systemctl";
}

static void journal_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/libvirtd.restart", qu_state_dir());
}

/* The PID in a root-owned PID file in root's directories: > 0, 0 (no file, or no number),
 * or -errno with a message. */
static pid_t pidfile_read(const char *path)
{
	struct qu_safe_dir d;
	struct stat st;
	char buf[32];
	if (qu_safe_open_dir(path, (uid_t)-1, 0, &d) < 0) {
		qu_err_clear();
		return 0; /* no such directory: no such daemon */
	}
	if (!d.trusted) {
		int r = qu_err(-EPERM, "%s: %s: not trusted as libvirt's PID file", path, d.doubt);
		qu_safe_close(&d);
		return r;
	}
	int fd = qu_safe_open(&d, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	qu_safe_close(&d);
	if (fd < 0)
		return fd == -ENOENT ? 0 : qu_err(fd, "%s: %s", path, strerror(-fd));
	ssize_t n = -EPERM;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022))
		n = qu_read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n == -EPERM)
		return qu_err(-EPERM, "%s is not root's own file: not trusted as libvirt's PID file", path);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	long v = strtol(buf, NULL, 10);
	return v > 1 && v < 0x400000 ? (pid_t)v : 0;
}

/* Real and effective UID of pid are root: 0, else -EPERM. Its bounding set into *bnd. */
static int proc_is_root(pid_t pid, unsigned long long *bnd)
{
	char path[64], *text = NULL;
	unsigned ru = 1, eu = 1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (qu_read_file(path, &text, NULL) < 0)
		return -ESRCH;
	const char *u = strstr(text, "\nUid:");
	int ok = u && sscanf(u + 5, "%u %u", &ru, &eu) == 2 && ru == 0 && eu == 0;
	const char *b = strstr(text, "\nCapBnd:");
	if (!b || sscanf(b + 8, "%llx", bnd) != 1)
		*bnd = ~0ULL;
	free(text);
	return ok ? 0 : -EPERM;
}

static int read_cmdline(struct qu_libvirtd *d)
{
	char path[64], *text = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)d->pid);
	if (qu_read_file(path, &text, &len) < 0)
		return -ESRCH;
	d->argc = 0;
	int r = 0;
	for (size_t off = 0; off < len;) {
		size_t l = strlen(text + off);
		if (d->argc == QU_LIBVIRTD_ARGS || l >= QU_LIBVIRTD_ARG_MAX || strchr(text + off, '\n')) {
			r = qu_err(-E2BIG, "%s (PID %d): its command line is too long (at most %d arguments of %d bytes, "
				   "no newline) to be run again: start it under systemd or with a shorter one",
				   d->name, (int)d->pid, QU_LIBVIRTD_ARGS, QU_LIBVIRTD_ARG_MAX - 1);
			break;
		}
		snprintf(d->argv[d->argc++], QU_LIBVIRTD_ARG_MAX, "%s", text + off);
		off += l + 1;
	}
	free(text);
	if (r == 0 && d->argc == 0)
		r = -ESRCH;
	return r;
}

/* The daemon behind one PID file, checked: root's process, running root's binary of that
 * name. 1, 0 (not running), -errno with a message. */
static int find_one(const char *name, const char *pidfile, struct qu_libvirtd *d)
{
	pid_t pid = pidfile_read(pidfile);
	if (pid <= 0)
		return pid;
	struct qu_pin pin;
	if (qu_pin_open(pid, &pin) < 0) {
		qu_err_clear();
		return 0; /* a stale PID file */
	}
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->pidfile, sizeof(d->pidfile), "%s", pidfile);
	d->pid = pid;
	d->start = pin.start;
	int r = qu_proc_readlink(pid, "exe", d->exe, sizeof(d->exe));
	char *del = r == 0 ? strstr(d->exe, " (deleted)") : NULL;
	if (del && !del[10])
		*del = '\0'; /* upgraded on disk: the path runs the new one */
	const char *base = r == 0 ? strrchr(d->exe, '/') : NULL;
	if (r < 0 || !base || strcmp(base + 1, name) || proc_is_root(pid, &d->cap_bnd) < 0) {
		/* Someone else's process under a recycled PID, or not the daemon: not running. */
		qu_pin_close(&pin);
		return 0;
	}
	int fd = qu_binary_open(d->exe, (uid_t)-1, NULL, NULL, NULL);
	if (fd < 0) {
		qu_pin_close(&pin);
		return qu_err_wrap(fd, "%s (PID %d)", name, (int)pid);
	}
	close(fd);
	r = read_cmdline(d);
	if (r == 0 && systemd_is_init()) {
		char path[64], *text = NULL;
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
		if (qu_read_file(path, &text, NULL) == 0 && !qu_systemd_service_of(text, d->unit, sizeof(d->unit)))
			snprintf(d->unit, sizeof(d->unit), "%s.service", name);
		free(text);
	}
	if (r == 0)
		r = qu_pin_check(&pin);
	qu_pin_close(&pin);
	if (r == -ESRCH)
		return 0;
	return r < 0 ? r : 1;
}

int qu_libvirtd_find(struct qu_libvirtd *d)
{
	for (size_t i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++) {
		char pidfile[sizeof(d->pidfile)];
		daemon_pidfile(i, pidfile, sizeof(pidfile));
		int r = find_one(daemons[i].name, pidfile, d);
		if (r != 0)
			return r;
	}
	return 0;
}

static int journal_write(const struct qu_libvirtd *d)
{
	char path[512], *text = calloc(1, JOURNAL_MAX);
	if (!text)
		return qu_err(-ENOMEM, "out of memory");
	int r = qu_kv_add(text, JOURNAL_MAX, "name", d->name);
	r = r ?: qu_kv_add(text, JOURNAL_MAX, "pidfile", d->pidfile);
	r = r ?: qu_kv_add(text, JOURNAL_MAX, "exe", d->exe);
	r = r ?: qu_kv_add(text, JOURNAL_MAX, "unit", d->unit);
	r = r ?: qu_kv_addf(text, JOURNAL_MAX, "stopper", "%d", (int)getpid());
	r = r ?: qu_kv_addf(text, JOURNAL_MAX, "argc", "%d", d->argc);
	for (int i = 0; r == 0 && i < d->argc; i++) {
		char key[16];
		snprintf(key, sizeof(key), "arg%d", i);
		r = qu_kv_add(text, JOURNAL_MAX, key, d->argv[i]);
	}
	if (r < 0) {
		free(text);
		return qu_err(r, "the daemon's restart does not fit its journal");
	}
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST) {
		free(text);
		return qu_err(-errno, "%s: %s", qu_state_dir(), strerror(errno));
	}
	journal_path(path, sizeof(path));
	r = qu_write_file_atomic(path, text, strlen(text));
	free(text);
	if (r < 0)
		return qu_err(r, "journaling the restart of %s in %s: %s", d->name, path, strerror(-r));
	return 0;
}

static int journal_read(struct qu_libvirtd *d)
{
	char path[512], *text = NULL, num[16];
	journal_path(path, sizeof(path));
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : qu_err(-errno, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || st.st_size >= JOURNAL_MAX) {
		close(fd);
		return qu_err(-EPERM, "%s is not root's journal", path);
	}
	text = calloc(1, JOURNAL_MAX);
	ssize_t n = text ? qu_read_full(fd, text, JOURNAL_MAX - 1) : -ENOMEM;
	close(fd);
	memset(d, 0, sizeof(*d));
	int r = n < 0 ? (int)n : 0;
	if (r == 0 && (qu_kv_get(text, "name", d->name, sizeof(d->name)) < 0 ||
		       qu_kv_get(text, "exe", d->exe, sizeof(d->exe)) < 0 ||
		       qu_kv_get(text, "pidfile", d->pidfile, sizeof(d->pidfile)) < 0))
		r = -EBADMSG;
	qu_kv_get(text ? text : "", "unit", d->unit, sizeof(d->unit));
	d->stopper = text ? (pid_t)qu_kv_num(text, "stopper", 0) : 0;
	long long argc = text ? qu_kv_num(text, "argc", -1) : -1;
	if (r == 0 && (argc < 1 || argc > QU_LIBVIRTD_ARGS))
		r = -EBADMSG;
	for (int i = 0; r == 0 && i < argc; i++) {
		char key[16];
		snprintf(key, sizeof(key), "arg%d", i);
		if (qu_kv_get(text, key, d->argv[i], QU_LIBVIRTD_ARG_MAX) < 0)
			r = -EBADMSG;
	}
	d->argc = (int)argc;
	(void)num;
	free(text);
	if (r < 0)
		return qu_err(r, "%s: damaged (start libvirt's daemon by hand, then remove it)", path);
	d->stopped = 1;
	return 1;
}

static void journal_drop(void)
{
	char path[512];
	journal_path(path, sizeof(path));
	unlink(path);
}

static int systemctl(const char *verb, const char *unit, uint64_t deadline_us)
{
	char out[512] = "";
	char *const argv[] = { (char *)"systemctl", (char *)verb, (char *)unit, NULL };
	int r = qu_run_capture(systemctl_path(), -1, argv, (uid_t)-1, (gid_t)-1, deadline_us, out, sizeof(out));
	if (r != 0)
		return qu_err(r < 0 ? r : -EIO, "systemctl %s %s: %s", verb, unit, r < 0 ? strerror(-r) : out);
	return 0;
}

int qu_libvirtd_stop(struct qu_libvirtd *d, uint64_t deadline_us)
{
	int r = journal_write(d);
	if (r < 0)
		return r;
	int pidfd = qu_pidfd_open(d->pid);
	if (pidfd < 0 || !qu_proc_alive(d->pid, d->start)) {
		if (pidfd >= 0)
			close(pidfd);
		d->stopped = 1; /* it went by itself: started again all the same */
		return 0;
	}
	d->stopped = 1;
	if (d->unit[0])
		r = systemctl("stop", d->unit, deadline_us);
	else if (qu_pidfd_kill(pidfd, SIGTERM) < 0)
		r = qu_err(-errno, "cannot signal %s (PID %d): %s", d->name, (int)d->pid, strerror(errno));
	/* A daemon that does not stop in time still runs, holding the monitors: nothing is done. */
	if (r == 0 && (r = qu_pidfd_wait_exit(pidfd, deadline_us)) < 0)
		r = qu_err(r, "%s (PID %d) did not exit in time after %s: the VM was not touched", d->name, (int)d->pid,
			   d->unit[0] ? "systemctl stop" : "SIGTERM");
	close(pidfd);
	if (r == 0)
		qu_info("stopped %s (PID %d)%s", d->name, (int)d->pid, d->unit[0] ? " through systemd" : "");
	return r;
}

/* Outside systemd: its own command line again, as root, from /, with stdio on /dev/null, in
 * a session of its own, with the clean environment. Waits for the child when it daemonizes. */
static int exec_again(const struct qu_libvirtd *d, uint64_t deadline_us)
{
	char *argv[QU_LIBVIRTD_ARGS + 1];
	int daemonizes = 0;
	for (int i = 0; i < d->argc; i++) {
		argv[i] = (char *)d->argv[i];
		daemonizes |= !strcmp(argv[i], "-d") || !strcmp(argv[i], "--daemon");
	}
	argv[d->argc] = NULL;
	int fd = qu_binary_open(d->exe, (uid_t)-1, NULL, NULL, NULL);
	if (fd < 0)
		return qu_err_wrap(fd, "starting %s again", d->name);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "fork: %s", strerror(e));
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++) /* ignored signals stay ignored across exec */
			signal(sig, SIG_DFL);
		setsid();
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (fd < 3)
			_exit(126);
		syscall(SYS_close_range, 3, fd - 1, 0);
		syscall(SYS_close_range, fd + 1, ~0u, 0);
		if (chdir("/") < 0)
			_exit(126);
		umask(022);
		qu_exec_fd(fd, argv, qu_clean_env);
		_exit(127);
	}
	close(fd);
	if (!daemonizes)
		return 0;
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return qu_err(-EIO, "%s %s... exited with status %d: start it by hand", d->exe, d->argc > 1 ? d->argv[1] : "",
			      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

int qu_libvirtd_start(struct qu_libvirtd *d, uint64_t deadline_us)
{
	struct qu_libvirtd now;
	int r;
	if (!d->stopped)
		return 0;
	if (qu_libvirtd_find(&now) > 0) {
		/* Someone (systemd socket activation, an operator) started it meanwhile. */
		journal_drop();
		d->stopped = 0;
		return 0;
	}
	if (d->unit[0])
		r = systemctl("start", d->unit, deadline_us);
	else
		r = exec_again(d, deadline_us);
	while (r == 0 && qu_libvirtd_find(&now) <= 0) {
		if (qu_now_us() >= deadline_us) {
			r = qu_err(-ETIMEDOUT, "%s did not write %s in time after it was started again", d->name, d->pidfile);
			break;
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (r < 0)
		return qu_err_wrap(r, "%s stays stopped: `qemu-upgrade --recover` starts it again, or start it by hand",
				   d->name);
	qu_info("started %s again (PID %d)", d->name, (int)now.pid);
	d->stopped = 0;
	journal_drop();
	return 0;
}

/* only_stopper 0: whoever journaled it. */
static int recover(pid_t only_stopper, char *what, size_t len)
{
	struct qu_libvirtd d;
	int r = journal_read(&d);
	if (r <= 0)
		return r;
	if (only_stopper && d.stopper != only_stopper)
		return 0;
	r = qu_libvirtd_start(&d, qu_now_us() + 60ull * 1000000u);
	if (r < 0)
		return r;
	snprintf(what, len, "%s: started again (its restart was journaled by a qemu-upgrade that died)", d.name);
	return 1;
}

int qu_libvirtd_recover(char *what, size_t len)
{
	return recover(0, what, len);
}

int qu_libvirtd_recover_for(pid_t stopper, char *what, size_t len)
{
	return stopper > 0 ? recover(stopper, what, len) : 0;
}

int qu_libvirtd_restart_journaled(void)
{
	char path[512];
	struct stat st;
	journal_path(path, sizeof(path));
	return lstat(path, &st) == 0;
}
