/* The primary's side of disk replication (docs/standby.md, "Disks"): the initial copy of the
 * disk into the secondary's parent image, and the `replication` mode=primary child of the
 * VM's quorum that sends every guest write there while protected (qemu-colo.rst). Both go
 * over NBD with TLS (the session's key) to the export the agent made of the secondary's
 * parent image: nothing listens on the VM's host, nothing crosses in the clear. */
#ifndef QU_STANDBY_REPLICATION_H
#define QU_STANDBY_REPLICATION_H

#include <stdint.h>

struct qu_qmp;

/* The primary's replication node (a child of the quorum while protected). */
#define QU_COLO_REP_NODE "qu-colo-replication"

/* The initial copy of quorum drive device into the export `export` at nbd_addr
 * ("HOST:PORT"), TLS with tls_id, while the guest runs: a mirror of the whole disk, until in
 * step and write-blocking (from then on every guest write is on both hosts before it
 * completes). 0, or -errno with a message (the mirror cancelled). */
int qu_colo_disk_mirror(struct qu_qmp *q, const char *device, const char *export, const char *nbd_addr,
			const char *tls_id, uint64_t deadline_us);
/* With the guest stopped (the initial copy held before its switch-over): the mirror completed
 * (the copy exact: no write can come) and the replication child added to the quorum, so
 * that from COLO's resume on every write reaches the secondary. 0, or -errno with a message. */
int qu_colo_disk_switch(struct qu_qmp *q, const char *device, const char *export, const char *nbd_addr,
			const char *tls_id, uint64_t deadline_us);

/* Removes the replication child from whichever quorum holds it, and the node; a mirror of
 * ours still running is cancelled. The VM's disk is then as before protection. Returns how
 * many steps failed (each logged); what is not there is skipped. */
int qu_colo_disk_unwire(struct qu_qmp *q, uint64_t deadline_us);

#endif
