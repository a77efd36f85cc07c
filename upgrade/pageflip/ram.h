/* Finding each shared guest RAM backend's descriptor in the old QEMU, through /proc/PID/maps. */
#ifndef QU_RAM_H
#define QU_RAM_H

#include "qemu-integration/vm.h"

/* The name QEMU gives every memfd it makes for memory-backend-memfd (not the object id). */
#define QU_MEMFD_BACKEND_NAME "/memfd:memory-backend-memfd"

/* Sets old_fd and backing of every shared backend in vm->ram (for a mem-path directory, the
 * unlinked file QEMU made in it), and every backend's page_size. -ENOENT with a message when
 * a backend's descriptor cannot be found or the match is ambiguous. */
int qu_ram_find_fds(struct qu_vm *vm);

/* Whether a path in /proc/PID/maps is the unlinked file QEMU made for backend id in
 * mem-path directory dir: "DIR/qemu_back_mem.ID.XXXXXX (deleted)". */
int qu_ram_dir_file(const char *mapped, const char *dir, const char *id);

/* The default huge page size from /proc/meminfo's text (Hugepagesize:), in bytes; 0 if absent. */
uint64_t qu_ram_default_hugepage(const char *meminfo);

#endif
