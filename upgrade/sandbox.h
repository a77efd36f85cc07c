/* Least privilege for the tool's own processes (docs/security.md):
 *
 * - qu_sandbox_preauth(): a process that reads bytes from a peer nobody has vouched for yet
 *   (the TLS agent's connection: the handshake, then the relay between TLS and the session)
 *   becomes nobody, with no capabilities and no_new_privs, under a seccomp allow list
 *   (libseccomp) of what reading, writing and allocating memory need; anything else kills it.
 * - qu_privs_drop(): once a VM is inspected, the tool keeps only the capabilities the rest of
 *   an upgrade needs (listed in upgrade/sandbox.c, each with the step that needs it), plus
 *   what the new QEMU must inherit; the rest leave its effective, permitted and inheritable
 *   sets, and its bounding set unless the old QEMU's has them. This narrows what a tool
 *   process taken over by hostile input could do; it does not contain it (a root process that
 *   keeps setuid and sys_admin is still nearly root): the work that reads hostile bytes runs
 *   in processes that are not root at all (probes, the QMP connect, the agent's handshake). */
#ifndef QU_SANDBOX_H
#define QU_SANDBOX_H

#include "upgrade/context.h"

/* -errno (with a message) when the filter cannot be installed: the caller must not go on. */
int qu_sandbox_preauth(void);
/* For the upgrade of a VM whose QEMU runs in ctx. Root only (others have nothing to drop).
 * also_bounding: bounding-set bits kept besides those (libvirt's daemon, stopped for the
 * upgrade and started again by this process as root, gets its permitted set from it). */
int qu_privs_drop(const struct qu_context *ctx, unsigned long long also_bounding);
/* For `check`: whether this kernel and libseccomp can filter (1), and the capabilities an
 * upgrade keeps, as text. */
int qu_sandbox_available(void);
const char *qu_privs_kept_names(void);

#endif
