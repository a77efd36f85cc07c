/* inspect: what a running VM is, read from /proc and its monitor; nothing changed. */
#ifndef QU_INSPECT_H
#define QU_INSPECT_H

#include "qemu-integration/vm.h"

#include <stdint.h>
#include <sys/types.h>

struct qu_qmp;

/* Reads /proc/PID and asks QMP (query commands only). qmp_override: --qmp, or NULL.
 * root_monitor: the monitor is root's socket (a libvirt VM's, upgrade/libvirt.h), connected
 * to as root (upgrade/fdpass/rootsock.h) rather than as the VM's user.
 * On success *qmp is the open monitor connection, kept for the upgrade. */
int qu_inspect(pid_t pid, const char *qmp_override, int root_monitor, uint64_t deadline_us, struct qu_vm *vm,
	       struct qu_qmp **qmp);
/* The part of qu_inspect() that needs no monitor: /proc/PID (pinned first), the listening
 * sockets, taps, the process's context, the monitor's path; anon_bytes. 0 or -errno with a
 * message. */
int qu_inspect_proc(pid_t pid, const char *qmp_override, struct qu_vm *vm);
void qu_vm_free(struct qu_vm *vm);

#endif
