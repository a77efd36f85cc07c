/* The one place for EINTR and short-I/O loops, and for small file reads from /proc. */
#ifndef QU_IO_H
#define QU_IO_H

#include <stddef.h>
#include <sys/types.h>

int qu_write_full(int fd, const void *buf, size_t len);
/* Returns bytes read (< len only at EOF) or -errno. */
ssize_t qu_read_full(int fd, void *buf, size_t len);
/* Reads a whole (small, procfs) file into a NUL-terminated malloc'd buffer; *len excludes the NUL. */
int qu_read_file(const char *path, char **out, size_t *len);
/* Replaces path (in a directory only root writes: the state directory) by a file holding buf,
 * atomically and durably: written to PATH.tmp (made anew, never through a link), synced, and
 * renamed over path. 0 or -errno; nothing is left behind on failure. */
int qu_write_file_atomic(const char *path, const void *buf, size_t len);
/* The same, without fsync: atomic for every reader and against the death of this process
 * (rename replaces the file whole, and the page cache outlives the process), not against the
 * host's crash, after which the file may hold the old contents or nothing. For records that
 * only matter while the processes they describe exist (the upgrade journal: after a host
 * crash no QEMU survives, so there is nothing to settle), where an fsync per write costs more
 * than it protects. 0 or -errno; nothing is left behind on failure. */
int qu_replace_file(const char *path, const void *buf, size_t len);
/* poll() one fd for events until deadline; -ETIMEDOUT when it passes. */
int qu_poll_one(int fd, short events, unsigned long long deadline_us);
void qu_close(int *fd);

/* Cancellation (Ctrl-C, SIGTERM): qu_cancel() is async-signal-safe. While cancellation is
 * enabled (before the commit point) every wait returns -ECANCELED once it was requested. */
void qu_cancel(void);
void qu_cancel_enable(int enabled);
/* -ECANCELED (with a message) if a cancellation is pending and enabled, else 0. */
int qu_cancel_check(void);

#endif
