/* What the checkpoints cost on the wire: the bytes the secondary has acknowledged on the
 * primary's COLO migration connection. QEMU reports no statistics once migration is in COLO
 * (query-migrate gives the status alone), so the count is the kernel's (TCP's
 * tcpi_bytes_acked: RAM, device state and TLS records alike), asked of the kernel's socket
 * diagnostics (sock_diag, what `ss -ti` reads). Nothing of QEMU's is copied or touched: a
 * descriptor taken out of the VM owner's process and closed again could be a file whose close
 * blocks (FUSE's flush), and the supervisor must never stall (it fences this host). */
#ifndef QU_STANDBY_TRAFFIC_H
#define QU_STANDBY_TRAFFIC_H

#include <linux/inet_diag.h>
#include <sys/types.h>

/* One TCP connection as the kernel names it: its addresses, ports and cookie (which a new
 * connection on the same addresses does not share). */
struct qu_colo_traffic {
	int family;
	struct inet_diag_sockid id;
};

/* Finds QEMU pid's established TCP connection to the migrate URI ("tcp:ADDR:PORT", ADDR an
 * IPv4 address or a bracketed IPv6 one) among the sockets in its descriptor table, in this
 * process's network namespace. 0, -ENOENT when there is none, -EINVAL for a URI of another
 * form, or another -errno. */
int qu_colo_traffic_find(pid_t pid, const char *uri, struct qu_colo_traffic *t);
/* The bytes acknowledged so far on that connection, in *bytes: 0, -ESTALE when it is gone
 * (closed: COLO ended), or another -errno. */
int qu_colo_traffic_bytes(const struct qu_colo_traffic *t, unsigned long long *bytes);

#endif
