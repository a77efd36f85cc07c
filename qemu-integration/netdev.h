/* The VM's taps (and their vhost-net), found in its command line and its descriptors. */
#ifndef QU_NETDEV_H
#define QU_NETDEV_H

#include "qemu-integration/vm.h"

/* Fills vm->taps from -netdev tap options (QemuOpts or JSON), finding each queue's
 * descriptor in the old QEMU (fd=/fds= numbers, or its tun descriptors by interface name). */
int qu_find_taps(struct qu_vm *vm);

#endif
