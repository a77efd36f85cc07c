/* Reading a process's descriptors and UNIX sockets from /proc, without touching them. */
#ifndef QU_PROCFD_H
#define QU_PROCFD_H

#include "upgrade/fdpass/fdtable.h"

#include <stddef.h>
#include <sys/types.h>

/* readlink of /proc/PID/REL (e.g. "exe", "cwd", "fd/1") into buf; -errno on failure. */
int qu_proc_readlink(pid_t pid, const char *rel, char *buf, size_t len);
/* readlink of /proc/PID/fd/FD into buf; -errno if the descriptor does not exist. */
int qu_proc_fd_link(pid_t pid, int fd, char *buf, size_t len);
/* The descriptor of pid that is socket inode ino, or -ENOENT: a fresh walk of /proc/PID/fd,
 * for a socket the process may have accepted just now (inspect's users have qu_fdtab). */
int qu_proc_fd_by_socket(pid_t pid, unsigned long ino);

/* In pid's network namespace, the inode of the listening UNIX socket bound to path that pid
 * holds, by its descriptor table fds (another process's socket bound to the same path does
 * not count). */
int qu_proc_unix_listener(pid_t pid, const struct qu_fdtab *fds, const char *path, unsigned long *ino);
/* The path a UNIX socket inode is bound to (empty for unnamed ones). */
int qu_proc_unix_path(pid_t pid, unsigned long ino, char *path, size_t len, int *listening);

/* The process's private memory (RssAnon in /proc/PID/status), bytes; -1 unknown.
 * For a new QEMU while the old one still runs, what the host pays extra. */
long long qu_proc_anon_bytes(pid_t pid);

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the PID, it names
 * one process, never a later one that got the same PID. 0 if the process does not exist. */
unsigned long long qu_proc_starttime(pid_t pid);
/* The parent's PID (0 when unknown). */
pid_t qu_proc_ppid(pid_t pid);
/* The process (pid, start) exists and has not exited (zombies count as exited). */
int qu_proc_alive(pid_t pid, unsigned long long start);
/* Field 3 of /proc/PID/stat (R, S, D, T, t, Z, ...), or 0 when there is no such process. */
char qu_proc_state(pid_t pid);

#endif
