/* Finding each shared guest RAM backend's descriptor in the old QEMU, through /proc/PID/maps. */
#ifndef QU_RAM_H
#define QU_RAM_H

#include "qemu-integration/vm.h"

/* The name QEMU gives every memfd it makes for memory-backend-memfd (not the object id). */
#define QU_MEMFD_BACKEND_NAME "/memfd:memory-backend-memfd"

/* Sets old_fd and backing of every shared backend in vm->ram. -ENOENT with a message when
 * a backend's descriptor cannot be found or the match is ambiguous. */
int qu_ram_find_fds(struct qu_vm *vm);

#endif
