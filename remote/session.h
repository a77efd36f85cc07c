/* The agent's session server: one upgrade to this host, served over a connection that the
 * transport has authenticated already (remote/ssh/: ssh did, and encrypts; remote/tcp/: the
 * shared-key handshake, then every record sealed). It reads the tool's records
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
 * on; psk, the key for QEMU's TLS that both ends derived, or NULL when the tool sends one in
 * its tls CALL (only over a transport that encrypts). 0, or -errno. */
int qu_session_serve(int sock, const char *host, const struct qu_psk *psk);

#endif
