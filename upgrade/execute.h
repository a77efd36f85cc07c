/* execute: the plan as a transaction. Until the new QEMU runs the guest (the commit point)
 * every failure rolls back: the new QEMU is killed, the old one resumed if it had stopped,
 * and the migration settings put back. After it, the old QEMU is retired. */
#ifndef QU_EXECUTE_H
#define QU_EXECUTE_H

#include "upgrade/plan.h"
#include "upgrade/report.h"
#include "qemu-integration/vm.h"

struct qu_qmp;
struct qu_progress;

/* How the copy path copies (strategy "precopy"). */
struct qu_copy_options {
	unsigned max_downtime_ms;           /* 0: QEMU's default */
	unsigned long long max_bandwidth;   /* bytes/s; 0: unlimited */
	void (*progress)(const struct qu_progress *p, void *arg);
	void *progress_arg;
};

/* old_qmp: the connection inspect opened (stays owned by the caller); lock_fd: the VM's
 * upgrade lock (qu_lock_vm), shared with the guardian. */
int qu_execute(const struct qu_vm *vm, const struct qu_plan *plan, struct qu_qmp *old_qmp, int lock_fd,
	       const struct qu_copy_options *copy, uint64_t deadline_us, struct qu_report *rep);

#endif
