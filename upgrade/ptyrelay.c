#include "upgrade/ptyrelay.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUP_RETRY_MS 100

static void relay(int master, int sock)
{
	char buf[4096];
	int master_hup = 0;
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd pf[2] = { { .fd = sock, .events = POLLIN }, { .fd = master, .events = POLLIN } };
		/* With nobody on the pty's other end the master reports a hang-up at once, every
		 * time: look again later instead of spinning. */
		int n = poll(pf, master_hup ? 1 : 2, master_hup ? HUP_RETRY_MS : -1);
		if (n < 0 && errno != EINTR)
			return;
		master_hup = 0;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t got = read(sock, buf, sizeof(buf));
			if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
				return; /* no QEMU holds the socket any more: the VM is gone */
			/* Into the pty; what does not fit (nobody reading) is dropped. */
			if (got > 0 && write(master, buf, (size_t)got) < 0 && errno != EAGAIN && errno != EIO)
				return;
		}
		if (pf[1].revents & POLLIN) {
			ssize_t got = read(master, buf, sizeof(buf));
			if (got > 0 && qu_write_full(sock, buf, (size_t)got) < 0)
				return;
			if (got < 0 && errno == EIO)
				master_hup = 1;
		} else if (pf[1].revents & (POLLHUP | POLLERR)) {
			master_hup = 1;
		}
	}
}

int qu_ptyrelay_start(int master, int sock)
{
	pid_t child = fork();
	if (child < 0)
		return qu_err(-errno, "cannot start the pty relay: fork: %s", strerror(errno));
	if (child == 0) {
		/* The relay itself is a grandchild, so that nobody has to reap it. */
		if (fork() != 0)
			_exit(0);
		setsid();
		signal(SIGPIPE, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		int m = fcntl(master, F_DUPFD, 100), s = fcntl(sock, F_DUPFD, 100), nul = open("/dev/null", O_RDWR);
		if (m < 0 || s < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 ||
		    dup2(m, 3) < 0 || dup2(s, 4) < 0)
			_exit(1);
		close_range(5, ~0U, 0);
		relay(3, 4);
		_exit(0);
	}
	waitpid(child, NULL, 0);
	return 0;
}
