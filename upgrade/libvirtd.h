/* libvirt's daemon (libvirtd, or the modular virtqemud): found by its PID file, stopped for
 * an upgrade of one of its VMs (it holds their monitors), and started again, always. Its
 * VMs keep running while it is stopped; on start it reconnects to them from its status files
 * (docs/libvirt.md). The restart is journaled (<state dir>/libvirtd.restart) before the stop,
 * so that `qemu-upgrade --recover` starts the daemon if the tool died with it stopped. */
#ifndef QU_LIBVIRTD_H
#define QU_LIBVIRTD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QU_LIBVIRTD_ARGS 32
#define QU_LIBVIRTD_ARG_MAX 256

struct qu_libvirtd {
	char name[16];           /* "libvirtd" or "virtqemud" */
	char pidfile[256];
	pid_t pid;
	unsigned long long start; /* its start time: the PID is not reused behind our back */
	unsigned long long cap_bnd; /* its bounding set: what it gets back when started again */
	char exe[PATH_MAX];      /* its binary (root's, in root's directories) */
	char unit[256];          /* under systemd: its service; "" otherwise */
	int argc;                /* its command line, to run it again outside systemd */
	char argv[QU_LIBVIRTD_ARGS][QU_LIBVIRTD_ARG_MAX];
	int stopped;             /* stopped by us: to be started again */
	pid_t stopper;           /* the process that stopped it (journaled): an --all batch, or one tool */
};

/* The running daemon: 1 (d filled), 0 when none runs, -errno with a message when a PID file
 * names a process that cannot be trusted to be root's daemon. */
int qu_libvirtd_find(struct qu_libvirtd *d);
/* Journals the restart, then stops the daemon (systemctl stop under systemd, else SIGTERM),
 * and waits for its exit until deadline_us. 0, or -errno with a message (it may still run). */
int qu_libvirtd_stop(struct qu_libvirtd *d, uint64_t deadline_us);
/* Starts it again as it was started (systemctl start, or its own command line as root with a
 * clean environment), waits until its PID file names a live daemon, and drops the journal.
 * 0, or -errno with a message (the journal stays for --recover). */
int qu_libvirtd_start(struct qu_libvirtd *d, uint64_t deadline_us);
/* --recover: a restart journaled by a tool that died: starts the daemon if it is not running.
 * 1 started (what says so), 0 nothing to do, -errno with a message. */
int qu_libvirtd_recover(char *what, size_t len);
/* The same for a tool's guardian, once it has settled the upgrade of a tool that died: only a
 * restart that tool journaled (an --all batch's belongs to the batch, which starts the daemon
 * after its last VM). 1 started, 0 not that tool's or none, -errno with a message. */
int qu_libvirtd_recover_for(pid_t stopper, char *what, size_t len);
/* Whether a restart is journaled at all (nothing else is touched to tell). */
int qu_libvirtd_restart_journaled(void);

#endif
