/* The VM's pty chardevs and connected socket chardevs. */
#ifndef QU_PTYS_H
#define QU_PTYS_H

#include "qemu-integration/vm.h"

#include <stdint.h>

struct qu_qmp;

/* Fills vm->ptys: pty chardevs (their /dev/pts from query-chardev, their master descriptor
 * by the tty-index in /proc/PID/fdinfo) and connected socket chardevs passed as fd=. */
int qu_find_ptys(struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us);

#endif
