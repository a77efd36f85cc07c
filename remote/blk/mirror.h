/* The source side of the disk copy to another host: the old QEMU's mirror jobs into the new
 * QEMU's NBD exports (remote/blk/nbd.c). Which disks there are: qemu-integration/disks.h. */
#ifndef QU_REMOTE_MIRROR_H
#define QU_REMOTE_MIRROR_H

#include "qemu-integration/disks.h"

#include <stdint.h>

struct qu_qmp;

/* Starts one mirror job per disk to copy (mask: bit i = out->d[i]) into the export DEVICE at
 * addr ("HOST:PORT"), over TLS with the tls-creds object tls_creds unless NULL. The disks of
 * top_mask copy their top image alone (sync=top, for --copy-storage-inc: the backing files are
 * on the other host already), the others all the disk reads (sync=full). */
int qu_mirror_start(struct qu_qmp *q, const struct qu_disks *disks, unsigned mask, unsigned top_mask,
		    const char *addr, const char *tls_creds, uint64_t deadline_us);
/* One such job, number i: device mirrored into the export named export (standby: the
 * secondary's parent image has an id of its own), all of it or (top) its top image alone. */
int qu_mirror_start_one(struct qu_qmp *q, unsigned i, const char *device, const char *export, const char *addr,
			const char *tls_creds, int top, uint64_t deadline_us);
/* With every job READY and the guest still running: each job becomes write-blocking
 * (block-job-change copy-mode=write-blocking, QEMU 8.2+), so that a guest write completes only
 * once it is on both hosts, and this waits until QEMU says each job is actively synced. */
int qu_mirror_write_blocking(struct qu_qmp *q, int expected, uint64_t deadline_us);
/* Waits until all `expected` jobs are READY (source and copy in step; writes go to both). */
int qu_mirror_wait_ready(struct qu_qmp *q, int expected, uint64_t deadline_us);
/* With the source paused before the switch-over: completes each ready job (cancel of a ready
 * mirror = done, the copy is exact) and waits for them to end. copied: the bytes the jobs
 * wrote to the other host (their offsets once concluded). */
int qu_mirror_complete(struct qu_qmp *q, int expected, uint64_t deadline_us, unsigned long long *copied);
/* Rollback: cancels the jobs at once (the copy is dropped with the new QEMU). */
void qu_mirror_abort(struct qu_qmp *q, uint64_t deadline_us);

#endif
