/* Starting a helper that outlives the tool (upgrade/spawn.h): a detached helper is not our
 * child and leaves no zombie, sits in a session of its own that it does not lead, holds only
 * the descriptors it was given (at 3.., stdio on /dev/null), has its PID reported right, and
 * none of our signal handling, working directory or looser umask; the guardian's form stays
 * our child with our stderr and SIGTERM ignored; bad arguments are refused, and a set-up that
 * fails in the helper is reported with its step, with nothing left either way. */
#include "tests/unit/unit.h"
#include "upgrade/spawn.h"

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int setup(void **state)
{
	qu_err_clear();
	return 0;
}

/* A failed test may leave a child behind: reap whatever is left. */
static int teardown(void **state)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return 0;
}

static void assert_no_children(void)
{
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* The helper under test: tells its PID on 4, then waits for EOF on 3 and exits 7. */
static int body(void *arg)
{
	pid_t me = getpid();
	if (write(4, &me, sizeof(me)) != (ssize_t)sizeof(me))
		return 1;
	char c;
	while (read(3, &c, 1) > 0)
		;
	return 7;
}

struct helper {
	pid_t pid;
	int hold;   /* our end of its fd 3: closed, it exits */
	int told;   /* where it tells its PID */
	int given[2];
};

static void start(struct helper *h, unsigned flags, const char *name)
{
	int a[2], b[2];
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	h->given[0] = a[0];
	h->given[1] = b[1];
	struct qu_spawn s = { .fds = h->given, .nfds = 2, .flags = flags, .name = name };
	h->pid = -1;
	int r = qu_spawn_detached(&s, body, NULL, &h->pid);
	if (r < 0)
		note("qu_spawn_detached: %d %s", r, qu_err_msg());
	assert_int_equal(r, 0);
	assert_true(h->pid > 0);
	h->hold = a[1];
	h->told = b[0];
	/* Its PID, as it sees it; once told, its set-up is done (status line closed). */
	pid_t told = 0;
	assert_int_equal(read(h->told, &told, sizeof(told)), sizeof(told));
	assert_int_equal(told, h->pid);
}

/* Ends the helper and waits until it is gone (not our child: through a pidfd). */
static void stop(struct helper *h)
{
	int pfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
	close(h->hold);
	close(h->told);
	close(h->given[0]);
	close(h->given[1]);
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 30000), 1);
		close(pfd);
	}
}

/* One field of /proc/PID/status, as text. */
static void status_field(pid_t pid, const char *field, char *out, size_t len)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, fl) && line[fl] == ':') {
			char *v = line + fl + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, len, "%s", v);
		}
	fclose(f);
	assert_true(out[0] != '\0');
}

/* Signals 1-31 only: libc keeps 32 and up (its own and the real-time ones) from signal(),
 * and a test runner may have left them ignored. */
static unsigned long long sigmask_of(pid_t pid, const char *field)
{
	char v[64];
	status_field(pid, field, v, sizeof(v));
	return strtoull(v, NULL, 16) & 0x7fffffffull;
}

#define BIT(sig) (1ull << ((sig) - 1))

static void same_file(const char *link, int fd)
{
	struct stat a, b;
	assert_int_equal(stat(link, &a), 0);
	assert_int_equal(fstat(fd, &b), 0);
	if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		note("%s is not descriptor %d's file", link, fd);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void detached_is_not_our_child(void **state)
{
	struct helper h;
	start(&h, 0, NULL);
	/* The intermediate child is reaped, the helper is someone else's: no child at all. */
	assert_no_children();
	char ppid[32];
	status_field(h.pid, "PPid", ppid, sizeof(ppid));
	note("helper %d, its parent %s, we are %d", (int)h.pid, ppid, (int)getpid());
	assert_true(atoi(ppid) != getpid());
	stop(&h);
	assert_no_children();
}

static void detached_own_session_not_leader(void **state)
{
	struct helper h;
	start(&h, 0, NULL);
	pid_t sid = getsid(h.pid);
	note("helper %d: session %d, ours %d", (int)h.pid, (int)sid, (int)getsid(0));
	assert_true(sid > 0);
	assert_true(sid != getsid(0));
	/* The intermediate led the session: the helper can never gain a controlling terminal. */
	assert_true(sid != h.pid);
	assert_true(getpgid(h.pid) != getpgid(0));
	stop(&h);
}

static void only_given_descriptors(void **state)
{
	/* An inheritable descriptor of ours that the helper must not get. */
	int stray = open("/dev/zero", O_RDONLY);
	assert_true(stray >= 0);
	struct helper h;
	start(&h, 0, NULL);
	char dir[64], link[384], target[PATH_MAX];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)h.pid);
	DIR *d = opendir(dir);
	assert_non_null(d);
	int seen = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		note("helper fd %d -> %s", fd, target);
		assert_true(fd >= 0 && fd <= 4);
		seen |= 1 << fd;
		if (fd <= 2)
			assert_text_equal(target, "/dev/null");
	}
	closedir(d);
	assert_int_equal(seen, 0x1f);
	snprintf(link, sizeof(link), "%s/3", dir);
	same_file(link, h.given[0]);
	snprintf(link, sizeof(link), "%s/4", dir);
	same_file(link, h.given[1]);
	/* Close-on-exec there: what it runs inherits none of them. */
	char fdinfo[64], flags[32];
	for (int fd = 3; fd <= 4; fd++) {
		snprintf(fdinfo, sizeof(fdinfo), "/proc/%d/fdinfo/%d", (int)h.pid, fd);
		FILE *f = fopen(fdinfo, "r");
		assert_non_null(f);
		flags[0] = '\0';
		char line[128];
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "flags: %31s", flags) == 1)
				break;
		fclose(f);
		unsigned long fl = strtoul(flags, NULL, 8);
		assert_true(fl & O_CLOEXEC);
	}
	stop(&h);
	close(stray);
}

static void clean_signals_cwd_umask_name(void **state)
{
	struct sigaction sa = { .sa_handler = on_usr1 }, old_usr1;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old_usr1), 0);
	sigset_t block, old_mask;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old_mask), 0);
	mode_t old_umask = umask(0);
	struct helper h;
	start(&h, 0, "qu-test-helper");
	umask(old_umask);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGUSR1, &old_usr1, NULL);
	assert_int_equal(sigmask_of(h.pid, "SigBlk"), 0);
	/* No handler of ours (SIGUSR1); under ASan its own stay, its signal() refuses to reset them. */
	unsigned long long cgt = sigmask_of(h.pid, "SigCgt");
	note("SigCgt %llx", cgt);
	assert_int_equal(cgt & ~(BIT(SIGSEGV) | BIT(SIGBUS) | BIT(SIGFPE) | BIT(SIGILL)), 0);
	assert_int_equal(sigmask_of(h.pid, "SigIgn"), BIT(SIGPIPE) | BIT(SIGHUP) | BIT(SIGINT));
	char v[64], cwd[PATH_MAX], path[64];
	status_field(h.pid, "Umask", v, sizeof(v));
	assert_text_equal(v, "0022");
	status_field(h.pid, "Name", v, sizeof(v));
	assert_text_equal(v, "qu-test-helper");
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)h.pid);
	ssize_t n = readlink(path, cwd, sizeof(cwd) - 1);
	assert_true(n > 0);
	cwd[n] = '\0';
	assert_text_equal(cwd, "/");
	stop(&h);
}

static void stricter_umask_kept(void **state)
{
	mode_t old_umask = umask(077);
	struct helper h;
	start(&h, 0, NULL);
	umask(old_umask);
	char v[64];
	status_field(h.pid, "Umask", v, sizeof(v));
	assert_text_equal(v, "0077");
	stop(&h);
}

/* The guardian's form: our child (we reap it, its exit status is body's), its own session,
 * our stderr, SIGTERM ignored. */
static void child_form(void **state)
{
	struct helper h;
	start(&h, QU_SPAWN_CHILD | QU_SPAWN_KEEP_STDERR | QU_SPAWN_IGNORE_TERM, NULL);
	char ppid[32], link[64];
	status_field(h.pid, "PPid", ppid, sizeof(ppid));
	assert_int_equal(atoi(ppid), getpid());
	assert_int_equal(getsid(h.pid), h.pid);
	assert_int_equal(sigmask_of(h.pid, "SigIgn"), BIT(SIGPIPE) | BIT(SIGHUP) | BIT(SIGINT) | BIT(SIGTERM));
	snprintf(link, sizeof(link), "/proc/%d/fd/2", (int)h.pid);
	same_file(link, 2);
	assert_int_equal(kill(h.pid, SIGTERM), 0);
	close(h.hold);
	close(h.told);
	close(h.given[0]);
	close(h.given[1]);
	int st = 0;
	assert_int_equal(waitpid(h.pid, &st, 0), h.pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);
	assert_no_children();
}

static void bad_descriptor_refused(void **state)
{
	int fds[] = { 0, 1000 };
	struct qu_spawn s = { .fds = fds, .nfds = 2 };
	pid_t pid = 0;
	assert_int_equal(qu_spawn_detached(&s, body, NULL, &pid), -EBADF);
	note("%s", qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "descriptor 1000"));
	assert_int_equal(pid, 0);
	assert_no_children();
}

static void too_many_descriptors_refused(void **state)
{
	int fds[QU_SPAWN_MAX_FDS + 1] = { 0 };
	struct qu_spawn s = { .fds = fds, .nfds = QU_SPAWN_MAX_FDS + 1 };
	pid_t pid = 0;
	assert_int_equal(qu_spawn_detached(&s, body, NULL, &pid), -EINVAL);
	assert_non_null(strstr(qu_err_msg(), "at most"));
	assert_int_equal(pid, 0);
	assert_no_children();
}

/* In a process of its own (the limit stays there): with no room above the given descriptors,
 * the helper cannot place them; the step and errno come back, and nothing is left. 0 when
 * all was as expected, else the check that failed. */
static int setup_failure_in(unsigned flags)
{
	close_range(3, ~0U, 0);
	/* 0-2 and the status pipe (3, 4) fit; the helper's copies above its targets (5..) do not. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 10;
	rl.rlim_cur = 5;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 11;
	int fds[] = { 0 };
	struct qu_spawn s = { .fds = fds, .nfds = 1, .flags = flags };
	pid_t pid = 0;
	int r = qu_spawn_detached(&s, body, NULL, &pid);
	printf("# flags %u: %d %s\n", flags, r, qu_err_msg());
	fflush(stdout);
	/* F_DUPFD says EINVAL for a lowest number at or above the limit. */
	if (r != -EINVAL)
		return 12;
	if (!strstr(qu_err_msg(), "could not be set up: a descriptor"))
		return 13;
	if (pid != 0)
		return 14;
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		return 15;
	return 0;
}

static void setup_failure_reported(void **state)
{
	unsigned flags[] = { 0, QU_SPAWN_CHILD };
	for (int i = 0; i < 2; i++) {
		fflush(stdout);
		pid_t p = fork();
		assert_true(p >= 0);
		if (p == 0)
			_exit(setup_failure_in(flags[i]));
		int st = 0;
		assert_int_equal(waitpid(p, &st, 0), p);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(detached_is_not_our_child),
		T(detached_own_session_not_leader),
		T(only_given_descriptors),
		T(clean_signals_cwd_umask_name),
		T(stricter_umask_kept),
		T(child_form),
		T(bad_descriptor_refused),
		T(too_many_descriptors_refused),
		T(setup_failure_reported),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
