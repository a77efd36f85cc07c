/* The VM's taps (and their vhost-net), found in its command line and its descriptors. */
#ifndef QU_NETDEV_H
#define QU_NETDEV_H

#include "qemu-integration/vm.h"

#include <json-c/json.h>

/* Fills vm->taps from -netdev tap options (QemuOpts or JSON), finding each queue's
 * descriptor in the old QEMU (fd=/fds= numbers, or its tun descriptors by interface name). */
int qu_find_taps(struct qu_vm *vm);

/* A -netdev value in either of QEMU's forms (QemuOpts, its type implied as in "tap,..." or
 * given as "type=tap,..."; or JSON) as one JSON object of its options, so that whoever reads
 * it sees the same options: QemuOpts values are strings, a bare key is "on", the last of a
 * repeated key wins (as in QEMU). NULL: not an object, or no memory. */
json_object *qu_netdev_parse(const char *val);
/* An option as text (a JSON number or boolean as json-c writes it: 25, true); NULL: absent. */
const char *qu_netdev_get(json_object *o, const char *key);
/* on/yes/true/y, as QEMU's boolean options (a JSON true reads "true"). */
int qu_netdev_true(json_object *o, const char *key);
/* The descriptor numbers of fd=N or fds=N:M:... into out (at most max): how many, or
 * -EINVAL when text is anything but 1..max plain decimal numbers below 2^20 separated by
 * ':' (QEMU also takes a monitor's fd name there: not a descriptor this tool can find). */
int qu_netdev_fd_list(const char *text, int *out, int max);

#endif
