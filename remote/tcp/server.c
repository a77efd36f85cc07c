#include "remote/tcp/server.h"
#include "remote/tcp/handshake.h"
#include "remote/tcp/transport.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sessions served at once (each a process); more connections are told to come back. */
#define MAX_SESSIONS 32

/* A tool whose host went away shows within half a minute (the session then undoes what it
 * made); records are small and answered one by one: no Nagle delay. */
static void keepalive(int fd)
{
	int on = 1, idle = 10, intvl = 5, cnt = 3;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

int qu_tcp_server_open(const char *listen_addr, const char *key_path, struct qu_tcp_server *l)
{
	if (qu_auth_key_load(key_path, l->key, &l->keylen) < 0)
		return -1;
	l->fd = qu_tcp_listen(listen_addr, QU_AGENT_PORT);
	return l->fd < 0 ? -1 : 0;
}

/* In the connection's own process: the handshake, then the session over the sealed socket. */
static int authenticated_session(const struct qu_tcp_server *l, int sock, qu_tcp_session_fn session)
{
	char host[80];
	struct qu_seal seal;
	struct qu_psk psk;
	int r = qu_handshake_agent(sock, l->key, l->keylen, &seal);
	if (r < 0)
		return r;
	if ((r = qu_tcp_local_host(sock, host, sizeof(host))) < 0 || (r = qu_seal_psk(&seal, &psk)) < 0)
		return r;
	return session(sock, host, &psk);
}

int qu_tcp_server_run(struct qu_tcp_server *l, qu_tcp_session_fn session, qu_tcp_ended_fn ended, int once)
{
	pid_t sessions[MAX_SESSIONS];
	size_t nsessions = 0;
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		/* Reap ended sessions (the QEMUs they started are not our children: they go to the
		 * init process when their session ends). */
		int status;
		pid_t done;
		while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
			ended(done, status);
			for (size_t i = 0; i < nsessions; i++)
				if (sessions[i] == done)
					sessions[i] = sessions[--nsessions];
			if (once) {
				close(l->fd);
				return 0;
			}
		}
		if (qu_poll_one(l->fd, POLLIN, qu_now_us() + 500000u) == -ETIMEDOUT)
			continue;
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
				continue; /* the peer's trouble (reset, aborted, ...) */
			qu_info("agent: accept: %s", strerror(errno));
			usleep(100000);
			continue;
		}
		if (nsessions == MAX_SESSIONS) {
			qu_stream_send_error(fd, EBUSY, "the agent serves as many upgrades as it may at once: try again later");
			close(fd);
			continue;
		}
		keepalive(fd);
		pid_t pid = fork();
		if (pid == 0) {
			close(l->fd);
			_exit(authenticated_session(l, fd, session) < 0 ? 1 : 0);
		}
		close(fd);
		if (pid < 0)
			qu_info("agent: fork: %s", strerror(errno));
		else
			sessions[nsessions++] = pid;
	}
}
