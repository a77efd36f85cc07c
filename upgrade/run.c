/* Running a program for a VM: by descriptor or path, as a given user, with no_new_privs and a
 * fixed environment (upgrade/run.h). */
#include "upgrade/run.h"
#include "upgrade/io.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

char *const qu_clean_env[] = { (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			       (char *)"LC_ALL=C", NULL };

int qu_exec_fd(int fd, char *const *argv, char *const *envp)
{
	syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
	if (errno != ENOENT)
		return -errno;
	int open_fd = fcntl(fd, F_DUPFD, 3);
	if (open_fd < 0)
		return -ENOENT;
	syscall(SYS_execveat, open_fd, "", argv, envp, AT_EMPTY_PATH);
	int e = errno;
	close(open_fd);
	return -e;
}

int qu_run_capture(const char *path, int exe_fd, char *const *argv, uid_t uid, gid_t gid, uint64_t deadline_us,
		   char *out, size_t len)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (uid != (uid_t)-1 && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
					 setresuid(uid, uid, uid) < 0))
			_exit(126);
		/* Whatever it is, it gains nothing by executing something else. */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(126);
		if (exe_fd >= 0)
			qu_exec_fd(exe_fd, argv, qu_clean_env);
		else
			execve(path, argv, qu_clean_env);
		_exit(127);
	}
	close(p[1]);
	size_t used = 0;
	int r = 0;
	for (;;) {
		int pr = qu_poll_one(p[0], POLLIN, deadline_us);
		if (pr < 0) {
			r = pr;
			break;
		}
		char sink[4096];
		char *dst = used + 1 < len ? out + used : sink;
		size_t room = used + 1 < len ? len - 1 - used : sizeof(sink);
		ssize_t n = read(p[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst == out + used)
			used += (size_t)n;
	}
	out[used] = '\0';
	close(p[0]);
	int status;
	if (r < 0)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (r < 0)
		return r;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void qu_describe_status(int status, char *out, size_t len)
{
	const char *name = WIFSIGNALED(status) ? sigabbrev_np(WTERMSIG(status)) : NULL;
	if (WIFSIGNALED(status))
		snprintf(out, len, "signal %d (SIG%s)%s", WTERMSIG(status), name ? name : "?",
			 WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(out, len, "exit %d", WEXITSTATUS(status));
}
