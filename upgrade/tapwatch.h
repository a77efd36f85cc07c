/* The down scripts of the taps an upgrade carried (docs/proxmox.md, "The tap's down script").
 * QEMU runs a tap's downscript= itself at its exit, but only for a tap it opened by ifname=;
 * after an upgrade the new QEMU holds the tap by fd=, with which QEMU takes no downscript=, so
 * nobody would run it (Proxmox's pve-bridgedown, which also removes the firewall bridge
 * fwbrVMIDiN and its veth pair). After the commit point, one watcher process per such tap does
 * it instead: in the tap's network namespace it waits for the tap to go (RTM_DELLINK), then
 * runs the script with the tap's name, as QEMU's user, as QEMU would have. */
#ifndef QU_TAPWATCH_H
#define QU_TAPWATCH_H

#include "qemu-integration/vm.h"

#include <limits.h>
#include <stddef.h>

/* QEMU's default when a tap opened by name has no downscript= (Debian's sysconfdir). */
#define QU_TAPWATCH_DEFAULT_SCRIPT "/etc/qemu-ifdown"
#define QU_TAPWATCH_NONE INT_MIN
/* The script is killed after this long. */
#define QU_TAPWATCH_SCRIPT_TIMEOUT_S 60

/* The down script QEMU would run at its exit for tap t of vm: 1 with its path in script, 0
 * when none would run (a tap QEMU was given by fd=, downscript=no or empty). */
int qu_tapwatch_script(const struct qu_vm *vm, const struct qu_tap *t, char *script, size_t len);
/* The watcher's lock file, which it holds (flock) while it lives: one watcher per tap.
 * <state dir>/tapwatch-NETNSINODE-IFINDEX.lock */
void qu_tapwatch_lock_path(unsigned long long netns_ino, int ifindex, char *buf, size_t len);
/* After the commit point, in two steps, so that the old QEMU (which may still read packets
 * off the taps it shares with the new one while it lives) is retired without waiting for the
 * watchers: first our copies of the taps whose down script QEMU would have run, from the
 * process behind pidfd (the old QEMU, before it is retired; for cpr-exec, the same process),
 * into fds (-errno where it could not be taken, QU_TAPWATCH_NONE for the others); */
void qu_tapwatch_take(const struct qu_vm *vm, int pidfd, int fds[QU_MAX_NETDEVS]);
/* then a watcher for each, which gets the copy (ours is closed). Never fails the upgrade:
 * what was started and what was skipped, and why, goes into out (for the report). Returns how
 * many watchers it started. */
int qu_tapwatch_start(const struct qu_vm *vm, int fds[QU_MAX_NETDEVS], pid_t new_pid, char *out, size_t len);

#endif
