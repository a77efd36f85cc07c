/* The agent's half of the shared-key handshake (docs/remote.md): HELLO, the agent's nonce,
 * the tool's proof and nonce, the agent's proof; then the connection is sealed under the
 * session key both sides derive. What the session does over it does not depend on how it was
 * authenticated: another handshake (TLS, ssh) replaces this file and seal.c. */
#ifndef QU_REMOTE_HANDSHAKE_H
#define QU_REMOTE_HANDSHAKE_H

#include "remote/tcp/seal.h"

#include <stddef.h>

/* Runs the handshake on sock with key (the agent's copy, QU_AUTH_KEY_MAX bytes); on success
 * the socket is sealed under seal. Returns 0, or -errno (the tool was told why, when it can
 * be). */
int qu_handshake_agent(int sock, const unsigned char *key, size_t keylen, struct qu_seal *seal);

#endif
