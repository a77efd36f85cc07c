/* The agent's TCP server (`agent --listen`): it listens, accepts connections, serves each in a
 * process of its own (at most 32 sessions, and apart from them at most 64 connections in their
 * handshake, 8 from one address, each 2 s at most), runs TLS 1.3 there with the tool's x509
 * certificate required (remote/x509/), lets in only a certificate whose name the policy's
 * agent_tls_clients lists, and hands a plain socket (the TLS relay's other end) to the session
 * server, which knows nothing of certificates. A tool that speaks the old shared-key protocol
 * is told, in that protocol, that this agent does not. */
#ifndef QU_REMOTE_TCP_SERVER_H
#define QU_REMOTE_TCP_SERVER_H

#include "remote/tcp/transport.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/types.h>

struct qu_psk;

/* Handshake deadline: a peer that has not finished TLS by then is dropped. */
#define QU_TLS_HANDSHAKE_US (2ull * 1000000u)

struct qu_tcp_server {
	int fd;
	SSL_CTX *ctx;
};

/* Serves one authenticated connection, in its own process: sock is the plain end of the TLS
 * relay; host is this host's address as the tool reached it ("1.2.3.4" or "[::1]"), for the
 * URIs QEMU listens on; psk NULL (the tool sends QEMU's TLS key inside the channel). 0, or
 * -errno (the process exits 1). */
typedef int (*qu_tcp_session_fn)(int sock, const char *host, const struct qu_psk *psk);
/* Told after a child ended and was reaped, with its wait status: a connection's process
 * (adopted 0), or a process a session left running that the server adopted as their
 * subreaper (adopted 1: a QEMU that outlived its session, then ended). */
typedef void (*qu_tcp_ended_fn)(pid_t pid, int status, int adopted);

/* Loads the agent's certificates from pki_dir (NULL: /etc/pki/qemu-upgrade) and listens on
 * listen_addr ("[ADDR:]PORT", default port 4779). -1 with a message when it cannot. */
int qu_tcp_server_open(const char *listen_addr, const char *pki_dir, struct qu_tcp_server *l);
/* Serves until killed, or with once until the first authenticated session ended (then 0). */
int qu_tcp_server_run(struct qu_tcp_server *l, qu_tcp_session_fn session, qu_tcp_ended_fn ended, int once);

#endif
