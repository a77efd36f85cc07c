/* inspect for a dry run while another program holds the VM's monitor (libvirt's daemon; a
 * QEMU monitor takes one client): the facts QMP would give, read from the command line,
 * /proc/PID and libvirt's status file, so that the plan can still name every other blocker.
 * Changes nothing. */
#ifndef QU_INSPECT_HELD_H
#define QU_INSPECT_HELD_H

#include "qemu-integration/vm.h"
#include "upgrade/libvirt.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fills vm as qu_inspect() would, without a monitor: the version from the old binary (when
 * the file at its path is still the one running), machine type and RAM backends from the
 * command line, KVM from QEMU's descriptors, the run state and block jobs from lv's status
 * file (lv may be NULL). unchecked gets, in words, what could not be checked and who holds
 * the monitor that would tell it ("" when nothing). 0 or -errno with a message. */
int qu_inspect_held(pid_t pid, const struct qu_libvirt *lv, const char *holder, uint64_t deadline_us, struct qu_vm *vm,
		    char *unchecked, size_t len);

#endif
