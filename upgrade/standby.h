/* What `standby`'s plan and its start share (upgrade/standby.c, upgrade/standby-run.c). */
#ifndef QU_STANDBY_H
#define QU_STANDBY_H

#include <stdio.h>
#include <sys/types.h>

/* The arguments of start, judged before the VM is read: flags, the PID, the interval (0
 * becomes the default), the destination (a hostile URI never reaches ssh). 0, or -1 with
 * errno and a message. */
int qu_standby_check_args(pid_t pid, const char *remote, const char *pki_dir, unsigned *interval_ms, unsigned flags);

/* --recover: each protected VM whose supervisor is gone while syncing or protecting has its
 * primary released (as `standby stop` does) and its state set to stopped; a line each on out.
 * Returns how many, or -1 when one could not be released (its line says why). */
int qu_standby_recover(FILE *out);

/* QU_STANDBY_RENEW (upgrade/standby-renew.c): when the QEMU of *pid took over as a COLO
 * secondary, the guest moves into a new QEMU process here (an in-place upgrade to the binary it
 * runs, its RAM copied once); *pid becomes the new process's, and a line says so on out (not
 * with QU_OUT_JSON). 1 when it moved, 0 when nothing was to do, -errno with a message (the
 * guest then runs on in *pid, as the upgrade's own rollback leaves it). */
int qu_standby_renew(pid_t *pid, unsigned flags, FILE *out);

#endif
