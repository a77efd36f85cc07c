#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"

#include <errno.h>
#include <poll.h>
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
