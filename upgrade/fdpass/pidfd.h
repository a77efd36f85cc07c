/* Taking descriptors out of another process with pidfd_getfd(2), and watching it die. */
#ifndef QU_PIDFD_H
#define QU_PIDFD_H

#include <sys/types.h>

/* A pidfd for pid, or -errno. It polls readable when the process exits. */
int qu_pidfd_open(pid_t pid);
/* A close-on-exec copy of the target's descriptor targetfd, or -errno. */
int qu_pidfd_getfd(int pidfd, int targetfd);
int qu_pidfd_kill(int pidfd, int sig);
/* Waits until the process behind pidfd has exited; -ETIMEDOUT at the deadline. */
int qu_pidfd_wait_exit(int pidfd, unsigned long long deadline_us);

#endif
