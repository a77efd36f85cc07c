/* libvirt mode (docs/libvirt.md): around the upgrade of a VM that libvirt runs. Before it,
 * the gate: while libvirt's daemon runs (it holds the VM's monitor) the upgrade is refused,
 * unless the caller allows the daemon's restart; then the daemon is stopped. After it: the
 * status file's pid= follows the new QEMU (only after the commit), and the daemon is started
 * again, whatever happened. */
#ifndef QU_LIBVIRTGATE_H
#define QU_LIBVIRTGATE_H

#include "upgrade/libvirt.h"
#include "upgrade/libvirtd.h"

#include <stdint.h>
#include <sys/types.h>

struct qu_report_libvirt;

struct qu_libvirt_gate {
	struct qu_libvirt lv;
	struct qu_libvirtd daemon;
	int daemon_running;           /* found running before the upgrade */
	int locked;                   /* this gate took the libvirt lock (below) */
	char refusal[1024];           /* a dry run's: the daemon runs and no restart is allowed ("" else) */
};

/* One libvirt-mode upgrade on the host at a time (<state dir>/libvirt.lock, flock): another
 * one would start the daemon again while this one still holds a domain's monitor, or rewrite
 * a status file under a running daemon. Waits until deadline_us (-EBUSY with a message). A
 * process that holds it (an --all batch) passes it to its forked children. */
int qu_libvirt_lock(uint64_t deadline_us);
void qu_libvirt_unlock(void);
/* In a child that closed the descriptors it inherited (the guardian): the lock is not held
 * there, whatever the parent held. */
void qu_libvirt_lock_forget(void);

/* qu_libvirt_detect() from /proc/PID alone (no monitor touched): 1, 0 or -errno. */
int qu_libvirt_detect_pid(pid_t pid, struct qu_libvirt *lv);
/* Whether PID is libvirt's, and what its daemon allows: 0 go ahead (not libvirt's, or the
 * daemon is not running, or it was stopped), 1 a dry run while the daemon holds the monitor
 * (rep says what would be done; g->refusal is set when the upgrade itself would be refused:
 * the plan goes on without the monitor, upgrade/inspect-held.h), -EOPNOTSUPP refused (the
 * daemon runs, no restart allowed), other -errno with a message. rep is filled either way. */
int qu_libvirt_gate_open(pid_t pid, int dry_run, int restart_ok, int remote, uint64_t deadline_us,
			 struct qu_libvirt_gate *g, struct qu_report_libvirt *rep);
/* After the upgrade: committed (the new QEMU new_pid runs the guest) rewrites pid=; the daemon
 * starts again if the gate stopped it. 0, or -errno with a message (also in rep->error). */
int qu_libvirt_gate_close(struct qu_libvirt_gate *g, pid_t old_pid, pid_t new_pid, int committed,
			  struct qu_report_libvirt *rep);

#endif
