/* The agent's TCP server: it listens, accepts connections, serves each in a process of its own
 * (at most 32 at once), authenticates the tool there (remote/tcp/handshake.h) and hands the
 * sealed connection to the session server, which knows nothing of the key or of how the
 * tool proved it holds it. */
#ifndef QU_REMOTE_TCP_SERVER_H
#define QU_REMOTE_TCP_SERVER_H

#include "remote/tcp/seal.h"
#include "remote/tcp/transport.h"

#include <stddef.h>
#include <sys/types.h>

struct qu_tcp_server {
	int fd;
	unsigned char key[QU_AUTH_KEY_MAX]; /* the shared key */
	size_t keylen;
};

/* Serves one authenticated connection, in its own process: sock is sealed; psk is the key
 * for QEMU's TLS, derived from the session key by both ends; host is this host's address as
 * the tool reached it ("1.2.3.4" or "[::1]"), for the URIs QEMU listens on. 0, or -errno (the
 * process exits 1). */
typedef int (*qu_tcp_session_fn)(int sock, const char *host, const struct qu_psk *psk);
/* Told after a session's process ended and was reaped, with its wait status. */
typedef void (*qu_tcp_ended_fn)(pid_t session, int status);

/* Loads the key at key_path and listens on listen_addr ("[ADDR:]PORT", default port 4779).
 * -1 with a message when it cannot. */
int qu_tcp_server_open(const char *listen_addr, const char *key_path, struct qu_tcp_server *l);
/* Serves until killed, or with once until the first session ended (then 0). */
int qu_tcp_server_run(struct qu_tcp_server *l, qu_tcp_session_fn session, qu_tcp_ended_fn ended, int once);

#endif
