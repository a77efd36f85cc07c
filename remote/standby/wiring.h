/* COLO's wiring on both hosts (docs/standby.md, "How a VM is protected"): what the secondary
 * (on the agent's host) and the primary (the VM's own QEMU) get by QMP while protected, under
 * ids of ours ("qu-colo-..."), and how each is removed again. The wires between the hosts are
 * QEMU's own TLS connections (the session's pre-shared key, remote/tls.h), each from the
 * primary to a listener of the secondary's on the address the tool reached: nothing listens
 * on the VM's host, and nothing between the hosts runs in the clear. */
#ifndef QU_STANDBY_WIRING_H
#define QU_STANDBY_WIRING_H

#include <stddef.h>
#include <stdint.h>

struct qu_qmp;

#define QU_COLO_ID_PREFIX "qu-colo-"

/* A QOM or netdev id as the tool sends it (the VM's own, read by query-*): 1 when it is one
 * QEMU takes on a command line and in QMP unchanged (letters, digits, '-', '_', '.'). */
int qu_colo_id_ok(const char *id);

/* The secondary's network side, on its QEMU (started paused, waiting for the migration):
 * two listening chardevs on host, TLS with tls_id (the incoming migration's credentials), a
 * redirector from the primary's mirror into netdev, a redirector from netdev's output to the
 * primary's colo-compare, a rewriter; and the capabilities x-colo and return-path. reply gets
 * mirror=HOST:PORT and compare=HOST:PORT. 0, or -errno with a message. */
int qu_colo_secondary_wire(struct qu_qmp *q, const char *host, const char *netdev, const char *tls_id,
			   uint64_t deadline_us, char *reply, size_t len);

/* After a takeover: the secondary's redirectors, rewriter and listeners removed (its guest's
 * output goes to its own tap alone). Returns how many could not be removed (each logged). */
int qu_colo_secondary_unwire(struct qu_qmp *q, uint64_t deadline_us);

/* The heartbeat timeout (`standby start --heartbeat-timeout`): the secondary takes over after
 * this much silence from the primary's supervisor, which stops its own QEMU after half of it. */
#define QU_COLO_TIMEOUT_DEFAULT_MS 15000u
#define QU_COLO_TIMEOUT_MIN_MS 4000u
/* At most 20 s: the TLS agent's TCP keepalive (remote/tcp/server.c: 10 s idle, 3 probes 5 s
 * apart) ends the session of a host that stopped answering after about 25 s, and a session
 * that ends stops a secondary that has not taken over. With a longer timeout, a cut link
 * would end in no guest anywhere: the primary fenced, the secondary stopped. */
#define QU_COLO_TIMEOUT_MAX_MS 20000u

/* The primary's network side: its tx mirrored to mirror_addr, its rx held by colo-compare
 * until the secondary's twin came from compare_addr (both HOST:PORT, TLS with tls_id), the
 * local pairs between filters and colo-compare socketpairs handed over by getfd (no socket
 * anyone could connect to). 0, or -errno with a message (whatever was added stays: unwire). */
int qu_colo_primary_wire(struct qu_qmp *q, const char *netdev, const char *mirror_addr, const char *compare_addr,
			 const char *tls_id, uint64_t deadline_us);
/* Removes everything qu_colo_primary_wire() may have added, in the order QEMU allows; what
 * is not there is skipped. Returns how many could not be removed (each logged). */
int qu_colo_primary_unwire(struct qu_qmp *q, uint64_t deadline_us);

/* "HOST:PORT" of a listening socket chardev, from query-chardev's filename
 * ("disconnected:tcp:HOST:PORT,server=on"): 0, or -ENOENT. */
int qu_colo_chardev_addr(const char *filename, char *out, size_t len);

#endif
