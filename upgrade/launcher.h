/* The destination side of the handover stream: reads what to start (argv, environment,
 * working directory, descriptors at fixed numbers) and starts it, detached, reporting the
 * new PID or why it could not start. The source side is qu_launch_send(). */
#ifndef QU_LAUNCHER_H
#define QU_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QU_LAUNCH_MAX_NS 8

/* The launch protocol's fixed descriptor numbers in the new QEMU: its private monitor, its
 * end of the migration channel, then the carried descriptors. */
#define QU_FD_CTL 3
#define QU_FD_MIG 4
#define QU_FD_FIRST_CARRIED 5

struct qu_launch_fd {
	int fd;          /* in the sender */
	int target;      /* number in the started program */
	uint32_t kind;   /* enum qu_fd_kind */
	const char *name;
	const char *spec;  /* NULL, or "key=value" lines for an agent that re-creates it */
};

struct qu_launch {
	char **argv;
	char **envp;
	const char *cwd;
	const char *context;   /* qu_context_encode() text, or NULL: run as the launcher does */
	const struct qu_launch_fd *fds;
	size_t nfds;
};

/* Source side: writes the whole launch request, HELLO first and EXEC last. sock may be a file
 * (descriptors elided). qu_launch_send_records() writes only what lies between (the remote
 * agent's connection has its HELLO already, and gets more before the EXEC). */
int qu_launch_send(int sock, const struct qu_launch *spec);
int qu_launch_send_records(int sock, const struct qu_launch *spec);
/* Source side: waits for STARTED (the pid) or ERROR (-errno, message set). */
int qu_launch_wait(int sock, uint64_t deadline_us, pid_t *pid);

/* Destination side: serves one launch request on sock; returns 0 once the program runs. */
int qu_launcher_serve(int sock, uint64_t deadline_us);

/* Both sides on this host: forks a launcher on a socketpair, sends spec, waits for the pid.
 * The started program is reparented to this process (a child subreaper), so a rollback can
 * reap it. */
int qu_launch_local(const struct qu_launch *spec, uint64_t deadline_us, pid_t *pid);

#endif
