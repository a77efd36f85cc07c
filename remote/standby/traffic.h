/* What the checkpoints cost on the wire: the bytes the secondary has acknowledged on the
 * primary's COLO migration connection. QEMU reports no statistics once migration is in COLO
 * (query-migrate gives the status alone), so the count is the kernel's, read from the
 * connection itself (TCP_INFO's tcpi_bytes_acked: RAM, device state and TLS records alike). */
#ifndef QU_STANDBY_TRAFFIC_H
#define QU_STANDBY_TRAFFIC_H

#include <sys/types.h>

/* The descriptor number, in QEMU pid's table, of its TCP connection to the migrate URI
 * ("tcp:ADDR:PORT", ADDR an IPv4 address or a bracketed IPv6 one); -ENOENT when there is
 * none, or another -errno. */
int qu_colo_traffic_find(pid_t pid, int pidfd, const char *uri);
/* The bytes acknowledged so far on descriptor fd of QEMU's, in *bytes: 0, -ESTALE when fd is
 * no longer that connection (QEMU closed it; the number may be reused), or another -errno.
 * The descriptor is copied for the moment of the reading only: a copy kept would keep the
 * connection open after QEMU died, and the secondary must see its stream end to take over
 * (docs/standby.md, "Failover and fencing"). */
int qu_colo_traffic_bytes(int pidfd, int fd, const char *uri, unsigned long long *bytes);

#endif
