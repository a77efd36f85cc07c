/* Whether anyone but root could have changed what a path leads to (docs/security.md: the job
 * "decide whether a program may run"; what is done to a VM's own paths is done as its user,
 * upgrade/fdpass/asuser.h).
 *
 * A path is walked once, from /, one component at a time with openat2(): a symbolic link is
 * followed only where nobody but root could have made it (a link owned by root, in a
 * directory that only root can change); from the first directory that another user can
 * change, every component is opened with RESOLVE_NO_SYMLINKS. The walk yields a descriptor of
 * the directory that holds the last component, whether every directory on the way is root's
 * alone (trusted), and if not, the first that is not (doubt). */
#ifndef QU_SAFEPATH_H
#define QU_SAFEPATH_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define QU_SAFE_NAME_MAX 256

struct qu_safe_dir {
	int fd;                       /* O_PATH descriptor of the directory */
	char name[QU_SAFE_NAME_MAX];  /* the path's last component */
	int trusted;                  /* the directory and all above it are root's (or the allowed
				       * user's) and writable by nobody else */
	int sticky;                   /* the directory is sticky (others may create entries) */
	char doubt[160];              /* when not trusted: the first directory that is not, and why */
};

/* Walks to the directory of path's last component. allowed_uid: another owner besides root
 * whose directories count as trusted ((uid_t)-1: none). follow_last: when the last component
 * is a link, follow it under the same rule (for a program to run). -errno with a message
 * naming the component and why. */
int qu_safe_open_dir(const char *path, uid_t allowed_uid, int follow_last, struct qu_safe_dir *d);
/* The same, and where the directory really is: its path from / once the links followed are
 * resolved (no '.', '..' or link in it), into real. */
int qu_safe_open_dir_real(const char *path, uid_t allowed_uid, int follow_last, struct qu_safe_dir *d, char *real,
			  size_t len);
void qu_safe_close(struct qu_safe_dir *d);

/* Opens the last component (an existing entry), never through a link: O_NOFOLLOW. */
int qu_safe_open(const struct qu_safe_dir *d, int flags);

#endif
