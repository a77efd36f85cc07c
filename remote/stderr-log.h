/* What a QEMU the agent started writes on stderr while it runs (a COLO secondary protects for
 * days): read as it comes, so that the pipe never fills (a full pipe would stop the QEMU in its
 * next write, with its lock held, and the primary's checkpoints with it), and logged, so that a
 * secondary that dies beside its primary has said why. The text is the VM owner's: control
 * characters go, lines are cut, and the log gets a bounded number of lines a minute. */
#ifndef QU_REMOTE_STDERR_LOG_H
#define QU_REMOTE_STDERR_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QU_STDERR_LINE_MAX 240     /* longer lines are logged cut, "..." at the end */
#define QU_STDERR_LINES_PER_MIN 30 /* beyond these, bytes are counted, not logged */

struct qu_stderr_log {
	char line[QU_STDERR_LINE_MAX + 1];
	size_t nline;
	int cut;                     /* the line being read was longer than QU_STDERR_LINE_MAX */
	uint64_t minute_start_us;
	unsigned lines_this_minute;
	unsigned long long dropped;  /* bytes not logged this minute */
};

/* Reads what fd holds now (non-blocking, at most 64 KiB) and logs each whole line as "agent:
 * QEMU PID said: ...". Returns 1 when fd reached its end (the QEMU closed it or exited), else 0. */
int qu_stderr_log_drain(struct qu_stderr_log *s, int fd, pid_t pid);
/* Logs a last line not ended by a newline, and what was dropped. */
void qu_stderr_log_flush(struct qu_stderr_log *s, pid_t pid);

#endif
