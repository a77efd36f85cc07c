#include "remote/tcp/server.h"
#include "remote/session.h"
#include "remote/tcp/transport.h"
#include "remote/x509/creds.h"
#include "remote/x509/relay.h"
#include "upgrade/config.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
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

int qu_tcp_server_open(const char *listen_addr, const char *pki_dir, struct qu_tcp_server *l)
{
	if (!(l->ctx = qu_x509_ctx(pki_dir, 1)))
		return -1;
	l->fd = qu_tcp_listen(listen_addr, QU_AGENT_PORT);
	return l->fd < 0 ? -1 : 0;
}

static void peer_name(int sock, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getpeername(sock, (struct sockaddr *)&ss, &l) == 0 && ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(buf, len, "%s port %d", ip, port);
}

/* A tool of before the TLS agent sends its HELLO in clear, starting with the stream's magic
 * ("QUPG"), where TLS starts with a handshake record (22): it is told, in its own protocol. */
static int old_tool(int sock, const char *peer)
{
	unsigned char b = 0;
	if (qu_poll_one(sock, POLLIN, qu_now_us() + QU_TLS_HANDSHAKE_US) < 0 || recv(sock, &b, 1, MSG_PEEK) != 1 || b != 'Q')
		return 0;
	qu_info("agent: %s speaks the old shared-key protocol: told to upgrade", peer);
	qu_stream_send_error(sock, EPROTO, "this agent speaks TLS with x509 certificates, not the shared key "
			     "(--remote-key) of older qemu-upgrade versions: install the same qemu-upgrade on both hosts "
			     "and give the tool its certificate (docs/remote.md, \"The TLS agent\"), or use --remote ssh://HOST");
	return 1;
}

/* Whether a name of agent_tls_clients is one of the certificate's (subjectAltName DNS or IP;
 * the subject's CN only when it has no DNS name). No wildcard in the certificate counts. */
static int allowed(X509 *cert, const struct qu_agent_policy *a)
{
	unsigned char bin[16];
	for (int i = 0; i < a->ntls_clients; i++) {
		const char *n = a->tls_clients[i];
		int ip = inet_pton(AF_INET, n, bin) == 1 || inet_pton(AF_INET6, n, bin) == 1;
		if (ip ? X509_check_ip_asc(cert, n, 0) == 1
		       : X509_check_host(cert, n, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1)
			return 1;
	}
	return 0;
}

/* In the connection's own process: TLS, the client's name against the policy, then the
 * session over the relay's plain socket. */
static int tls_session(const struct qu_tcp_server *l, int sock, qu_tcp_session_fn session)
{
	char host[80], peer[80], why[1024], names[512];
	peer_name(sock, peer, sizeof(peer));
	if (old_tool(sock, peer))
		return -EPROTO;
	SSL *ssl = SSL_new(l->ctx);
	if (!ssl || SSL_set_fd(ssl, sock) != 1)
		return qu_err(-ENOMEM, "agent: out of memory for TLS");
	int r = qu_x509_handshake(ssl, 1, qu_now_us() + QU_TLS_HANDSHAKE_US, why, sizeof(why));
	if (r < 0) {
		qu_info("agent: TLS with %s refused: %s", peer, why);
		SSL_free(ssl);
		return r;
	}
	X509 *cert = SSL_get0_peer_certificate(ssl);
	qu_x509_describe(cert, names, sizeof(names));
	struct qu_config *conf = calloc(1, sizeof(*conf));
	int ok = 0;
	why[0] = '\0';
	if (!conf)
		snprintf(why, sizeof(why), "out of memory");
	else if (qu_config_load(conf) < 0)
		snprintf(why, sizeof(why), "this host's policy cannot be read: %s", qu_err_msg());
	else if (!(ok = allowed(cert, &conf->agent)))
		snprintf(why, sizeof(why), "the tool's certificate (%s) has no name that agent_tls_clients in %s lists: "
			 "add one there to let that host in", names, conf->path);
	free(conf);
	if ((r = qu_tcp_local_host(sock, host, sizeof(host))) < 0) {
		SSL_free(ssl);
		return r;
	}
	pid_t relay;
	int plain = qu_x509_relay_start(ssl, sock, 0, &relay);
	if (plain < 0)
		return plain;
	if (!ok) {
		qu_info("agent: %s refused: %s", peer, why);
		qu_stream_send_error(plain, EACCES, why);
		r = -EACCES;
	} else {
		qu_info("agent: session %d with %s (%s)", (int)getpid(), peer, names);
		r = qu_session_hello(plain, "tls");
		if (r == 0)
			r = session(plain, host, NULL);
	}
	close(plain);
	qu_x509_relay_stop(relay, qu_now_us() + 5000000u);
	return r;
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
			_exit(tls_session(l, fd, session) < 0 ? 1 : 0);
		}
		close(fd);
		if (pid < 0)
			qu_info("agent: fork: %s", strerror(errno));
		else
			sessions[nsessions++] = pid;
	}
}
