/* Paths that must outlive the old QEMU: it unlinks its listening sockets' paths and its
 * pidfile when it exits, though the new QEMU holds the same sockets and writes the pidfile.
 * They come from the VM's command line: everything done to them is done as the VM's user
 * (who, upgrade/fdpass/asuser.h), and a path that user cannot change is left alone. */
#ifndef QU_PATHS_H
#define QU_PATHS_H

#include "upgrade/fdpass/asuser.h"

#include <stddef.h>

#define QU_KEEP_SUFFIX ".qemu-upgrade"
#define QU_PIDFILE_ASIDE_SUFFIX ".qemu-upgrade-old"
#define QU_REBOUND_SUFFIX ".qemu-upgrade-old"

/* keep=1: hard-link path to path+suffix; keep=0: rename it back over path. */
void qu_keep_path(const struct qu_ident *who, const char *path, const char *suffix, int keep);
/* The same for each path in a list (empty strings skipped). */
void qu_keep_paths(const struct qu_ident *who, const char *const *paths, size_t n, int keep);
/* The old QEMU holds a lock on its pidfile, so the new QEMU (same -pidfile) could not take
 * it: move the old file aside before the new QEMU starts. */
void qu_pidfile_aside(const struct qu_ident *who, const char *pidfile);
/* After the commit: drop the aside copy. Before it (rollback): put it back. */
void qu_pidfile_settle(const struct qu_ident *who, const char *pidfile, int committed);
/* Sockets the new QEMU binds anew at the same path (-vnc unix:PATH), unlinking the old
 * QEMU's: each old socket gets a hard link beside it before the new QEMU starts. Settled
 * after the commit, the links go; before it (rollback), each goes back over its path, so the
 * old QEMU's socket answers there again instead of the dead new QEMU's. */
void qu_rebound_aside(const struct qu_ident *who, const char *const *paths, size_t n);
void qu_rebound_settle(const struct qu_ident *who, const char *const *paths, size_t n, int committed);
/* A VM that moved to another host leaves nothing here: its sockets' paths and pidfile go. */
void qu_forget_paths(const struct qu_ident *who, const char *const *paths, size_t n);

#endif
