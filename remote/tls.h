/* TLS for what QEMU itself sends to the other host (the migration stream and the NBD disk
 * copy): a pre-shared key the transport gives the session: over ssh, a fresh random one the
 * tool sends inside the encrypted channel; over the legacy TCP transport, one both sides
 * derive from the sealed session, never sent. Each QEMU gets a tls-creds-psk object (QMP
 * object-add) whose key file lives in a directory of its own, readable only by the VM's
 * user, removed when the upgrade ends. */
#ifndef QU_REMOTE_TLS_H
#define QU_REMOTE_TLS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qu_qmp;

#define QU_TLS_ID "qemu-upgrade-tls"
#define QU_PSK_LEN 32
#define QU_PSK_HEX_LEN (2 * QU_PSK_LEN + 1) /* in hex, NUL-terminated */

/* The key QEMU's TLS runs on, whichever transport gave it. */
struct qu_psk {
	unsigned char key[QU_PSK_LEN];
};

/* A fresh key from the kernel's random number generator. */
int qu_psk_random(struct qu_psk *psk);
/* The key in lower-case hex, as the tool sends it and QEMU's key file holds it. */
void qu_psk_hex(const struct qu_psk *psk, char out[QU_PSK_HEX_LEN]);
/* The key from exactly 64 hex digits: 0, or -EINVAL. */
int qu_psk_parse(const char *hex, struct qu_psk *psk);

struct qu_tls {
	char dir[64];         /* the key file's directory ("/run/qemu-upgrade-tls-PID-RANDOM"); "" when none */
	int added;            /* the tls-creds object exists in the QEMU */
};

/* Told each path before it is made (the key file, then its directory): the agent's session
 * record must name them before they exist, or a session killed in between leaves them. */
typedef void (*qu_tls_made_fn)(const char *path, void *arg);

/* Writes psk for uid/gid and adds the tls-creds-psk object with endpoint "client" (the old
 * QEMU) or "server" (the new one). made (NULL: nobody) is told the paths first. */
int qu_tls_add(struct qu_qmp *q, const struct qu_psk *psk, const char *endpoint, uid_t uid, gid_t gid,
	       qu_tls_made_fn made, void *arg, uint64_t deadline_us, struct qu_tls *tls);
/* Removes the key file (and, with q, the object). */
void qu_tls_remove(struct qu_qmp *q, struct qu_tls *tls, uint64_t deadline_us);

#endif
