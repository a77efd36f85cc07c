/* Proxmox VE's lock on one VM (docs/proxmox.md): qemu-server's tools take
 * /run/lock/qemu-server/lock-VMID.conf (flock) around every operation on a VM, and `qm cleanup`,
 * which qmeventd runs whenever a QEMU's monitor connection closes, holds it for up to 30 s
 * while it polls whether the VM still runs. An upgrade takes it too, for its whole
 * transaction: it waits for such a poll to end (a poll that met the new QEMU's pidfile between
 * QEMU's truncate and write would tear the running VM down), and the `qm cleanup` its own old
 * or failed new QEMU's exit starts waits for it in turn, until the pidfile is settled. */
#ifndef QU_PVELOCK_H
#define QU_PVELOCK_H

#include <stdint.h>
#include <sys/types.h>

#define QU_PVE_LOCK_DIR "/run/lock/qemu-server" /* /var/lock is a link to /run/lock */

struct qu_pve_lock {
	int fd;          /* the lock file, held; -1 when none */
	long vmid;       /* Proxmox's VMID, 0 when the VM is not Proxmox's */
	double wait_ms;  /* how long the lock was waited for */
};

/* Whether pid is a Proxmox VM (its -pidfile is qemu-server's DIR/VMID.pid and the lock
 * directory exists, root's alone), and if so takes its lock, waiting until deadline_us.
 * 0 (l->fd >= 0 when taken), -EBUSY with a message when the lock stayed held, other -errno
 * with a message. */
int qu_pve_lock_take(pid_t pid, uint64_t deadline_us, struct qu_pve_lock *l);
/* The same for a VMID already known (0: not Proxmox's, nothing taken): the tap watcher
 * (upgrade/tapwatch.c) runs a down script under it, as qemu-server's operations run theirs. */
int qu_pve_lock_take_vmid(long vmid, uint64_t deadline_us, struct qu_pve_lock *l);
void qu_pve_lock_release(struct qu_pve_lock *l);
/* The VMID a -pidfile path gives (".../qemu-server/VMID.pid"), or 0. */
long qu_pve_vmid_of_pidfile(const char *pidfile);

#endif
