/* Paths that a VM's user may control, used by root without letting that user send root
 * elsewhere (docs/security.md, "one mechanism per job": files and sockets by path).
 *
 * A path is walked once, from /, one component at a time with openat2(): a symbolic link is
 * followed only where nobody but root could have made it (a link owned by root, in a
 * directory that only root can change); from the first directory that another user can
 * change, every component is opened with RESOLVE_NO_SYMLINKS. The walk yields a descriptor of
 * the directory that holds the last component, and everything done to that component (link,
 * rename, unlink, create, open, bind) is an *at() call on that descriptor and that one name,
 * which never follows a link. A user who swaps a directory for a link to a root directory,
 * before or during the upgrade, gets a refusal, never a file written there. */
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
void qu_safe_close(struct qu_safe_dir *d);

/* Operations on the last component, never following a link. */
int qu_safe_open(const struct qu_safe_dir *d, int flags);       /* an existing entry; O_NOFOLLOW */
int qu_safe_create(const struct qu_safe_dir *d, int flags, mode_t mode); /* O_CREAT|O_EXCL */
int qu_safe_stat(const struct qu_safe_dir *d, const char *name, struct stat *st); /* name NULL: the last */
int qu_safe_link(const struct qu_safe_dir *d, const char *to);   /* hard link d->name to "to" */
int qu_safe_rename(const struct qu_safe_dir *d, const char *from, const char *to);
int qu_safe_unlink(const struct qu_safe_dir *d, const char *name, int dir);
/* Binds the UNIX socket sock at the last component (through /proc/self/fd/N/NAME, so the
 * kernel resolves nothing but that name in that directory). */
int qu_safe_bind(const struct qu_safe_dir *d, int sock);

/* The whole job in one call, for one-shot uses. */
int qu_safe_unlink_path(const char *path, int dir);

#endif
