/* The guardian: a small process, forked before the upgrade touches anything, that outlives
 * the tool. If the tool ends without releasing it (SIGKILL, a crash), it settles the
 * journal (upgrade/settle.c), so a guest is never left paused or owned by two QEMUs. */
#ifndef QU_GUARDIAN_H
#define QU_GUARDIAN_H

#include <sys/types.h>

struct qu_guardian {
	pid_t pid;
	int link; /* the tool's end: EOF on the guardian's end means the tool is gone */
};

/* lock_fd (the VM's upgrade lock) is held by the guardian too, until it is done. */
int qu_guardian_start(pid_t old_pid, int lock_fd, struct qu_guardian *g);
/* The tool finished (committed and retired, or rolled back): the guardian exits quietly. */
void qu_guardian_release(struct qu_guardian *g);

#endif
