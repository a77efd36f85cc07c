/* TLS on one TCP connection, kept out of the code that uses it: after the handshake (run here
 * with a deadline), a relay process pumps between the SSL connection and one end of a
 * socketpair, and its caller keeps the other end, a plain connected socket, as the ssh
 * transport gives one (remote/ssh/). The relay is a process, not a thread: the agent's session
 * forks children that work as the VM's user, which must not inherit a thread holding locks.
 * It closes every other descriptor it inherited, so that no socket or pipe of its parent's
 * stays open in it. */
#ifndef QU_REMOTE_X509_RELAY_H
#define QU_REMOTE_X509_RELAY_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* SSL_accept (agent 1) or SSL_connect on ssl's socket (non-blocking) until deadline_us: 0, or
 * -ETIMEDOUT, or -EPROTO with OpenSSL's reason (and, for a certificate, why it was refused)
 * in why. */
int qu_x509_handshake(SSL *ssl, int agent, uint64_t deadline_us, char *why, size_t len);
/* The relay's loop, in a process of its own: TLS (ssl on tcp) <-> plain until plain ends. With
 * tool, a TLS failure before anything came is handed to plain as an ERROR record. */
void qu_x509_relay(SSL *ssl, int tcp, int plain, int tool);
/* Closes every descriptor from 3 up but a and b (a child that must hold nothing else). */
void qu_x509_close_others(int a, int b);
/* Starts the relay for ssl on tcp (which this process then closes, with ssl freed): the plain
 * socket (close-on-exec) with *pid the relay's, or -errno. When the TLS connection fails before
 * anything came through it, the tool's relay (tool 1) hands the tool an ERROR record saying why
 * (the agent refused this host's certificate), where the tool waits for an answer. */
int qu_x509_relay_start(SSL *ssl, int tcp, int tool, pid_t *pid);
/* After the plain socket was closed: waits for the relay to send its close and end, at most
 * until deadline_us, then kills it; reaps it either way. */
void qu_x509_relay_stop(pid_t pid, uint64_t deadline_us);

#endif
