/* Acting as the VM's user where a path is the user's to point anywhere (docs/security.md, one
 * mechanism per job): a child with the user's identity (uid, gid, groups, umask, and
 * no_new_privs) does the one thing and hands the descriptor back with SCM_RIGHTS. The kernel
 * then checks the path and the permissions as for the user: a link or a file the user put
 * there leads only where the user could go, a file made there is the user's and only where
 * the user may make one, and whatever listens on a socket sees the user, never root. */
#ifndef QU_ASUSER_H
#define QU_ASUSER_H

#include "upgrade/context.h"

#include <sys/types.h>

struct qu_ident {
	uid_t uid;
	gid_t gid;
	gid_t groups[QU_CTX_MAX_GROUPS];
	int ngroups;
	mode_t umask;
};

/* The identity a VM's QEMU acts as (its context). */
void qu_ident_of(const struct qu_context *c, struct qu_ident *who);

/* A socket connected to path, close-on-exec, or -errno with a message. */
int qu_connect_as(const struct qu_ident *who, const char *path);
/* open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode) as who: a descriptor or -errno. */
int qu_open_as(const struct qu_ident *who, const char *path, int flags, mode_t mode);
/* A UNIX socket bound at path and listening, as who. */
int qu_listen_as(const struct qu_ident *who, const char *path, int backlog);
/* Removes path (a file, a socket, or an empty directory) as who: 0, or -errno. */
int qu_remove_as(const struct qu_ident *who, const char *path);
/* Runs fn(arg) in a child as who, for a job of several steps on the user's paths: what fn
 * returns (0 or -errno, or -EIO when the child could not become who or died). */
int qu_run_as(const struct qu_ident *who, int (*fn)(void *arg), void *arg);

#endif
