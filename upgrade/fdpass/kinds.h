/* Every kind of descriptor the new QEMU gets, in one table (CRIU's file_desc_ops is the
 * model): its name, what the launcher does with it, how the tool takes its copy before the
 * new QEMU starts, and whether it can be re-created on another host. A new kind is one entry
 * here and its functions, plus, where it is found in a command line, the rewriter's
 * (qemu-integration/rewrite.c: carry()) and, where it can go to another host, the agent's
 * re-creation (remote/recreate.c; tests/unit/test-kinds.c checks the two tables agree). */
#ifndef QU_KINDS_H
#define QU_KINDS_H

#include "upgrade/fdpass/carried.h"

#include <sys/types.h>

/* What the launcher does with a received descriptor of the kind. */
enum qu_fd_use {
	QU_FD_USE_INSTALL,   /* dup2() to its target number in the new QEMU */
	QU_FD_USE_ENTER,     /* a namespace: setns() */
	QU_FD_USE_EXEC,      /* the program: execveat() */
	QU_FD_USE_DIRECTORY, /* root or working directory: chroot() / fchdir() */
};

/* Where a copy is taken from. */
struct qu_take_from {
	pid_t pid;       /* the old QEMU (pinned: the caller checks the pin after the harvest) */
	int pidfd;
	const struct qu_context *ctx; /* its context, for helper processes (pty relays) */
	int relay_go;    /* out: a pty relay's go pipe (the byte at the commit point), or -1 */
};

struct qu_fd_kind_ops {
	const char *name;     /* in reports and dumps of the stream */
	enum qu_fd_use use;
	/* Our copy of c before the new QEMU starts: -errno with a message, else the descriptor.
	 * NULL: pidfd_getfd() of c->old_fd in the old QEMU. Kinds the tool makes itself at
	 * launch (program, control, migration) are never taken. */
	int (*take)(const struct qu_carried *c, struct qu_take_from *from);
	/* NULL when it can follow the VM to another host (the agent re-creates it from its
	 * spec); else why it cannot, said to the operator. */
	const char *not_remote;
	int made_at_launch;   /* made by whoever starts the new QEMU (the tool, or the agent
			       * there), never carried from the old one */
};

/* The entry for kind, or NULL for a kind this version does not know. */
const struct qu_fd_kind_ops *qu_fd_kind(unsigned kind);
/* Its name, "?" when unknown. */
const char *qu_fd_kind_name(unsigned kind);
/* Our copy of c, by its kind's take (or pidfd_getfd): the descriptor, or -errno. */
int qu_fd_take(const struct qu_carried *c, struct qu_take_from *from);

#endif
