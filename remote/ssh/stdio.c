#include "remote/ssh/stdio.h"
#include "remote/session.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SSH_CONNECTION_MAX 256

int qu_ssh_server_addr(const char *conn, char *host, size_t len)
{
	char copy[SSH_CONNECTION_MAX], *field[4], *save = NULL;
	unsigned char bin[16];
	int n = 0;
	if (!conn || !*conn)
		return qu_err(-EINVAL, "SSH_CONNECTION is not set: `qemu-upgrade agent --stdio` is the command "
			      "`qemu-upgrade --remote ssh://HOST` runs through sshd, not one to start by hand");
	if (strnlen(conn, sizeof(copy)) == sizeof(copy))
		return qu_err(-EINVAL, "SSH_CONNECTION is too long to be sshd's");
	snprintf(copy, sizeof(copy), "%s", conn);
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		if (n < 4)
			field[n++] = t;
		else
			n = 5;
	if (n != 4)
		return qu_err(-EINVAL, "SSH_CONNECTION '%.64s' is not CLIENT-IP CLIENT-PORT SERVER-IP SERVER-PORT", conn);
	const char *ip = field[2];
	if (inet_pton(AF_INET, ip, bin) == 1) {
		snprintf(host, len, "%s", ip);
	} else if (inet_pton(AF_INET6, ip, bin) == 1) {
		char v4[INET_ADDRSTRLEN];
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(bin, mapped, sizeof(mapped)) && inet_ntop(AF_INET, bin + 12, v4, sizeof(v4)))
			snprintf(host, len, "%s", v4);
		else
			snprintf(host, len, "[%s]", ip);
	} else {
		return qu_err(-EINVAL, "SSH_CONNECTION's server address '%.64s' is not an IP address", ip);
	}
	return strlen(host) + 1 < len ? 0 : qu_err(-ENAMETOOLONG, "the server address does not fit");
}

/* The session's process: stdin and stdout become /dev/null, so that nothing it or its
 * children write can land in the stream; stderr stays (its log lines go back over ssh). */
static void session_child(int sock, const char *host, qu_ssh_session_fn session)
{
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0)
		_exit(1);
	close(nul);
	int r = qu_session_hello(sock, "ssh");
	if (r == 0)
		r = session(sock, host, NULL);
	_exit(r < 0 ? 1 : 0);
}

/* Bytes read from one side that the other did not take yet. */
struct pending {
	char buf[4096];
	size_t len, off;
	int eof; /* the reading side ended */
};

static void pump_in(int from, struct pending *p)
{
	ssize_t n = read(from, p->buf, sizeof(p->buf));
	if (n > 0) {
		p->len = (size_t)n;
		p->off = 0;
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		p->eof = 1;
	}
}

/* 0, or -1 when to is gone (what is pending is dropped). */
static int pump_out(int to, struct pending *p)
{
	ssize_t n = write(to, p->buf + p->off, p->len - p->off);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		p->len = p->off = 0;
		return -1;
	}
	p->off += n > 0 ? (size_t)n : 0;
	if (p->off == p->len)
		p->len = p->off = 0;
	return 0;
}

/* stdin -> sock and sock -> stdout until the session's end of sock is gone. Each side is read
 * only once what it gave last was taken. When the tool's side ends (stdin at its end, or
 * stdout broken) the session is told by a shutdown of our writing half, and what it still
 * says is dropped. */
static void relay(int in, int out, int sock)
{
	struct pending up = { .len = 0 }, down = { .len = 0 };
	int out_ok = 1, shut = 0;
	fcntl(in, F_SETFL, fcntl(in, F_GETFL) | O_NONBLOCK);
	fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
	fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
	for (;;) {
		if (up.eof && !up.len && !shut) {
			shutdown(sock, SHUT_WR);
			shut = 1;
		}
		struct pollfd pf[4] = {
			{ .fd = up.eof || up.len ? -1 : in, .events = POLLIN },
			{ .fd = up.len ? sock : -1, .events = POLLOUT },
			{ .fd = down.len ? -1 : sock, .events = POLLIN },
			{ .fd = down.len ? out : -1, .events = POLLOUT },
		};
		if (poll(pf, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pf[0].revents)
			pump_in(in, &up);
		if (pf[1].revents && pump_out(sock, &up) < 0)
			up.eof = 1; /* the session is gone: what the tool sends is for nobody */
		if (pf[3].revents && pump_out(out, &down) < 0) {
			out_ok = 0; /* the tool's side is gone: so is its input */
			up.eof = 1;
			up.len = up.off = 0;
		}
		if (pf[2].revents) {
			pump_in(sock, &down);
			if (down.eof)
				return;
			if (!out_ok)
				down.len = 0;
		}
	}
}

int qu_ssh_stdio_serve(qu_ssh_session_fn session, qu_ssh_ended_fn ended)
{
	char host[80];
	int sv[2];
	if (qu_ssh_server_addr(getenv("SSH_CONNECTION"), host, sizeof(host)) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return qu_err(-errno, "socketpair: %s", strerror(errno)), -1;
	signal(SIGPIPE, SIG_IGN);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return qu_err(-e, "fork: %s", strerror(e)), -1;
	}
	if (pid == 0) {
		close(sv[0]);
		session_child(sv[1], host, session);
	}
	close(sv[1]);
	qu_info("agent: session %d over ssh (this host reached at %s)", (int)pid, host);
	relay(0, 1, sv[0]);
	close(sv[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* What the session left undone (killed, out of memory) is undone before the tool sees the
	 * end of the connection: its rollback may need what the new QEMU held here released. */
	ended(pid, status);
	close(1);
	close(0);
	return 0;
}
