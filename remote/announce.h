/* After the guest moved to another host, the network must learn where its MAC addresses are
 * now: the new QEMU sends gratuitous ARP/RARP frames from every NIC (QMP announce-self). */
#ifndef QU_REMOTE_ANNOUNCE_H
#define QU_REMOTE_ANNOUNCE_H

#include <stdint.h>

struct qu_qmp;

int qu_announce(struct qu_qmp *q, uint64_t deadline_us);

#endif
