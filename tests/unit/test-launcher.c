/* Starting a program through the handover stream on this host (upgrade/launcher.h):
 * descriptors at fixed numbers, nothing else inherited, environment and cwd, errors. */
#include "tests/unit/unit.h"
#include "upgrade/launcher.h"
#include "upgrade/stream.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int setup(void **state)
{
	qu_err_clear();
	return 0;
}

/* A failed test may leave its started program behind: reap whatever is left. */
static int teardown(void **state)
{
	int st;
	while (waitpid(-1, &st, WNOHANG) > 0)
		;
	return 0;
}

/* Neither the launcher nor a started program may be left behind. */
static void assert_no_children(void)
{
	int st;
	assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static int reap(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static pid_t launch_sh(const char *script, char **envp, const char *cwd,
		       const struct qu_launch_fd *fds, size_t nfds)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	struct qu_launch spec = { .argv = argv, .envp = envp, .cwd = cwd, .fds = fds, .nfds = nfds };
	pid_t pid = -1;
	int r = qu_launch_local(&spec, deadline_ms(60000), &pid);
	if (r < 0)
		note("qu_launch_local: %d %s", r, qu_err_msg());
	assert_int_equal(r, 0);
	assert_true(pid > 0);
	return pid;
}

static void fds_at_fixed_numbers(void **state)
{
	int a[2], b[2];
	char buf[64];
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	struct qu_launch_fd fds[] = {
		{ .fd = a[1], .target = 7, .kind = QU_FD_LISTENER, .name = "seven" },
		{ .fd = b[1], .target = 5, .kind = QU_FD_RAM, .name = "five" },
	};
	pid_t pid = launch_sh("echo seven >&7 && echo five >&5", NULL, NULL, fds, 2);
	close(a[1]);
	close(b[1]);
	read_all(a[0], buf, sizeof(buf));
	assert_text_equal(buf, "seven\n");
	read_all(b[0], buf, sizeof(buf));
	assert_text_equal(buf, "five\n");
	assert_int_equal(reap(pid), 0);
	assert_no_children();
	close(a[0]);
	close(b[0]);
}

static void swapped_and_crowded_targets(void **state)
{
	/* Twenty pipes to targets 3..22 in reverse: numbers that the launcher itself uses for
	 * other things (its inherited copies of this process's descriptors) must not get in
	 * the way of the placement. */
	enum { N = 20 };
	int p[N][2];
	struct qu_launch_fd fds[N];
	char script[512] = "", buf[64];
	for (int i = 0; i < N; i++) {
		assert_int_equal(pipe2(p[i], O_CLOEXEC), 0);
		fds[i] = (struct qu_launch_fd){ .fd = p[i][1], .target = 3 + (N - 1 - i), .kind = QU_FD_STDIO,
						.name = "pipe" };
		size_t l = strlen(script);
		/* dash redirects only single-digit numbers (>&N): open /dev/fd/N instead. */
		snprintf(script + l, sizeof(script) - l, "echo %d >/dev/fd/%d; ", 3 + (N - 1 - i), 3 + (N - 1 - i));
	}
	pid_t pid = launch_sh(script, NULL, NULL, fds, N);
	for (int i = 0; i < N; i++)
		close(p[i][1]);
	for (int i = 0; i < N; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d\n", 3 + (N - 1 - i));
		read_all(p[i][0], buf, sizeof(buf));
		assert_text_equal(buf, want);
		close(p[i][0]);
	}
	assert_int_equal(reap(pid), 0);
	assert_no_children();
}

static void no_other_descriptors(void **state)
{
	int l[2], x[2];
	char buf[512];
	assert_int_equal(pipe2(l, O_CLOEXEC), 0);
	/* A descriptor of this process without close-on-exec: it must not leak through. */
	assert_int_equal(pipe(x), 0);
	struct qu_launch_fd fds[] = {
		{ .fd = l[1], .target = 9, .kind = QU_FD_STDIO, .name = "listing" },
		{ .fd = x[0], .target = 5, .kind = QU_FD_STDIO, .name = "other" },
	};
	/* ls runs as a child of the shell and lists the shell's table ($$), so the directory
	 * descriptor ls opens for the listing is not in it. No redirection on the ls itself:
	 * dash would save fd 1 to fd 10 in the shell while ls runs; and not the last command,
	 * or dash execs it in place of the shell. */
	pid_t pid = launch_sh("exec >&9; ls /proc/$$/fd; exit 0", NULL, NULL, fds, 2);
	close(l[1]);
	read_all(l[0], buf, sizeof(buf));
	assert_text_equal(buf, "0\n1\n2\n5\n9\n"); /* ls sorts by name */
	assert_int_equal(reap(pid), 0);
	assert_no_children();
	close(l[0]);
	close(x[0]);
	close(x[1]);
}

/* A PID file (QU_FD_PIDFILE) arrives write-locked at byte 0 by the program's own process,
 * as libvirt leaves its PID file locked by the QEMU it started: the lock survives the exec. */
static void pidfile_locked_by_the_program(void **state)
{
	char path[] = "/tmp/qu-test-pidfile.XXXXXX";
	int f = mkstemp(path), go[2];
	assert_true(f >= 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	struct qu_launch_fd fds[] = {
		{ .fd = f, .target = 6, .kind = QU_FD_PIDFILE, .name = "pidfile" },
		{ .fd = go[0], .target = 5, .kind = QU_FD_STDIO, .name = "go" },
	};
	/* The shell waits for go's EOF: the lock is looked at while it runs. */
	pid_t pid = launch_sh("read x <&5; exit 0", NULL, NULL, fds, 2);
	close(go[0]);
	int other = open(path, O_RDWR | O_CLOEXEC);
	assert_true(other >= 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	assert_int_equal(fcntl(other, F_GETLK, &fl), 0);
	assert_int_equal(fl.l_type, F_WRLCK);
	assert_int_equal(fl.l_pid, pid);
	assert_int_equal(fl.l_start, 0);
	assert_int_equal(fl.l_len, 1);
	close(go[1]);
	assert_int_equal(reap(pid), 0);
	/* Gone with its process. */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
	assert_int_equal(fcntl(other, F_GETLK, &fl), 0);
	assert_int_equal(fl.l_type, F_UNLCK);
	assert_no_children();
	close(other);
	close(f);
	unlink(path);
}

/* A PID file someone else holds locked: the program does not start, and the error says so. */
static void pidfile_locked_elsewhere_refused(void **state)
{
	char path[] = "/tmp/qu-test-pidfile.XXXXXX";
	int f = mkstemp(path);
	assert_true(f >= 0);
	/* Our own lock: the launcher's child is another process. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	assert_int_equal(fcntl(f, F_SETLK, &fl), 0);
	int dup = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(dup >= 0);
	struct qu_launch_fd fds[] = { { .fd = dup, .target = 6, .kind = QU_FD_PIDFILE, .name = "pidfile" } };
	char *argv[] = { "/bin/true", NULL };
	struct qu_launch spec = { .argv = argv, .fds = fds, .nfds = 1 };
	pid_t pid = -1;
	int r = qu_launch_local(&spec, deadline_ms(60000), &pid);
	assert_true(r == -EAGAIN || r == -EACCES);
	assert_non_null(strstr(qu_err_msg(), "cannot lock the PID file given at descriptor 6"));
	assert_no_children();
	close(dup);
	close(f);
	unlink(path);
}

static void stdio_defaults_to_dev_null(void **state)
{
	int l[2];
	char buf[512];
	assert_int_equal(pipe2(l, O_CLOEXEC), 0);
	struct qu_launch_fd fds[] = { { .fd = l[1], .target = 4, .kind = QU_FD_STDIO, .name = "out" } };
	/* Read while the shell's own stdio is untouched (no redirection in effect). */
	pid_t pid = launch_sh("a=$(readlink /proc/$$/fd/0) b=$(readlink /proc/$$/fd/1) "
			      "c=$(readlink /proc/$$/fd/2); exec >&4; echo $a; echo $b; echo $c",
			      NULL, NULL, fds, 1);
	close(l[1]);
	read_all(l[0], buf, sizeof(buf));
	assert_text_equal(buf, "/dev/null\n/dev/null\n/dev/null\n");
	assert_int_equal(reap(pid), 0);
	assert_no_children();
	close(l[0]);
}

static void stdout_as_target(void **state)
{
	int l[2];
	char buf[64];
	assert_int_equal(pipe2(l, O_CLOEXEC), 0);
	struct qu_launch_fd fds[] = { { .fd = l[1], .target = 1, .kind = QU_FD_STDIO, .name = "stdout" } };
	pid_t pid = launch_sh("echo out; echo err >&2", NULL, NULL, fds, 1);
	close(l[1]);
	read_all(l[0], buf, sizeof(buf));
	assert_text_equal(buf, "out\n"); /* stderr went to /dev/null */
	assert_int_equal(reap(pid), 0);
	assert_no_children();
	close(l[0]);
}

static void environment_and_cwd_arrive(void **state)
{
	int l[2];
	char buf[1024], dir[] = "/tmp/qu-launch-cwd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_int_equal(pipe2(l, O_CLOEXEC), 0);
	setenv("QU_TEST_NOT_PASSED", "leak", 1);
	char *envp[] = { "QU_TEST_VAR=two words, one value", "PATH=/usr/bin:/bin", NULL };
	struct qu_launch_fd fds[] = { { .fd = l[1], .target = 3, .kind = QU_FD_STDIO, .name = "out" } };
	pid_t pid = launch_sh("printf '%s|%s|%s|' \"$QU_TEST_VAR\" \"$(pwd -P)\" \"${QU_TEST_NOT_PASSED-unset}\" >&3;"
			      "tr '\\0' '\\n' < /proc/$$/environ >&3",
			      envp, dir, fds, 1);
	close(l[1]);
	read_all(l[0], buf, sizeof(buf));
	char want[1024];
	snprintf(want, sizeof(want), "two words, one value|%s|unset|QU_TEST_VAR=two words, one value\n"
		 "PATH=/usr/bin:/bin\n", dir);
	/* /proc/PID/environ is what execve got: exactly the two variables. */
	assert_text_equal(buf, want);
	assert_int_equal(reap(pid), 0);
	assert_no_children();
	close(l[0]);
	unsetenv("QU_TEST_NOT_PASSED");
	assert_int_equal(rmdir(dir), 0);
}

static void new_session_and_clean_signals(void **state)
{
	int l[2];
	char buf[256];
	sigset_t block, old;
	struct sigaction ign = { .sa_handler = SIG_IGN }, oldact;
	assert_int_equal(pipe2(l, O_CLOEXEC), 0);
	/* A signal blocked or ignored here must not stay so in the started program. */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
	assert_int_equal(sigaction(SIGUSR2, &ign, &oldact), 0);
	struct qu_launch_fd fds[] = { { .fd = l[1], .target = 3, .kind = QU_FD_STDIO, .name = "out" } };
	/* Builtins only for the session (read, set, echo), then grep in place of the shell reads
	 * its own status: a child reading the shell's status could catch dash with every signal
	 * blocked around its vfork. */
	pid_t pid = launch_sh("exec >&3; read -r s < /proc/$$/stat; set -- $s; echo $1 $6; "
			      "exec grep -E '^Sig(Blk|Ign)' /proc/self/status",
			      NULL, NULL, fds, 1);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(sigaction(SIGUSR2, &oldact, NULL), 0);
	close(l[1]);
	read_all(l[0], buf, sizeof(buf));
	int p1 = -1, sid = -1;
	unsigned long long blk = ~0ull, ignored = ~0ull;
	if (sscanf(buf, "%d %d SigBlk: %llx SigIgn: %llx", &p1, &sid, &blk, &ignored) != 4)
		fail_msg("unexpected output: %s", buf);
	assert_int_equal(p1, pid);
	assert_int_equal(sid, pid); /* its own session */
	assert_int_equal(blk, 0);   /* nothing blocked */
	/* Nothing ignored, except glibc's reserved signals 32 and 33 (SIGCANCEL, SIGSETXID):
	 * GNU make leaves them ignored in its children, and signal() refuses to touch them, so
	 * they come through under `make check-unit`. glibc in the started program installs its
	 * own handlers for them at startup. */
	assert_int_equal(ignored & ~0x180000000ull, 0);
	assert_int_equal(reap(pid), 0);
	assert_no_children();
	close(l[0]);
}

static void started_program_is_our_child(void **state)
{
	int in[2];
	char path[64], stat[512];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	struct qu_launch_fd fds[] = { { .fd = in[0], .target = 0, .kind = QU_FD_STDIO, .name = "stdin" } };
	pid_t pid = launch_sh("read x; exit 42", NULL, NULL, fds, 1);
	close(in[0]);
	/* The launcher is gone by now: the program waits on its stdin, reparented to us (the
	 * subreaper), not to init. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	read_all(fd, stat, sizeof(stat));
	close(fd);
	const char *rp = strrchr(stat, ')');
	assert_non_null(rp);
	char st;
	int ppid = -1;
	assert_int_equal(sscanf(rp + 1, " %c %d", &st, &ppid), 2);
	assert_int_equal(ppid, getpid());
	assert_int_equal(write(in[1], "\n", 1), 1);
	close(in[1]);
	assert_int_equal(reap(pid), 42);
	assert_no_children();
}

static void nonexistent_program(void **state)
{
	char *argv[] = { "/nonexistent/dir/qemu-system-x86_64", "-version", NULL };
	struct qu_launch spec = { .argv = argv };
	pid_t pid = -1;
	int before = count_open_fds();
	int r = qu_launch_local(&spec, deadline_ms(60000), &pid);
	assert_int_equal(r, -ENOENT);
	assert_int_equal(pid, -1);
	assert_non_null(strstr(qu_err_msg(), "/nonexistent/dir/qemu-system-x86_64"));
	assert_int_equal(qu_err_errno(), ENOENT);
	assert_int_equal(count_open_fds(), before);
	assert_no_children();
}

static void not_executable(void **state)
{
	char path[] = "/tmp/qu-launch-noexec-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	assert_int_equal(chmod(path, 0600), 0);
	char *argv[] = { path, NULL };
	struct qu_launch spec = { .argv = argv };
	pid_t pid = -1;
	int r = qu_launch_local(&spec, deadline_ms(60000), &pid);
	unlink(path);
	if (r == 0)
		reap(pid);
	assert_int_equal(r, -EACCES); /* execve wants an x bit, even for root */
	assert_non_null(strstr(qu_err_msg(), path));
	assert_no_children();
}

static void nonexistent_cwd(void **state)
{
	char *argv[] = { "/bin/true", NULL };
	struct qu_launch spec = { .argv = argv, .cwd = "/nonexistent/cwd/for/qu" };
	pid_t pid = -1;
	assert_int_equal(qu_launch_local(&spec, deadline_ms(60000), &pid), -ENOENT);
	assert_int_equal(pid, -1);
	assert_no_children();
}

static void empty_argv_rejected(void **state)
{
	char *argv[] = { NULL };
	struct qu_launch spec = { .argv = argv };
	pid_t pid = -1;
	assert_int_equal(qu_launch_local(&spec, deadline_ms(60000), &pid), -EINVAL);
	assert_non_null(strstr(qu_err_msg(), "launcher"));
	assert_int_equal(pid, -1);
	assert_no_children();
}

static void target_out_of_range_rejected(void **state)
{
	int a[2];
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	struct qu_launch_fd fds[] = { { .fd = a[1], .target = 100000, .kind = QU_FD_STDIO, .name = "far" } };
	char *argv[] = { "/bin/true", NULL };
	struct qu_launch spec = { .argv = argv, .fds = fds, .nfds = 1 };
	pid_t pid = -1;
	assert_int_equal(qu_launch_local(&spec, deadline_ms(60000), &pid), -EINVAL);
	assert_int_equal(pid, -1);
	close(a[1]);
	char c;
	assert_int_equal(read(a[0], &c, 1), 0); /* the launcher kept no copy */
	close(a[0]);
	assert_no_children();
}

static void serve_rejects_stream_without_hello(void **state)
{
	int s[2];
	struct qu_rec rec;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	assert_int_equal(qu_stream_send_str(s[0], QU_REC_ARG, "/bin/true"), 0);
	assert_int_equal(qu_stream_send(s[0], QU_REC_EXEC, 0, NULL, 0, -1), 0);
	assert_int_equal(qu_launcher_serve(s[1], deadline_ms(30000)), -EPROTO);
	assert_int_equal(qu_stream_recv(s[0], deadline_ms(30000), &rec), 0);
	assert_int_equal(rec.type, QU_REC_ERROR);
	assert_int_equal((int)qu_get_u32(rec.payload), EPROTO);
	qu_rec_free(&rec);
	close(s[0]);
	close(s[1]);
}

static void launch_wait_reports_error_record(void **state)
{
	int s[2];
	pid_t pid = -1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	assert_int_equal(qu_stream_send_error(s[1], ENOEXEC, "cannot execute /x: Exec format error"), 0);
	assert_int_equal(qu_launch_wait(s[0], deadline_ms(30000), &pid), -ENOEXEC);
	assert_string_equal(qu_err_msg(), "cannot execute /x: Exec format error");
	assert_int_equal(pid, -1);
	assert_int_equal(qu_stream_send(s[1], QU_REC_END, 0, NULL, 0, -1), 0);
	assert_int_equal(qu_launch_wait(s[0], deadline_ms(30000), &pid), -EBADMSG);
	close(s[1]);
	assert_int_equal(qu_launch_wait(s[0], deadline_ms(30000), &pid), -ECONNRESET);
	close(s[0]);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(fds_at_fixed_numbers),
		T(swapped_and_crowded_targets),
		T(no_other_descriptors),
		T(pidfile_locked_by_the_program),
		T(pidfile_locked_elsewhere_refused),
		T(stdio_defaults_to_dev_null),
		T(stdout_as_target),
		T(environment_and_cwd_arrive),
		T(new_session_and_clean_signals),
		T(started_program_is_our_child),
		T(nonexistent_program),
		T(not_executable),
		T(nonexistent_cwd),
		T(empty_argv_rejected),
		T(target_out_of_range_rejected),
		T(serve_rejects_stream_without_hello),
		T(launch_wait_reports_error_record),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
