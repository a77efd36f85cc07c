/* The new QEMU's argv[0]: a name, not what runs (the probed file runs by descriptor). */
#ifndef QU_ARGV0_H
#define QU_ARGV0_H

#include "qemu-integration/vm.h"
#include "upgrade/plan.h"

/* After qu_rewrite (which writes the new binary's path): puts the old argv[0] back in p->argv
 * while it names the program that will run. -errno (-ENOMEM) only. */
int qu_plan_argv0(const struct qu_vm *vm, struct qu_plan *p);

#endif
