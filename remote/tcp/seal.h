/* After the handshake, every record between the tool and the agent travels sealed: a MAC
 * under a session key that only holders of the shared key can derive from both nonces,
 * over the direction, a sequence number and the record. A party in the middle can neither
 * change, insert, drop, replay nor reflect a record (docs/remote.md). Not encryption. */
#ifndef QU_REMOTE_SEAL_H
#define QU_REMOTE_SEAL_H

#include "remote/tls.h"
#include "upgrade/stream.h"

#include <stddef.h>
#include <stdint.h>

struct qu_seal {
	struct qu_sealer base;
	unsigned char key[32];  /* HMAC-SHA256(shared key, "qemu-upgrade:session:" Na ":" Nt) */
	uint64_t seq[2];        /* next sequence number: [0] received, [1] sent */
	int tool;               /* this side is the tool (else the agent) */
};

/* Derives the session key; then qu_stream_set_sealer(sock, &s->base) seals the socket. */
int qu_seal_init(struct qu_seal *s, const unsigned char *key, size_t keylen, const char *agent_nonce,
		 const char *tool_nonce, int tool);
/* The key for QEMU's TLS, which both sides derive from the session key (HMAC-SHA256(session
 * key, "qemu-upgrade:tls")): it never crosses the wire. */
int qu_seal_psk(const struct qu_seal *s, struct qu_psk *psk);

#endif
