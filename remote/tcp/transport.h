/* TCP for the handover stream between the tool and an agent on another host: connecting and
 * listening with deadlines, and the shared-key authentication both sides run first. */
#ifndef QU_REMOTE_TRANSPORT_H
#define QU_REMOTE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define QU_AGENT_PORT 4779
#define QU_AUTH_NONCE_LEN 32
#define QU_AUTH_HEX_LEN 65 /* SHA-256 in hex, NUL-terminated */
#define QU_AUTH_KEY_MAX 512

/* Splits "HOST", "HOST:PORT", "[V6]:PORT" or "V6" into host and port (default_port if none). */
int qu_tcp_split(const char *hostport, int default_port, char *host, size_t len, int *port);
/* Connects to hostport before deadline_us; returns the socket or -errno (message set). */
int qu_tcp_connect(const char *hostport, int default_port, uint64_t deadline_us);
/* Listens on "[ADDR:]PORT" ("PORT" alone: every address); returns the socket or -errno. */
int qu_tcp_listen(const char *addrport, int default_port);
/* The local address of a connected socket as QEMU writes it in a URI: "1.2.3.4" or "[::1]". */
int qu_tcp_local_host(int sock, char *buf, size_t len);

/* Reads the shared key: a file only root may read (mode 0600 or stricter), whose content
 * (trailing whitespace dropped) is the key. */
int qu_auth_key_load(const char *path, unsigned char *key, size_t *len);
/* Random bytes in hex (2 * n + 1 bytes in out). */
int qu_auth_nonce(char *out, size_t n);
/* HMAC-SHA256(key, role ":" nonce) in hex: each side proves it holds the key by answering the
 * other's nonce under its own role ("tool" or "agent"). */
int qu_auth_mac(const unsigned char *key, size_t keylen, const char *role, const char *nonce,
		char out[QU_AUTH_HEX_LEN]);
/* Constant-time comparison of two MACs in hex: 1 when equal. */
int qu_auth_equal(const char *a, const char *b);

#endif
