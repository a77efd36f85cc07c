/* A process's descriptors as /proc/PID/fd showed them once: each one's link target and the
 * inode it names. inspect reads the table once and every user looks it up there, instead of
 * each walking the directory again (one walk per guest RAM mapping made ~1700 system calls
 * of a dry run). A snapshot: descriptors the process opens later are not in it. */
#ifndef QU_FDTABLE_H
#define QU_FDTABLE_H

#include <stddef.h>
#include <sys/types.h>

struct qu_fdent {
	int fd;
	int stat_ok;   /* dev, ino and mode were read (stat of the link's target) */
	dev_t dev;
	ino_t ino;
	mode_t mode;
	char *link;    /* readlink of /proc/PID/fd/N ("" when it could not be read) */
};

struct qu_fdtab {
	pid_t pid;
	size_t n;
	struct qu_fdent *e; /* sorted by fd */
};

/* Reads /proc/PID/fd in one pass (readlink and stat of each entry). A descriptor closed
 * during the walk is left out. 0 or -errno (the table is then empty). */
int qu_fdtab_read(pid_t pid, struct qu_fdtab *t);
void qu_fdtab_free(struct qu_fdtab *t);
/* The entry of fd, or NULL. */
const struct qu_fdent *qu_fdtab_get(const struct qu_fdtab *t, int fd);
/* The link of fd, or NULL when the process had no such descriptor. */
const char *qu_fdtab_link(const struct qu_fdtab *t, int fd);
/* The lowest descriptor whose target is the inode (dev, ino), or -ENOENT. */
int qu_fdtab_by_inode(const struct qu_fdtab *t, dev_t dev, ino_t ino);
/* The lowest descriptor that is socket inode ino ("socket:[ino]"), or -ENOENT. */
int qu_fdtab_by_socket(const struct qu_fdtab *t, unsigned long ino);

#endif
