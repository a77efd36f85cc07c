/* The agent's end of the ssh transport: `qemu-upgrade agent --stdio`, the remote command the
 * tool gives ssh. sshd has authenticated the tool (root's key) and encrypts the channel, so
 * there is no handshake of ours and nothing is sealed: one session is served on stdin/stdout.
 * sshd may give pipes rather than a socket, and the session code wants one connected socket:
 * this process relays between stdin/stdout and a socketpair whose other end a child process
 * serves the session on. The parent waits for that child and cleans up after it if it died
 * without doing so (its record, remote/record.h), as the --listen server does. */
#ifndef QU_REMOTE_SSH_STDIO_H
#define QU_REMOTE_SSH_STDIO_H

#include <stddef.h>
#include <sys/types.h>

struct qu_psk;

/* The session: on sock, with host (this host's address as sshd was reached at, "1.2.3.4" or
 * "[::1]"), psk NULL (the tool sends QEMU's TLS key inside the channel). 0, or -errno. */
typedef int (*qu_ssh_session_fn)(int sock, const char *host, const struct qu_psk *psk);
/* Told after the session's process ended and was reaped, with its wait status. */
typedef void (*qu_ssh_ended_fn)(pid_t session, int status);

/* This host's address from SSH_CONNECTION ("CLIENT-IP CLIENT-PORT SERVER-IP SERVER-PORT", set
 * by sshd): the server's IP literal, IPv6 in brackets. -EINVAL with a message when it is
 * missing or malformed. */
int qu_ssh_server_addr(const char *ssh_connection, char *host, size_t len);
/* Serves one session on stdin/stdout; returns when it ended (0), or -1 with a message when it
 * cannot start. */
int qu_ssh_stdio_serve(qu_ssh_session_fn session, qu_ssh_ended_fn ended);

#endif
