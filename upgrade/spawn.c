/* Helpers that outlive the tool, started one way (spawn.h). */
#include "upgrade/spawn.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the helper tells the caller once it is set up (or the step that failed, with -errno);
 * the intermediate child tells a failed fork the same way. Smaller than PIPE_BUF: one write. */
struct spawn_status {
	int err;
	pid_t pid;
	char what[48];
};

static void tell(int fd, int err, const char *what)
{
	struct spawn_status st = { .err = err, .pid = getpid() };
	snprintf(st.what, sizeof(st.what), "%s", what);
	if (write(fd, &st, sizeof(st)) != (ssize_t)sizeof(st)) {
		/* the caller is gone: nobody to tell */
	}
}

/* Nothing of the caller's: its mask (a helper forked inside a blocked section would never see
 * a signal) and its handlers (a library user's handler would run in a process it knows
 * nothing of); the tool's Ctrl-C and hang-up are not the helper's, nor a closed pipe. */
static void reset_signals(unsigned flags)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL); /* SIGKILL, SIGSTOP and libc's own refuse: nothing to reset */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	if (flags & QU_SPAWN_IGNORE_TERM)
		signal(SIGTERM, SIG_IGN);
}

/* In the helper: the given descriptors to 3.., the status line right above them, stdio on
 * /dev/null, every other descriptor closed. Every source is first copied above all targets, so
 * that no dup2 overwrites one still to be placed (the status line included: a failure is told
 * through *status, which must never be a number already handed over). 0 or -errno. */
static int place_fds(const struct qu_spawn *s, int *status, const char **what)
{
	int top = 3 + (int)s->nfds, hi[QU_SPAWN_MAX_FDS];
	int st = fcntl(*status, F_DUPFD_CLOEXEC, top + 1);
	*what = "a descriptor";
	if (st < 0)
		return -errno;
	*status = st;
	for (unsigned i = 0; i < s->nfds; i++)
		if ((hi[i] = fcntl(s->fds[i], F_DUPFD_CLOEXEC, top + 1)) < 0)
			return -errno;
	*what = "/dev/null";
	int nul = open("/dev/null", O_RDWR); /* at 0..2 it is stdio; above, closed or replaced below */
	if (nul < 0)
		return -errno;
	for (int fd = 0; fd < 3; fd++)
		if ((fd < 2 || !(s->flags & QU_SPAWN_KEEP_STDERR)) && dup2(nul, fd) < 0)
			return -errno;
	*what = "a descriptor";
	/* Close-on-exec: what a helper runs (a down script, a daemon started again) must not
	 * inherit its lock or its line to the tool. */
	for (unsigned i = 0; i < s->nfds; i++)
		if (dup3(hi[i], 3 + (int)i, O_CLOEXEC) < 0)
			return -errno;
	if (dup3(st, top, O_CLOEXEC) < 0)
		return -errno;
	*status = top;
	return close_range((unsigned)top + 1, ~0U, 0) < 0 ? -errno : 0;
}

__attribute__((noreturn)) static void helper(const struct qu_spawn *s, int status, int (*body)(void *), void *arg)
{
	const char *what = "";
	reset_signals(s->flags);
	int r = place_fds(s, &status, &what);
	/* Not the tool's working directory: a helper must not keep a user's directory busy. */
	if (r == 0 && chdir("/") < 0) {
		r = -errno;
		what = "chdir /";
	}
	if (r == 0) {
		/* Never looser than the caller's, never writable by group or others. */
		mode_t m = umask(022);
		umask(m | 022);
		if (s->name)
			prctl(PR_SET_NAME, s->name, 0, 0, 0);
	}
	tell(status, r, what);
	close(status);
	_exit(r < 0 ? 127 : body(arg));
}

int qu_spawn_detached(const struct qu_spawn *s, int (*body)(void *arg), void *arg, pid_t *pid)
{
	struct spawn_status st = { .err = 0 };
	int line[2];
	if (s->nfds > QU_SPAWN_MAX_FDS || (s->nfds && !s->fds))
		return qu_err(-EINVAL, "%u descriptors for a helper: at most %d", s->nfds, QU_SPAWN_MAX_FDS);
	for (unsigned i = 0; i < s->nfds; i++)
		if (fcntl(s->fds[i], F_GETFD) < 0)
			return qu_err(-errno, "descriptor %d for a helper: %s", s->fds[i], strerror(errno));
	if (pipe2(line, O_CLOEXEC) < 0)
		return qu_err(-errno, "pipe: %s", strerror(errno));
	pid_t a = fork();
	if (a < 0) {
		int e = errno;
		close(line[0]);
		close(line[1]);
		return qu_err(-e, "fork: %s", strerror(e));
	}
	if (a == 0) {
		close(line[0]);
		/* Out of the tool's session and process group: a terminal's signals and a kill of
		 * the tool's group do not reach the helper. */
		if (setsid() < 0) {
			tell(line[1], -errno, "setsid");
			_exit(1);
		}
		if (!(s->flags & QU_SPAWN_CHILD)) {
			/* The helper is the session leader's child, so it can never gain a
			 * controlling terminal (it may hold a pty), and nobody has to reap it. */
			pid_t b = fork();
			if (b < 0)
				tell(line[1], -errno, "fork");
			if (b != 0)
				_exit(b < 0);
		}
		helper(s, line[1], body, arg);
	}
	close(line[1]);
	if (!(s->flags & QU_SPAWN_CHILD))
		while (waitpid(a, NULL, 0) < 0 && errno == EINTR)
			; /* the intermediate child: exits at once */
	ssize_t n = qu_read_full(line[0], &st, sizeof(st));
	close(line[0]);
	if (n != (ssize_t)sizeof(st) || st.err < 0) {
		if (s->flags & QU_SPAWN_CHILD)
			while (waitpid(a, NULL, 0) < 0 && errno == EINTR)
				;
		if (n != (ssize_t)sizeof(st))
			return qu_err(n < 0 ? (int)n : -ECHILD, "the helper ended before it was set up");
		return qu_err(st.err, "the helper could not be set up: %s: %s", st.what, strerror(-st.err));
	}
	*pid = st.pid;
	return 0;
}
