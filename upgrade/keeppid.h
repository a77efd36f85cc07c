/* Whether a VM can keep its PID through an upgrade: QEMU's cpr-exec, where the old QEMU saves
 * its device state and execs the new binary in its own process (docs/cpr-exec.md). The
 * decisions are pure functions of what inspect found (unit test: tests/unit/test-keeppid.c);
 * the plan (upgrade/plan.c) adds what only the live process can tell. */
#ifndef QU_KEEPPID_H
#define QU_KEEPPID_H

#include "qemu-integration/argv.h"
#include "qemu-integration/refusals.h"
#include "qemu-integration/vm.h"

#include <sys/types.h>

/* QEMU's first release with migration mode cpr-exec. */
#define QU_CPR_EXEC_MAJOR 10
#define QU_CPR_EXEC_MINOR 2

/* Adds to why every reason this VM cannot keep its PID with the new binary of version
 * target_ver (each says what to do); returns how many it added. */
unsigned qu_keep_pid_blockers(const struct qu_vm *vm, const int target_ver[3], struct qu_refusals *why);

/* 1 when a -sandbox option denies spawning (spawn=deny): QEMU's own seccomp filter then
 * makes the exec fail (EPERM). */
int qu_sandbox_denies_spawn(const struct qu_argv *argv);

/* 1 when descriptor fd of process pid is close-on-exec (it would not reach the new image),
 * 0 when it is not, -errno when it cannot be read. */
int qu_fd_cloexec(pid_t pid, int fd);

#endif
