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

/* One process, held by a pidfd from before anything about it is read: what is read by its PID
 * afterwards is that process's as long as qu_pin_check() says it still runs (a PID is reused
 * only after its process is gone). */
struct qu_pin {
	pid_t pid;
	int pidfd;
	unsigned long long start; /* /proc/PID/stat start time */
};

/* -ESRCH (with a message) when there is no such process. */
int qu_pin_open(pid_t pid, struct qu_pin *p);
/* 0 while the pinned process runs; -ESRCH (with a message) once it exited, or when its PID
 * now names another process. Called before each step that acts on it by PID. */
int qu_pin_check(const struct qu_pin *p);
void qu_pin_close(struct qu_pin *p);

#endif
