#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int qu_pidfd_open(pid_t pid)
{
	long fd = syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : (int)fd;
}

int qu_pidfd_getfd(int pidfd, int targetfd)
{
	long fd = syscall(SYS_pidfd_getfd, pidfd, targetfd, 0);
	return fd < 0 ? -errno : (int)fd;
}

int qu_pidfd_kill(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int qu_pidfd_wait_exit(int pidfd, unsigned long long deadline_us)
{
	int r = qu_poll_one(pidfd, POLLIN, deadline_us);
	return r < 0 ? r : 0;
}

int qu_pin_open(pid_t pid, struct qu_pin *p)
{
	p->pid = pid;
	p->start = 0;
	p->pidfd = qu_pidfd_open(pid);
	if (p->pidfd < 0) {
		int r = p->pidfd;
		p->pidfd = -1;
		return qu_err(r == -ESRCH ? r : -ESRCH, "no process with PID %d%s%s", (int)pid, r == -ESRCH ? "" : ": ",
			      r == -ESRCH ? "" : strerror(-r));
	}
	/* Read after the pidfd holds the process: the start time is its own if it still runs. */
	p->start = qu_proc_starttime(pid);
	return qu_pin_check(p);
}

int qu_pin_check(const struct qu_pin *p)
{
	struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
	if (p->pidfd < 0 || poll(&pfd, 1, 0) != 0 || !p->start || !qu_proc_alive(p->pid, p->start))
		return qu_err(-ESRCH, "QEMU PID %d exited (its PID may now name another process)",
			      (int)p->pid);
	return 0;
}

void qu_pin_close(struct qu_pin *p)
{
	/* A zeroed pin (pid 0) holds nothing, not descriptor 0. */
	if (p->pid > 0)
		qu_close(&p->pidfd);
	p->pid = 0;
}
