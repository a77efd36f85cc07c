/* TLS for what QEMU itself sends to the other host (the migration stream and the NBD disk
 * copy): a pre-shared key that both sides derive from the sealed session, never sent. Each
 * QEMU gets a tls-creds-psk object (QMP object-add) whose key file lives in a directory of
 * its own, readable only by the VM's user, removed when the upgrade ends. */
#ifndef QU_REMOTE_TLS_H
#define QU_REMOTE_TLS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qu_qmp;
struct qu_seal;

#define QU_TLS_ID "qemu-upgrade-tls"

struct qu_tls {
	char dir[64];         /* the key file's directory ("/run/qemu-upgrade-tls-PID-RANDOM"); "" when none */
	int added;            /* the tls-creds object exists in the QEMU */
};

/* Writes the PSK derived from seal for uid/gid and adds the tls-creds-psk object with
 * endpoint "client" (the old QEMU) or "server" (the new one). */
int qu_tls_add(struct qu_qmp *q, const struct qu_seal *seal, const char *endpoint, uid_t uid, gid_t gid,
	       uint64_t deadline_us, struct qu_tls *tls);
/* Removes the key file (and, with q, the object). */
void qu_tls_remove(struct qu_qmp *q, struct qu_tls *tls, uint64_t deadline_us);

#endif
