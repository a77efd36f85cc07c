#include "upgrade/ptyrelay.h"
#include "upgrade/clock.h"
#include "upgrade/context.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/spawn.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HUP_RETRY_MS 100

/* Bytes read from one side that the other did not take yet. */
struct pending {
	char buf[4096];
	size_t len;
};

/* Writes what is pending to fd; 0 when all went (or fd has no room: some stay), -1 when fd
 * is gone. */
static int flush(int fd, struct pending *p)
{
	while (p->len) {
		ssize_t n = write(fd, p->buf, p->len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		memmove(p->buf, p->buf + n, p->len - (size_t)n);
		p->len -= (size_t)n;
	}
	return 0;
}

/* Both directions independent, as a pty is: each side is read only while what it gave last
 * has gone to the other, so a side that does not read slows only what goes to it. While
 * nobody holds the pty's other end (the master hangs up), what QEMU writes is dropped, as
 * QEMU's own pty backend does, and the master is looked at again every HUP_RETRY_MS. */
static void relay(int master, int sock)
{
	struct pending to_pty = { .len = 0 }, to_qemu = { .len = 0 };
	int master_hup = 0;
	uint64_t hup_at = 0;
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = sock, .events = (to_pty.len ? 0 : POLLIN) | (to_qemu.len ? POLLOUT : 0) },
			/* Left out while it hangs up: poll reports a hang-up whatever is asked. */
			{ .fd = master_hup ? -1 : master, .events = (to_qemu.len ? 0 : POLLIN) | (to_pty.len ? POLLOUT : 0) },
		};
		int wait_ms = -1;
		if (master_hup) {
			uint64_t since_ms = (qu_now_us() - hup_at) / 1000u;
			wait_ms = since_ms >= HUP_RETRY_MS ? 0 : HUP_RETRY_MS - (int)since_ms;
		}
		int n = poll(pf, 2, wait_ms);
		if (n < 0 && errno != EINTR)
			return;
		if (master_hup && qu_now_us() - hup_at >= HUP_RETRY_MS * 1000u) {
			master_hup = 0; /* look at the master again */
			continue;
		}
		if (pf[1].revents & (POLLHUP | POLLERR)) {
			master_hup = 1;
			hup_at = qu_now_us();
			to_pty.len = 0;
		}
		if ((pf[0].revents & POLLOUT) && flush(sock, &to_qemu) < 0)
			return;
		if ((pf[1].revents & POLLOUT) && flush(master, &to_pty) < 0)
			to_pty.len = 0;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t got = read(sock, to_pty.buf, sizeof(to_pty.buf));
			if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
				return; /* no QEMU holds the socket any more: the VM is gone */
			to_pty.len = got > 0 ? (size_t)got : 0;
			if (master_hup || flush(master, &to_pty) < 0)
				to_pty.len = 0;
		}
		if (!master_hup && (pf[1].revents & POLLIN)) {
			ssize_t got = read(master, to_qemu.buf, sizeof(to_qemu.buf));
			if (got < 0 && errno == EIO) {
				master_hup = 1;
				hup_at = qu_now_us();
			}
			to_qemu.len = got > 0 ? (size_t)got : 0;
			if (flush(sock, &to_qemu) < 0)
				return;
		}
	}
}

/* The relay belongs to the VM: its cgroups (so that what contains the VM contains it) and
 * its user (it needs no privilege: its descriptors are open). */
static void become_vm(const struct qu_context *ctx)
{
	char pid[16];
	int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	for (int i = 0; ctx && i < ctx->ncgroups; i++) {
		int fd = open(ctx->cgroup_procs[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, pid, (size_t)len) < 0) {
				/* best effort */
			}
			close(fd);
		}
	}
	if (ctx && ctx->uid != 0 && (setgroups(0, NULL) < 0 || setgid(ctx->gid) < 0 || setuid(ctx->uid) < 0)) {
		/* best effort: where the switch fails the relay stays as it started */
	}
}

/* What the relay needs, filled by the tool before the fork. */
struct relay_args {
	const struct qu_context *ctx;
};

/* The relay itself: the pty master at 3, the socket to QEMU at 4, the go line at 5 (spawn.h). */
static int relay_main(void *arg)
{
	const struct relay_args *a = arg;
	become_vm(a->ctx);
	char c;
	ssize_t n;
	while ((n = read(5, &c, 1)) < 0 && errno == EINTR)
		;
	close(5);
	if (n != 1) {
		/* No go: a rollback (the new QEMU is killed: its socket ends) or a tool that died
		 * and whose guardian may still finish forward (the new QEMU lives on). Wait to
		 * see which: the first the new QEMU writes means it runs the guest. */
		struct pollfd pf = { .fd = 4, .events = POLLIN };
		char peek;
		while (poll(&pf, 1, -1) < 0 && errno == EINTR)
			;
		if (recv(4, &peek, 1, MSG_PEEK) != 1)
			return 0; /* rolled back: the old QEMU keeps the pty */
	}
	relay(3, 4);
	return 0;
}

int qu_ptyrelay_start(int master, int sock, int go, const struct qu_context *ctx)
{
	struct relay_args a = { .ctx = ctx };
	int fds[] = { master, sock, go };
	/* A grandchild, so that nobody has to reap it; SIGTERM ends it. */
	struct qu_spawn s = { .fds = fds, .nfds = 3 };
	pid_t pid;
	int r = qu_spawn_detached(&s, relay_main, &a, &pid);
	if (r < 0)
		return qu_err_wrap(r, "cannot start the pty relay");
	return 0;
}
