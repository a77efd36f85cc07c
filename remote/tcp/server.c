#include "remote/tcp/server.h"
#include "remote/session.h"
#include "remote/tcp/transport.h"
#include "remote/x509/creds.h"
#include "remote/x509/relay.h"
#include "upgrade/config.h"
#include "upgrade/sandbox.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
/* Connections still in their handshake, apart from the sessions: at most this many at once,
 * and this many from one source address, each for QU_TLS_HANDSHAKE_US at most. A flood of
 * idle or slow peers takes these slots, never the sessions', and from one address no more
 * than a few of them. */
#define MAX_PREAUTH 64
#define MAX_PREAUTH_PER_SOURCE 8

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
static int old_tool(int sock, uint64_t deadline_us)
{
	unsigned char b = 0;
	if (qu_poll_one(sock, POLLIN, deadline_us) < 0 || recv(sock, &b, 1, MSG_PEEK) != 1 || b != 'Q')
		return 0;
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

/* What the pre-authentication process tells the session, fixed-size. */
struct preauth {
	int state;       /* PA_* */
	char why[512];   /* PA_FAILED: why (logged); PA_REFUSED: what the tool is told */
	char names[512]; /* the tool's certificate, for the log */
};
enum { PA_FAILED, PA_REFUSED, PA_OK };

/* The bytes of a peer not yet authenticated, and all TLS after, are handled by this process:
 * nobody, no capabilities, no_new_privs, a seccomp allow list (upgrade/sandbox.h). It runs the
 * handshake (2 s at most), checks the certificate's name against agent_tls_clients (policy:
 * read by the session before the fork), reports to the session on plain, then relays. A peer
 * that takes it over holds a process that can read and write this connection alone (and
 * the agent's TLS key, which it needs for the handshake: docs/remote.md, "Threat model"). */
static void preauth_child(SSL_CTX *ctx, int sock, int plain, const struct qu_config *conf)
{
	struct preauth pa;
	memset(&pa, 0, sizeof(pa));
	qu_x509_close_others(sock, plain);
	fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
	if (qu_sandbox_preauth() < 0)
		_exit(1);
	/* One deadline for all a peer does before it is authenticated. */
	uint64_t deadline = qu_now_us() + QU_TLS_HANDSHAKE_US;
	if (old_tool(sock, deadline)) {
		snprintf(pa.why, sizeof(pa.why), "it speaks the old shared-key protocol: told to upgrade");
		_exit(qu_write_full(plain, &pa, sizeof(pa)) == 0 ? 0 : 1);
	}
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, sock) != 1)
		_exit(1);
	if (qu_x509_handshake(ssl, 1, deadline, pa.why, sizeof(pa.why)) < 0)
		_exit(qu_write_full(plain, &pa, sizeof(pa)) == 0 ? 0 : 1);
	X509 *cert = SSL_get0_peer_certificate(ssl);
	qu_x509_describe(cert, pa.names, sizeof(pa.names));
	if (conf->path[0] == '\0')
		snprintf(pa.why, sizeof(pa.why), "this host's policy cannot be read");
	else if (!allowed(cert, &conf->agent))
		snprintf(pa.why, sizeof(pa.why), "the tool's certificate has no name that agent_tls_clients in %s lists: "
			 "add one there to let that host in", conf->path);
	pa.state = pa.why[0] ? PA_REFUSED : PA_OK;
	if (qu_write_full(plain, &pa, sizeof(pa)) < 0)
		_exit(1);
	qu_x509_relay(ssl, sock, plain, 0);
	_exit(0);
}

/* A string from the pre-authentication process, terminated and printable. */
static void tame(char *s, size_t size)
{
	s[size - 1] = '\0';
	for (; *s; s++)
		if ((unsigned char)*s < 32 || (unsigned char)*s > 126)
			*s = '?';
}

/* In the connection's own process (root): the policy, the pre-authentication process, then
 * the session over the plain socket it relays. */
static int tls_session(const struct qu_tcp_server *l, int sock, int authed, qu_tcp_session_fn session)
{
	char host[80], peer[80];
	int sv[2], r;
	peer_name(sock, peer, sizeof(peer));
	if ((r = qu_tcp_local_host(sock, host, sizeof(host))) < 0)
		return r;
	struct qu_config *conf = calloc(1, sizeof(*conf));
	if (!conf)
		return -ENOMEM;
	if (qu_config_load(conf) < 0) {
		qu_info("agent: %s", qu_err_msg());
		conf->path[0] = '\0'; /* every tool is refused */
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(conf);
		return qu_err(-errno, "socketpair: %s", strerror(errno));
	}
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		preauth_child(l->ctx, sock, sv[1], conf);
	}
	free(conf);
	close(sv[1]);
	close(sock);
	if (child < 0) {
		close(sv[0]);
		return qu_err(-errno, "fork: %s", strerror(errno));
	}
	struct preauth pa;
	memset(&pa, 0, sizeof(pa));
	/* Its report comes within the handshake's deadline. */
	r = qu_poll_one(sv[0], POLLIN, qu_now_us() + QU_TLS_HANDSHAKE_US + 1000000u);
	if (r >= 0 && qu_read_full(sv[0], &pa, sizeof(pa)) != (ssize_t)sizeof(pa))
		r = -EPROTO;
	tame(pa.why, sizeof(pa.why));
	tame(pa.names, sizeof(pa.names));
	if (r < 0 || pa.state == PA_FAILED) {
		qu_info("agent: TLS with %s refused: %s", peer, r < 0 ? "its pre-authentication process ended" : pa.why);
		r = -EPROTO;
	} else if (pa.state == PA_REFUSED) {
		qu_info("agent: %s refused: %s (%s)", peer, pa.why, pa.names);
		char msg[1100];
		snprintf(msg, sizeof(msg), "%s (its names: %s)", pa.why, pa.names);
		qu_stream_send_error(sv[0], EACCES, msg);
		r = -EACCES;
	} else {
		qu_info("agent: session %d with %s (%s)", (int)getpid(), peer, pa.names);
		/* The listener counts it as a session from here, no longer as a handshake. */
		pid_t self = getpid();
		if (write(authed, &self, sizeof(self)) != (ssize_t)sizeof(self))
			qu_info("agent: cannot tell the listener that session %d began", (int)self);
		r = qu_session_hello(sv[0], "tls");
		if (r == 0)
			r = session(sv[0], host, NULL);
	}
	close(sv[0]);
	qu_x509_relay_stop(child, qu_now_us() + 5000000u);
	return r;
}

/* A connection's process, as the listener counts it. */
struct conn {
	pid_t pid;
	int authed;                  /* past the handshake: a session */
	unsigned char source[16];    /* the peer's address (IPv4 in the first 4 bytes) */
};

static void source_of(const struct sockaddr_storage *ss, unsigned char out[16])
{
	memset(out, 0, 16);
	if (ss->ss_family == AF_INET)
		memcpy(out, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

/* Why a new connection from source cannot be taken now, or NULL. */
static const char *no_room(const struct conn *c, size_t n, const unsigned char source[16])
{
	size_t sessions = 0, preauth = 0, same = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].authed) {
			sessions++;
		} else {
			preauth++;
			same += !memcmp(c[i].source, source, 16);
		}
	}
	if (sessions >= MAX_SESSIONS)
		return "the agent serves as many upgrades as it may at once: try again later";
	if (preauth >= MAX_PREAUTH)
		return "too many connections are in their TLS handshake here: try again in a few seconds";
	if (same >= MAX_PREAUTH_PER_SOURCE)
		return "too many connections from this address are in their TLS handshake: try again in a few seconds";
	return NULL;
}

/* The connections whose process said (on the pipe) that its peer is authenticated. */
static void took_sessions(int pipe_fd, struct conn *c, size_t n)
{
	pid_t began;
	while (read(pipe_fd, &began, sizeof(began)) == (ssize_t)sizeof(began))
		for (size_t i = 0; i < n; i++)
			if (c[i].pid == began)
				c[i].authed = 1;
}

int qu_tcp_server_run(struct qu_tcp_server *l, qu_tcp_session_fn session, qu_tcp_ended_fn ended, int once)
{
	static struct conn conns[MAX_SESSIONS + MAX_PREAUTH];
	size_t nconns = 0;
	unsigned long long refused = 0;
	uint64_t told_us = 0;
	int authed[2];
	signal(SIGPIPE, SIG_IGN);
	/* Each connection's process writes its PID here once its peer is authenticated. */
	if (pipe2(authed, O_CLOEXEC | O_NONBLOCK) < 0)
		return qu_err(-errno, "pipe: %s", strerror(errno)), -1;
	for (;;) {
		/* Reap ended sessions, and the QEMUs they left running once those end (the server
		 * is their subreaper: see qu_tcp_server_run's callers). */
		int status;
		pid_t done;
		while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
			int was_session = 0, was_conn = 0;
			took_sessions(authed[0], conns, nconns); /* it told us before it ended */
			for (size_t i = 0; i < nconns; i++)
				if (conns[i].pid == done) {
					was_conn = 1;
					was_session = conns[i].authed;
					conns[i] = conns[--nconns];
					break;
				}
			ended(done, status, !was_conn);
			if (once && was_session) {
				close(l->fd);
				return 0;
			}
		}
		took_sessions(authed[0], conns, nconns);
		struct pollfd pf[2] = { { .fd = l->fd, .events = POLLIN }, { .fd = authed[0], .events = POLLIN } };
		if (poll(pf, 2, 500) <= 0 || !(pf[0].revents & POLLIN))
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
				continue; /* the peer's trouble (reset, aborted, ...) */
			qu_info("agent: accept: %s", strerror(errno));
			usleep(100000);
			continue;
		}
		struct conn c = { .pid = 0 };
		source_of(&ss, c.source);
		const char *full = no_room(conns, nconns, c.source);
		if (full) {
			/* Said in clear, unauthenticated: a tool that reads it as TLS fails, and its
			 * operator finds the reason in this log (once a second at most). */
			refused++;
			if (qu_now_us() - told_us > 1000000u) {
				char peer[80];
				peer_name(fd, peer, sizeof(peer));
				qu_info("agent: %s refused: %s (%llu refused so far)", peer, full, refused);
				told_us = qu_now_us();
			}
			close(fd);
			continue;
		}
		keepalive(fd);
		pid_t pid = fork();
		if (pid == 0) {
			close(l->fd);
			close(authed[0]);
			_exit(tls_session(l, fd, authed[1], session) < 0 ? 1 : 0);
		}
		close(fd);
		if (pid < 0) {
			qu_info("agent: fork: %s", strerror(errno));
		} else {
			c.pid = pid;
			conns[nconns++] = c;
		}
	}
}
