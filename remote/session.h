/* The agent's session server: one upgrade to this host, served over a connection that the
 * transport has authenticated already and encrypts (remote/ssh/: ssh; remote/tcp/: TLS 1.3
 * with x509 certificates both ways, remote/x509/). It reads the tool's records
 * and dispatches each to its operation on the new QEMU (remote/target.h) from a table:
 * launch records, EXEC, and the CALLs probe, admit, chain, disk, verify, tls, resume and abort
 * (docs/remote.md, "Protocol"). The host's policy (remote/policy.h), read when the session
 * starts, is checked at probe, admit, chain and EXEC, before anything is run, read or made. */
#ifndef QU_REMOTE_SESSION_H
#define QU_REMOTE_SESSION_H

struct qu_psk;

/* Serves records until END or until the tool goes away; a new QEMU that was not resumed is
 * then stopped and what was made for it removed. All a transport gives it: sock, a connected
 * stream; host, this host's address as the tool reached it, for the URIs the new QEMU listens
 * on; psk, a key for QEMU's TLS the transport already has, or NULL when the tool sends one in
 * its tls CALL (both transports do now: they encrypt). 0, or -errno. */
int qu_session_serve(int sock, const char *host, const struct qu_psk *psk);

/* HELLO from the tool (the stream version it speaks), answered with what this agent is and
 * over which transport ("ssh", "tls"); a version that differs is refused. 0, or -errno. */
int qu_session_hello(int sock, const char *transport);

#endif
