/* The VM's monitors and listening sockets, found in its command line. */
#ifndef QU_MONITORS_H
#define QU_MONITORS_H

#include "qemu-integration/vm.h"

#include <stddef.h>

/* Finds the QMP socket path in the command line (-qmp unix:..., -chardev + -mon). */
int qu_find_qmp_path(const struct qu_vm *vm, char *path, size_t len);
/* Fills vm->lis from -chardev socket servers and -qmp/-monitor unix:...,server options. */
int qu_find_listeners(struct qu_vm *vm);
/* Fills vm->rebound: the paths of -vnc unix:PATH listeners, which QEMU cannot take as a
 * descriptor, so the new QEMU unlinks the path and binds it anew (Proxmox gives every VM
 * one: /var/run/qemu-server/VMID.vnc). A path too long for a socket is left out. */
int qu_find_rebound(struct qu_vm *vm);

#endif
