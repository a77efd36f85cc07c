/* The VM's taps (and their vhost-net), found in its command line and its descriptors. */
#ifndef QU_NETDEV_H
#define QU_NETDEV_H

#include "qemu-integration/vm.h"

/* Fills vm->taps from -netdev tap options (QemuOpts or JSON), finding each queue's
 * descriptor in the old QEMU (fd=/fds= numbers, or its tun descriptors by interface name).
 * Both forms are read alike through qemu-integration/option.h. */
int qu_find_taps(struct qu_vm *vm);

/* The descriptor numbers of fd=N or fds=N:M:... into out (at most max): how many, or
 * -EINVAL when text is anything but 1..max plain decimal numbers below 2^20 separated by
 * ':' (QEMU also takes a monitor's fd name there: not a descriptor this tool can find). */
int qu_netdev_fd_list(const char *text, int *out, int max);

#endif
