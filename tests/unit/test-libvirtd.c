/* upgrade/libvirtd.c with real processes and files, no mocks: how libvirt's daemon is found
 * (its PID file, checked: root's file in root's directories, naming a live root process whose
 * executable is libvirtd or virtqemud), stopped (SIGTERM through a pidfd, or `systemctl stop`
 * when PID 1 is systemd) and started again (its own command line, or `systemctl start`), the
 * restart journaled for --recover. The daemon is tests/helpers/fakedaemon copied under the
 * daemon's name into a directory only root can write (under the build directory), its PID
 * files under a root of their own (test hook QEMU_UPGRADE_LIBVIRT_ROOT); systemd is a shell
 * script standing in for systemctl (QEMU_UPGRADE_SYSTEMCTL, QEMU_UPGRADE_SYSTEMD_INIT). */
#include "tests/unit/unit.h"
#include "qemu-upgrade.h"
#include "upgrade/journal.h"
#include "upgrade/libvirtd.h"
#include "upgrade/systemd.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static char top[PATH_MAX]; /* the test's root: sbin/, run/, run/libvirt/, state/ */

static void path_in(char *buf, size_t len, const char *rel)
{
	assert_true(snprintf(buf, len, "%s/%s", top, rel) < (int)len);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[8192];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(in >= 0 && out >= 0);
	for (ssize_t n; (n = read(in, buf, sizeof(buf))) > 0;)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	assert_int_equal(close(out), 0);
	assert_int_equal(chmod(to, mode), 0);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static pid_t pid_in(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? (pid_t)atoi(buf) : 0;
}

static int alive(pid_t pid)
{
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[512] = "";
	int ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	(void)text;
	const char *st = ok ? strrchr(line, ')') : NULL;
	return st && st[1] && st[2] != 'Z';
}

/* Until the PID file names a live process other than not (30 s: a loaded machine). */
static pid_t wait_pidfile(const char *path, pid_t not)
{
	for (int i = 0; i < 3000; i++) {
		pid_t p = pid_in(path);
		if (p > 0 && p != not && alive(p))
			return p;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Starts sbin/NAME with args (NULL-terminated after the program), as our child. */
static pid_t spawn(const char *name, const char *const *args)
{
	static char exe[PATH_MAX + 16];
	static const char *argv[64];
	char rel[32];
	int n = 0;
	snprintf(rel, sizeof(rel), "sbin/%s", name);
	path_in(exe, sizeof(exe), rel);
	argv[n++] = exe;
	for (; args[n - 1] && n < 63; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 1);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void stop_pid(pid_t pid)
{
	if (pid > 0 && alive(pid))
		kill(pid, SIGKILL);
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int journaled(void)
{
	char path[PATH_MAX + 32];
	struct stat st;
	path_in(path, sizeof(path), "state/libvirtd.restart");
	return stat(path, &st) == 0;
}

static int setup(void **state)
{
	char self[PATH_MAX], helper[PATH_MAX + 32], p[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* build/tests/unit/test-libvirtd.t: root's directories all the way up. */
	snprintf(top, sizeof(top), "%s/libvirtd.XXXXXX", dirname(self));
	assert_non_null(mkdtemp(top));
	assert_int_equal(chmod(top, 0755), 0);
	snprintf(helper, sizeof(helper), "%s/../helpers/fakedaemon", dirname(strcpy(self, top)));
	for (const char *d = "sbin\0run\0run/libvirt\0state\0"; *d; d += strlen(d) + 1) {
		path_in(p, sizeof(p), d);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	path_in(p, sizeof(p), "sbin/libvirtd");
	copy_file(helper, p, 0755);
	path_in(p, sizeof(p), "sbin/virtqemud");
	copy_file(helper, p, 0755);
	setenv("QEMU_UPGRADE_LIBVIRT_ROOT", top, 1);
	path_in(p, sizeof(p), "state");
	setenv("QEMU_UPGRADE_STATE_DIR", p, 1);
	setenv("QEMU_UPGRADE_SYSTEMD_INIT", "0", 1);
	unsetenv("QEMU_UPGRADE_SYSTEMCTL");
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 32], p[PATH_MAX + 32];
	/* Daemons started again by the code under test are not our children. */
	for (const char *f = "run/libvirtd.pid\0run/libvirt/virtqemud.pid\0"; *f; f += strlen(f) + 1) {
		path_in(p, sizeof(p), f);
		pid_t pid = pid_in(p);
		char exe[PATH_MAX + 64], link[64];
		snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
		ssize_t n = pid > 0 ? readlink(link, exe, sizeof(exe) - 1) : -1;
		if (n > 0 && (exe[n] = '\0', !strncmp(exe, top, strlen(top))))
			kill(pid, SIGKILL);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	assert_int_equal(system(cmd), 0);
	(void)state;
	return 0;
}

/* No PID file: no daemon. A PID file naming a process that is not the daemon (this test, a
 * PID that is gone): no daemon either. */
static void none_running(void **state)
{
	static struct qu_libvirtd d;
	static char p[PATH_MAX + 32];
	char text[32];
	assert_int_equal(qu_libvirtd_find(&d), 0);
	path_in(p, sizeof(p), "run/libvirtd.pid");
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	write_text(p, text, 0644);
	assert_int_equal(qu_libvirtd_find(&d), 0);
	pid_t gone = spawn("libvirtd", (const char *[]){ "--pid-file", "/nonexistent/x", NULL });
	waitpid(gone, NULL, 0);
	snprintf(text, sizeof(text), "%d\n", (int)gone);
	write_text(p, text, 0644);
	assert_int_equal(qu_libvirtd_find(&d), 0);
	(void)state;
}

/* libvirtd outside systemd: found by /run/libvirtd.pid, stopped by SIGTERM (its VMs would
 * keep running), its restart journaled; started again with its own command line (as root,
 * from /, clean environment), the journal dropped. */
static void libvirtd_by_pidfile(void **state)
{
	static struct qu_libvirtd d, now;
	static char p[PATH_MAX + 32], exe[PATH_MAX + 32];
	path_in(p, sizeof(p), "run/libvirtd.pid");
	path_in(exe, sizeof(exe), "sbin/libvirtd");
	pid_t pid = spawn("libvirtd", (const char *[]){ "--pid-file", p, "--listen-nothing", NULL });
	assert_int_equal(wait_pidfile(p, 0), pid);
	assert_int_equal(qu_libvirtd_find(&d), 1);
	assert_string_equal(d.name, "libvirtd");
	assert_string_equal(d.pidfile, p);
	assert_string_equal(d.exe, exe);
	assert_int_equal(d.pid, pid);
	assert_string_equal(d.unit, ""); /* not under systemd */
	assert_int_equal(d.argc, 4);
	assert_string_equal(d.argv[0], exe);
	assert_string_equal(d.argv[3], "--listen-nothing");

	assert_int_equal(qu_libvirtd_stop(&d, qu_now_us() + 30000000u), 0);
	assert_int_equal(d.stopped, 1);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	assert_true(journaled());
	assert_int_equal(qu_libvirtd_find(&now), 0); /* its PID file names a dead process */

	assert_int_equal(qu_libvirtd_start(&d, qu_now_us() + 30000000u), 0);
	assert_int_equal(d.stopped, 0);
	assert_false(journaled());
	assert_int_equal(qu_libvirtd_find(&now), 1);
	assert_true(now.pid != pid);
	assert_int_equal(now.argc, 4);
	assert_string_equal(now.argv[3], "--listen-nothing");
	/* Run again as it was run, but from / with the fixed environment. */
	char link[64], cwd[16] = "";
	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)now.pid);
	assert_int_equal(readlink(link, cwd, sizeof(cwd) - 1), 1);
	assert_string_equal(cwd, "/");
	stop_pid(now.pid);
	(void)state;
}

/* The modular daemon, detaching (-d): found by /run/libvirt/virtqemud.pid; stopped, then
 * started again by --recover from the journal alone (the tool that stopped it died). */
static void virtqemud_recovered(void **state)
{
	static struct qu_libvirtd d, now;
	static char p[PATH_MAX + 32], what[768];
	path_in(p, sizeof(p), "run/libvirt/virtqemud.pid");
	pid_t parent = spawn("virtqemud", (const char *[]){ "-d", "--pid-file", p, NULL });
	int status = 0;
	assert_int_equal(waitpid(parent, &status, 0), parent);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pid_t pid = wait_pidfile(p, 0);
	assert_true(pid > 0 && pid != parent);
	assert_int_equal(qu_libvirtd_find(&d), 1);
	assert_string_equal(d.name, "virtqemud");
	assert_int_equal(d.pid, pid);
	assert_int_equal(qu_libvirtd_stop(&d, qu_now_us() + 30000000u), 0);
	assert_false(alive(pid)); /* not our child: gone (or reaped) once stop returns */
	assert_true(journaled());
	assert_int_equal(qu_libvirtd_recover(what, sizeof(what)), 1);
	note("--recover: %s", what);
	assert_non_null(strstr(what, "virtqemud: started again"));
	assert_false(journaled());
	assert_int_equal(qu_libvirtd_find(&now), 1);
	assert_string_equal(now.name, "virtqemud");
	assert_true(now.pid != pid);
	/* Nothing journaled any more: --recover has nothing to do. */
	assert_int_equal(qu_libvirtd_recover(what, sizeof(what)), 0);
	kill(now.pid, SIGKILL);
	(void)state;
}

/* Under systemd: the unit from the daemon's cgroup (or NAME.service), stopped and started
 * through systemctl, never by signal or exec. */
static void virtqemud_under_systemd(void **state)
{
	static struct qu_libvirtd d, now;
	static char p[PATH_MAX + 32], ctl[PATH_MAX + 32], log[PATH_MAX + 32], exe[PATH_MAX + 32], script[4 * PATH_MAX];
	char unit[256] = "virtqemud.service", *cg = NULL;
	path_in(p, sizeof(p), "run/libvirt/virtqemud.pid");
	path_in(ctl, sizeof(ctl), "sbin/systemctl");
	path_in(log, sizeof(log), "systemctl.log");
	path_in(exe, sizeof(exe), "sbin/virtqemud");
	int len = snprintf(script, sizeof(script),
		 "#!/bin/sh\necho \"$1 $2\" >>'%s'\n"
		 "case $1 in\nstop) kill $(cat '%s') ;;\n"
		 "start) '%s' -d --pid-file '%s' </dev/null >/dev/null 2>&1 ;;\nesac\n", log, p, exe, p);
	assert_true(len > 0 && len < (int)sizeof(script));
	write_text(ctl, script, 0755);
	setenv("QEMU_UPGRADE_SYSTEMD_INIT", "1", 1);
	setenv("QEMU_UPGRADE_SYSTEMCTL", ctl, 1);
	pid_t parent = spawn("virtqemud", (const char *[]){ "-d", "--pid-file", p, NULL });
	waitpid(parent, NULL, 0);
	pid_t pid = wait_pidfile(p, 0);
	assert_true(pid > 0);
	/* The service it runs in, as systemd would name it: here the test's own cgroup. */
	char cgpath[64];
	snprintf(cgpath, sizeof(cgpath), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(cgpath, "r");
	char buf[4096] = "";
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	cg = buf;
	if (!qu_systemd_service_of(cg, unit, sizeof(unit)))
		snprintf(unit, sizeof(unit), "virtqemud.service");
	assert_int_equal(qu_libvirtd_find(&d), 1);
	assert_string_equal(d.unit, unit);
	assert_int_equal(qu_libvirtd_stop(&d, qu_now_us() + 30000000u), 0);
	assert_false(alive(pid));
	assert_int_equal(qu_libvirtd_start(&d, qu_now_us() + 30000000u), 0);
	assert_int_equal(qu_libvirtd_find(&now), 1);
	assert_true(now.pid != pid);
	char want[600], got[600] = "";
	snprintf(want, sizeof(want), "stop %s\nstart %s\n", unit, unit);
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(read(fd, got, sizeof(got) - 1) > 0);
	close(fd);
	assert_string_equal(got, want);
	kill(now.pid, SIGKILL);
	setenv("QEMU_UPGRADE_SYSTEMD_INIT", "0", 1);
	unsetenv("QEMU_UPGRADE_SYSTEMCTL");
	(void)state;
}

/* What is not trusted as libvirt's PID file is an error, not "no daemon": a file someone
 * else owns, a directory others can write. A daemon whose command line could not be run
 * again is refused before it is stopped. */
static void refused(void **state)
{
	static struct qu_libvirtd d;
	static char p[PATH_MAX + 32], dir[PATH_MAX + 32];
	path_in(p, sizeof(p), "run/libvirtd.pid");
	path_in(dir, sizeof(dir), "run");
	pid_t pid = spawn("libvirtd", (const char *[]){ "--pid-file", p, NULL });
	assert_int_equal(wait_pidfile(p, 0), pid);
	assert_int_equal(chown(p, 65534, 65534), 0);
	assert_int_equal(qu_libvirtd_find(&d), -EPERM);
	note("%s", qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "not root's own file"));
	assert_int_equal(chown(p, 0, 0), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_true(qu_libvirtd_find(&d) < 0);
	note("%s", qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "not trusted"));
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(qu_libvirtd_find(&d), 1);
	stop_pid(pid);

	const char *many[40];
	for (int i = 0; i < 39; i++)
		many[i] = i < 2 ? (i ? p : "--pid-file") : "--verbose";
	many[39] = NULL;
	pid = spawn("libvirtd", many);
	assert_int_equal(wait_pidfile(p, 0), pid);
	assert_int_equal(qu_libvirtd_find(&d), -E2BIG);
	note("%s", qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "to be run again"));
	stop_pid(pid);
	(void)state;
}

/* A process holding VM PID vm's upgrade lock, as a running tool does; it lets go (and exits)
 * when *release is closed. */
static pid_t hold_vm_lock(pid_t vm, int *release)
{
	int ready[2], go[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		int fd = qu_lock_vm(vm);
		char c = fd >= 0 ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		while (read(go[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char c = 0;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	close(ready[0]);
	*release = go[1];
	return pid;
}

static char *recover_output(int *r, uint64_t *took_ms)
{
	static char text[4096];
	FILE *f = fmemopen(text, sizeof(text), "w");
	assert_non_null(f);
	uint64_t t0 = qu_now_us();
	*r = qu_recover(f);
	*took_ms = (qu_now_us() - t0) / 1000u;
	fclose(f);
	return text;
}

/* --recover while another tool's transaction holds the VM's lock (libvirtd stopped by it, its
 * journal written): it waits (QEMU_UPGRADE_RECOVER_WAIT_MS here, 30 s otherwise), then leaves
 * everything as it is: the journal stays, the daemon stays stopped, and it says which process
 * holds the lock; exit 1 (-1, EBUSY). A holder that lets go within the wait: settled. */
static void recover_waits_for_running_upgrade(void **state)
{
	static struct qu_libvirtd d, now;
	static char p[PATH_MAX + 32], journal[PATH_MAX + 32];
	pid_t vm = 4194301; /* a journal's VM, never settled for real here (phase planned) */
	path_in(p, sizeof(p), "run/libvirt/virtqemud.pid");
	pid_t parent = spawn("virtqemud", (const char *[]){ "-d", "--pid-file", p, NULL });
	int status = 0;
	assert_int_equal(waitpid(parent, &status, 0), parent);
	pid_t daemon_pid = wait_pidfile(p, 0);
	assert_true(daemon_pid > 0);
	assert_int_equal(qu_libvirtd_find(&d), 1);
	assert_int_equal(qu_libvirtd_stop(&d, qu_now_us() + 30000000u), 0);
	assert_true(journaled());
	path_in(journal, sizeof(journal), "state/4194301.journal");
	write_text(journal, "{\"version\":1,\"phase\":\"planned\",\"old_pid\":4194301,\"tool_pid\":1}\n", 0600);

	int release, r;
	uint64_t took;
	pid_t holder = hold_vm_lock(vm, &release);
	setenv("QEMU_UPGRADE_RECOVER_WAIT_MS", "400", 1);
	char *out = recover_output(&r, &took);
	note("--recover with the lock held (%llu ms): %s / %s", (unsigned long long)took, out, qu_get_error());
	assert_int_equal(r, -1);
	assert_int_equal(qu_get_errno(), EBUSY);
	assert_true(took >= 400);
	char want[64];
	snprintf(want, sizeof(want), "still running in process %d", (int)holder);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "kill %d", (int)holder);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(qu_get_error(), "still running"));
	assert_int_equal(access(journal, F_OK), 0);       /* the transaction's journal untouched */
	assert_true(journaled());                          /* and its daemon restart too */
	assert_int_equal(qu_libvirtd_find(&now), 0);      /* the daemon stays stopped */

	/* The holder lets go within the wait: settled (nothing to do at phase planned), and the
	 * daemon started again. */
	setenv("QEMU_UPGRADE_RECOVER_WAIT_MS", "20000", 1);
	pid_t releaser = fork();
	assert_true(releaser >= 0);
	if (releaser == 0) {
		struct timespec ts = { 0, 300 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		close(release);
		_exit(0);
	}
	close(release);
	out = recover_output(&r, &took);
	note("--recover, the holder let go (%llu ms): %s", (unsigned long long)took, out);
	assert_int_equal(r, 2);
	assert_true(took >= 250 && took < 20000);
	assert_non_null(strstr(out, "nothing to do (planned)"));
	assert_non_null(strstr(out, "virtqemud: started again"));
	assert_int_equal(access(journal, F_OK), -1);
	assert_false(journaled());
	assert_int_equal(qu_libvirtd_find(&now), 1);
	kill(now.pid, SIGKILL);
	stop_pid(releaser);
	stop_pid(holder);
	unsetenv("QEMU_UPGRADE_RECOVER_WAIT_MS");
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(none_running, setup, teardown),
		cmocka_unit_test_setup_teardown(libvirtd_by_pidfile, setup, teardown),
		cmocka_unit_test_setup_teardown(virtqemud_recovered, setup, teardown),
		cmocka_unit_test_setup_teardown(virtqemud_under_systemd, setup, teardown),
		cmocka_unit_test_setup_teardown(refused, setup, teardown),
		cmocka_unit_test_setup_teardown(recover_waits_for_running_upgrade, setup, teardown),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
