#include "remote/ssh/connect.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

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

#define MAX_ARGS 24

/* ssh's arguments, OpenSSH's syntax: no terminal (the stream is binary), no agent or X11
 * forwarding to the other host, never a prompt, a peer that went away noticed within half a
 * minute (as the TCP transport's keepalive does); the user and port as options of their own
 * and the host after "--", so that no part of the URI can be read as an option. Options in
 * QEMU_UPGRADE_SSH come first, and ssh keeps the first value it reads. */
static size_t ssh_args(const struct qu_ssh_uri *u, char *port, size_t portlen, const char **argv)
{
	size_t n = 0;
	argv[n++] = "-T";
	argv[n++] = "-a";
	argv[n++] = "-x";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	argv[n++] = "-o";
	argv[n++] = "ServerAliveInterval=10";
	argv[n++] = "-o";
	argv[n++] = "ServerAliveCountMax=3";
	if (u->user[0]) {
		argv[n++] = "-l";
		argv[n++] = u->user;
	}
	if (u->port) {
		snprintf(port, portlen, "%d", u->port);
		argv[n++] = "-p";
		argv[n++] = port;
	}
	argv[n++] = "--";
	argv[n++] = u->host;
	argv[n++] = QU_SSH_REMOTE_COMMAND;
	return n;
}

#define SH_LINE_MAX 4096

/* The command line: ssh's arguments after "ssh", or (QEMU_UPGRADE_SSH, as git runs
 * GIT_SSH_COMMAND) after `/bin/sh -c 'CMD "$@"' CMD`. Made before the fork: the child only
 * execs. */
static int command(const char *const *args, char *line, const char **argv)
{
	const char *cmd = getenv(QU_SSH_ENV);
	size_t n = 0;
	if (cmd && *cmd) {
		if (strlen(cmd) + sizeof(" \"$@\"") > SH_LINE_MAX)
			return qu_err(-E2BIG, "%s is longer than %d bytes", QU_SSH_ENV, SH_LINE_MAX - 8);
		snprintf(line, SH_LINE_MAX, "%s \"$@\"", cmd);
		argv[n++] = "/bin/sh";
		argv[n++] = "-c";
		argv[n++] = line;
		argv[n++] = cmd;
	} else {
		argv[n++] = "ssh";
	}
	for (size_t i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return 0;
}

/* In the child: ssh's own session (a Ctrl-C at the tool's terminal is the tool's to handle: it
 * rolls back through the agent, which needs ssh alive), default signals, the socket as stdin
 * and stdout, the pipe as stderr, nothing else open. */
static void exec_ssh(int sock, int err, const char *const *argv)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	setsid();
	/* Above stdio first: a caller with stdio closed may have been given 0, 1 or 2. */
	int s = fcntl(sock, F_DUPFD, 3), e = fcntl(err, F_DUPFD, 3);
	if (s < 0 || e < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(e, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	if (!strcmp(argv[0], "ssh"))
		execvp("ssh", (char *const *)argv);
	else
		execv(argv[0], (char *const *)argv);
	static const char msg[] = "cannot run ssh (install openssh-client, or name the command in " QU_SSH_ENV ")\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nobody to tell */
	}
	_exit(127);
}

int qu_ssh_start(const struct qu_ssh_uri *u, struct qu_ssh *s)
{
	const char *args[MAX_ARGS], *argv[MAX_ARGS + 5];
	char port[8], *line = malloc(SH_LINE_MAX);
	int sv[2], ep[2], r;
	size_t n = ssh_args(u, port, sizeof(port), args);
	args[n] = NULL;
	memset(s, 0, sizeof(*s));
	s->err = -1;
	if (!line)
		return qu_err(-ENOMEM, "out of memory");
	if ((r = command(args, line, argv)) < 0) {
		free(line);
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(line);
		return qu_err(r, "socketpair: %s", strerror(-r));
	}
	if (pipe2(ep, O_CLOEXEC) < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		free(line);
		return qu_err(r, "pipe: %s", strerror(-r));
	}
	pid_t pid = fork();
	if (pid == 0)
		exec_ssh(sv[1], ep[1], argv);
	int e = errno;
	free(line);
	close(sv[1]);
	close(ep[1]);
	if (pid < 0) {
		close(sv[0]);
		close(ep[0]);
		return qu_err(-e, "cannot start ssh: fork: %s", strerror(e));
	}
	s->pid = pid;
	s->err = ep[0];
	/* Room for the agent's log lines between two looks (best effort). */
	fcntl(s->err, F_SETPIPE_SZ, 1 << 20);
	fcntl(s->err, F_SETFL, fcntl(s->err, F_GETFL) | O_NONBLOCK);
	return sv[0];
}

static void keep(struct qu_ssh *s, const char *buf, size_t n)
{
	if (n >= sizeof(s->tail)) {
		memcpy(s->tail, buf + n - sizeof(s->tail), sizeof(s->tail));
		s->len = sizeof(s->tail);
		return;
	}
	if (s->len + n > sizeof(s->tail)) {
		size_t drop = s->len + n - sizeof(s->tail);
		memmove(s->tail, s->tail + drop, s->len - drop);
		s->len -= drop;
	}
	memcpy(s->tail + s->len, buf, n);
	s->len += n;
}

void qu_ssh_drain(struct qu_ssh *s, uint64_t deadline_us)
{
	char buf[4096];
	while (s->err >= 0) {
		ssize_t n = read(s->err, buf, sizeof(buf));
		if (n > 0) {
			keep(s, buf, (size_t)n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			qu_close(&s->err);
			break;
		}
		if (!deadline_us || errno == EINTR)
			break;
		struct pollfd pf = { .fd = s->err, .events = POLLIN };
		uint64_t now = qu_now_us();
		if (now >= deadline_us || poll(&pf, 1, (int)((deadline_us - now) / 1000u) + 1) <= 0)
			break;
	}
}

void qu_ssh_said(const struct qu_ssh *s, int lines, char *buf, size_t len)
{
	char text[QU_SSH_TAIL + 1];
	size_t n = s->len;
	memcpy(text, s->tail, n);
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	text[n] = '\0';
	/* The start of the last SAID_LINES lines. */
	size_t from = n;
	for (int seen = 0; from > 0; from--)
		if (text[from - 1] == '\n' && ++seen == lines)
			break;
	size_t o = 0;
	if (!len)
		return;
	for (size_t i = from; i < n && o + 4 < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\r')
			continue;
		if (c == '\n') {
			memcpy(buf + o, " / ", 3);
			o += 3;
		} else {
			buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
	}
	buf[o] = '\0';
}

void qu_ssh_stop(struct qu_ssh *s, uint64_t deadline_us)
{
	if (s->pid > 0) {
		/* Our child: its PID cannot be reused before we reap it. */
		int pfd = qu_pidfd_open(s->pid);
		for (;;) {
			struct pollfd pf[2] = { { .fd = pfd, .events = POLLIN }, { .fd = s->err, .events = POLLIN } };
			uint64_t now = qu_now_us();
			if (pfd < 0 || now >= deadline_us)
				break;
			int n = poll(pf, 2, (int)((deadline_us - now) / 1000u) + 1);
			if (n < 0 && errno != EINTR)
				break;
			if (pf[1].revents)
				qu_ssh_drain(s, 0); /* what it says while it ends must not block it */
			if (pf[0].revents & POLLIN)
				break;
		}
		if (waitpid(s->pid, &s->status, WNOHANG) == 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &s->status, 0);
		}
		qu_close(&pfd);
		s->pid = 0;
	}
	qu_ssh_drain(s, 0);
	qu_close(&s->err);
}
