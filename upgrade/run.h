/* Running a program for a VM (a probe, qemu-img, systemctl) or in its place (the launcher):
 * the one place that does it, as the toolbox's, below what knows QEMU. */
#ifndef QU_RUN_H
#define QU_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QU_NOBODY 65534

/* Runs a program and collects up to len-1 bytes of its stdout+stderr: exe_fd (an O_PATH
 * descriptor, executed) or, when it is -1, path; as uid:gid without supplementary groups
 * ((uid_t)-1: as we are), with no_new_privs and the fixed environment below. Returns the exit
 * status (0-255) or -errno. */
int qu_run_capture(const char *path, int exe_fd, char *const *argv, uid_t uid, gid_t gid, uint64_t deadline_us,
		   char *out, size_t len);
/* PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, LC_ALL=C: all that a
 * program we run for a VM gets. */
extern char *const qu_clean_env[];
/* execveat(fd, "", ...): returns only on failure (-errno). An interpreted file (#!) needs its
 * descriptor open in the interpreter (it reads /dev/fd/N), so it is retried without
 * close-on-exec; a binary leaves nothing behind. */
int qu_exec_fd(int fd, char *const *argv, char *const *envp);
/* How a process ended, for a log line: "exit 1" or "signal 6 (SIGABRT)". */
void qu_describe_status(int status, char *out, size_t len);

#endif
