/* The upgrade's journal: what has been done so far, written durably before each step under
 * the state directory (/run/qemu-upgrade, or $QEMU_UPGRADE_STATE_DIR), so that a guardian or
 * `--recover` can finish or undo an upgrade whose tool died. One file per VM:
 * <dir>/<old-pid>.journal, next to <old-pid>.lock (one upgrade per VM at a time) and
 * <old-pid>.ctl (the new QEMU's private monitor). */
#ifndef QU_JOURNAL_H
#define QU_JOURNAL_H

#include "qemu-integration/migration.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/carried.h"
#include "upgrade/statedir.h"
#include "qemu-integration/vm.h"

#include <limits.h>
#include <net/if.h>
#include <stdint.h>
#include <sys/types.h>

enum qu_phase {
	QU_PH_PLANNED = 1,          /* nothing touched yet */
	QU_PH_TARGET_STARTING,      /* pidfile moved aside, new QEMU being started */
	QU_PH_TARGET_STARTED,       /* new QEMU runs, paused, waiting for the stream */
	QU_PH_MIGRATING,            /* old QEMU's migration settings changed, migrate issued */
	QU_PH_POSTCOPY,             /* postcopy switch asked for: once the old QEMU reports
				     * postcopy-active the guest can only move forward */
	QU_PH_SOURCE_COMPLETED,     /* old QEMU sent everything and is paused (postmigrate) */
	QU_PH_RESUMING,             /* cont sent to the new QEMU: the commit point */
	QU_PH_COMMITTED,            /* the new QEMU runs the guest */
	QU_PH_RETIRED,              /* old QEMU gone: nothing left to do */
	QU_PH_ROLLED_BACK,          /* undone: the old QEMU runs the guest */
};

/* As many tap queues as an upgrade carries descriptors. */
#define QU_JOURNAL_MAX_TAPQ QU_MAX_CARRIED

struct qu_journal {
	enum qu_phase phase;
	pid_t tool_pid;
	pid_t old_pid, new_pid;
	unsigned long long old_start, new_start; /* /proc/PID/stat starttime: PIDs get reused */
	int was_running;
	int kill_old;   /* retire the old QEMU with SIGKILL: its exit would run a tap downscript */
	int postcopy;   /* RAM moves by postcopy: the old QEMU may go only once it completed */
	int postcopy_asked; /* migrate-start-postcopy was accepted: from here, forward only */
	char remote[256];  /* --remote: the other host; new_pid is 0 (its PID is not ours), and
			    * once phase reaches resuming the old QEMU is never resumed */
	int mirrors;       /* disk mirror jobs to the other host may run in the old QEMU */
	int tls;           /* the old QEMU may hold our TLS credentials object */
	int qmp_root;      /* ... or as root, checked (libvirt's monitor, upgrade/fdpass/rootsock.h) */
	char qmp[QU_SUN_PATH_MAX]; /* the old QEMU's monitor, connected to as the VM's user: */
	struct qu_ident vm_user;
	char ctl[QU_SUN_PATH_MAX];
	char pidfile[PATH_MAX];
	char listeners[QU_MAX_LISTENERS][QU_SUN_PATH_MAX];
	size_t nlisteners;
	char rebound[QU_MAX_REBOUND][QU_SUN_PATH_MAX]; /* vm->rebound: kept aside for a rollback */
	size_t nrebound;
	/* cpr-exec (--keep-pid): old_pid is the only process; from QU_PH_MIGRATING on it may be the
	 * new image (same PID and start time), waiting for the state saved in
	 * <state dir>/<old pid>.cprstate (upgrade/pageflip/cprexec.c settles it). */
	int cpr_exec;
	int cpr_fdset;                         /* the descriptor set holding it in the old image; -1 */
	int caps_saved;                        /* old_settings holds the old QEMU's values */
	/* Multiqueue taps: the queues the guest did not use, attached for the new QEMU's start
	 * (by their number in the old QEMU and in the new), and whether the tool steers the taps
	 * meanwhile (upgrade/fdpass/tapsteer.h). A rollback detaches them again; either way the
	 * steering goes. */
	int tapq_old[QU_JOURNAL_MAX_TAPQ], tapq_new[QU_JOURNAL_MAX_TAPQ];
	char tapq_name[QU_JOURNAL_MAX_TAPQ][IFNAMSIZ]; /* its tap, which the number must still be */
	size_t ntapq;
	int tap_steered;
	struct qu_mig_settings old_settings;
};

const char *qu_phase_name(enum qu_phase phase);

/* Takes the per-VM lock (non-blocking): -EBUSY when another upgrade holds it. Returns the fd. */
int qu_lock_vm(pid_t pid);
/* How long --recover waits for a VM's lock held by a running upgrade. */
#define QU_RECOVER_WAIT_MS 30000u
/* The same, waiting up to wait_ms for a holder to let go (--recover: a transaction may still
 * be running in another tool). -EBUSY with a message naming the process that holds it (from
 * /proc/locks; *holder 0 when it cannot be told) and what to do. Returns the fd. */
int qu_lock_vm_wait(pid_t pid, unsigned wait_ms, pid_t *holder);
/* The process holding an flock on the file at path (/proc/locks), 0 when none is listed. */
pid_t qu_flock_holder(const char *path);
/* Writes the journal durably (temporary file, fsync, rename, fsync of the directory). */
int qu_journal_write(const struct qu_journal *j);
int qu_journal_read(const char *path, struct qu_journal *j);
void qu_journal_remove(pid_t old_pid);

#endif
