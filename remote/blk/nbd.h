/* Disk copy to another host, the way libvirt does it: the new QEMU exports its (empty) images
 * over NBD while it waits for the migration, and the old QEMU mirrors each disk into its
 * export until the copy is in step (READY); the migration then moves the guest, and at the
 * switch the mirrors are completed and the exports closed. Source side: remote/blk/mirror.c. */
#ifndef QU_REMOTE_NBD_H
#define QU_REMOTE_NBD_H

#include <stddef.h>
#include <stdint.h>

struct qu_qmp;

/* Starts the NBD server of the new QEMU on host (as in a URI: "1.2.3.4" or "[::1]") on a
 * socket bound here (QEMU cannot tell the port it chose), and exports each device (-drive id
 * or -blockdev node name) writable under its own name; with tls_creds (a tls-creds object's
 * id) clients must speak TLS with it. addr gets "HOST:PORT". */
int qu_nbd_export(struct qu_qmp *q, const char *host, const char *const *devices, size_t n, const char *tls_creds,
		  uint64_t deadline_us, char *addr, size_t len);
int qu_nbd_stop(struct qu_qmp *q, uint64_t deadline_us);

#endif
