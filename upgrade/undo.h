/* The steps that settle an upgrade, written once: stopping the new QEMU, undoing what the
 * upgrade did to the old one, retiring the old one, and asking the new one whether it runs
 * the guest. The tool's own failure path, the guardian and `--recover` all use these, with
 * what the journal says (upgrade/settle.c decides which, upgrade/decision.c says when). */
#ifndef QU_UNDO_H
#define QU_UNDO_H

#include "upgrade/decision.h"
#include "upgrade/journal.h"

#include <stddef.h>
#include <stdint.h>

struct qu_qmp;

/* What the caller already holds (the tool: a QEMU monitor serves one client at a time, so
 * it must not be asked to connect again); NULL or -1 where the journal is to be used. */
struct qu_hold {
	struct qu_qmp *old;   /* the old QEMU's monitor (the VM's own path) */
	struct qu_qmp *ctl;   /* the new QEMU's private monitor */
	int pidfd_old, pidfd_new;
};

#define QU_HOLD_NONE ((struct qu_hold){ .pidfd_old = -1, .pidfd_new = -1 })

/* Whether each QEMU still runs: by the held pidfd, else by PID and start time. */
int qu_old_alive(const struct qu_journal *j, const struct qu_hold *h);
int qu_new_alive(const struct qu_journal *j, const struct qu_hold *h);

/* The VM's own monitor, as the VM's user, trying until the deadline (a dying tool may hold
 * it for a moment). With the new QEMU gone, it leads to the old QEMU only. */
int qu_connect_old(const struct qu_journal *j, uint64_t deadline_us, struct qu_qmp **q);

/* The new QEMU, proven: its pidfd says it lives and its private monitor answers. */
enum qu_new_state qu_new_state(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline_us);

/* The paths the new QEMU took over: the pidfile and the sockets it bound anew (-vnc unix:).
 * committed=0: given back to the old QEMU (its pidfile, its sockets' links); committed=1: the
 * spare links kept for that go. */
void qu_paths_settle(const struct qu_journal *j, int committed);

/* SIGKILLs the new QEMU and waits until it is gone (and reaps it when it is our child). */
void qu_stop_new(const struct qu_journal *j, struct qu_hold *h);

/* The undo, in this order: the pidfile put back (it must name the old QEMU before the new
 * one's connections close), the new QEMU stopped (so the stream breaks), the old QEMU's migration cancelled if it runs, its disk mirrors aborted, the channel
 * closed, its migration settings and TLS object as before, and only then, if it ran before
 * the upgrade, `cont`: the guest resumes on a QEMU configured as it was. Never resumes an
 * old QEMU that switched to postcopy. Appends what it did to done ("; "-separated). 0, or
 * -errno when the old QEMU could not be reached or resumed. */
int qu_undo(const struct qu_journal *j, struct qu_hold *h, uint64_t deadline_us, char *done, size_t len);

/* Multiqueue taps (the journal's tap queues): back=1, the queues the tool attached for the new
 * QEMU's start are detached again in the old QEMU; either way the tool's steering goes (taken
 * through the old QEMU's queues, or the new QEMU's with back=0). How many it detached. */
int qu_taps_settle(const struct qu_journal *j, struct qu_hold *h, int back);

/* The new QEMU gets the old one's migration settings back (a later save or migration of the
 * VM must not inherit x-ignore-shared). A failure is a warning: the guest runs. */
void qu_settings_back_on_new(const struct qu_journal *j, struct qu_hold *h);

/* Retires the old QEMU: SIGKILL when its clean exit would unlink paths the new QEMU owns or
 * run a tap downscript (kill_old), SIGTERM otherwise; the paths it would unlink survive it
 * through hard links, and the pidfile names the new QEMU. Moved to another host, the VM
 * leaves nothing here: its paths go. wait_exit 0: a local SIGKILL returns once the signal is
 * sent (the kernel tears the old QEMU's mappings down in its own time, ~80 ms per GiB of
 * guest RAM it mapped: the new QEMU runs the guest already, and nothing here needs that
 * process gone); 1 waits for its exit (a copy, whose freed memory the ledger counts). */
void qu_retire_old(const struct qu_journal *j, struct qu_hold *h, int wait_exit);
/* After the commit: libvirt's status file names the new QEMU (upgrade/libvirt.h; nothing for
 * a VM that is not libvirt's). Part of the retirement; also where the old QEMU is gone. */
void qu_libvirt_committed(const struct qu_journal *j);

#endif
