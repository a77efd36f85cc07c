/* Taking the carried descriptors out of the old QEMU (pidfd_getfd), or making them (a memfd
 * for converted RAM, /dev/vhost-net, a socket to a pty relay), before the new QEMU starts;
 * and keeping the taps as the old QEMU has them (vnet header size, queues, steering)
 * while the new one opens them. */
#ifndef QU_HARVEST_H
#define QU_HARVEST_H

#include "upgrade/fdpass/carried.h"

#include <net/if.h>
#include <stddef.h>
#include <sys/types.h>

struct qu_context;

struct qu_harvest {
	int local[QU_MAX_CARRIED];    /* our copy of fds[i], or -1 */
	int tap_hdr[QU_MAX_CARRIED];  /* vnet header size of each tap queue before the new QEMU */
	int relay_go[QU_MAX_CARRIED]; /* per pty relay: a byte at the commit point lets it start */
	int tap_steer[QU_MAX_CARRIED]; /* a tap queue through which the tool steers the tap, or -1 */
	signed char tap_attached[QU_MAX_CARRIED]; /* the tool attached this detached queue */
	size_t nrelays;
};

void qu_harvest_init(struct qu_harvest *h);
/* Fills h->local[i] for each of fds (pid's, through pidfd; namespaces and directories by
 * PID: the caller checks its pin afterwards). Pty relays start as the VM's context ctx. */
int qu_harvest(struct qu_harvest *h, const struct qu_carried *fds, size_t n, pid_t pid, int pidfd,
	       const struct qu_context *ctx);
/* Closes our copies (the new QEMU has its own once it started). */
void qu_harvest_close(struct qu_harvest *h, size_t n);
/* The guest runs on the new QEMU (go): pty relays may read the pty now; otherwise their go
 * pipes close unwritten and they end. */
void qu_harvest_relays_go(struct qu_harvest *h, int go);

/* The tap queues the guest does not use (detached), which qu_tap_prepare will attach: their
 * numbers in the old QEMU and in the new, and their tap's name, at most max. For the journal, before it does. */
size_t qu_tap_unused_queues(const struct qu_harvest *h, const struct qu_carried *fds, size_t n, int *old_fds,
			    int *new_fds, char (*names)[IFNAMSIZ], size_t max);
/* Before the new QEMU starts: remembers each tap's header size, and attaches the queues the
 * guest does not use, steering the tap to its first queue meanwhile unless may_steer is 0
 * (the VM steers it with its own eBPF program, which must stay). 0, or -errno (with a message)
 * when a queue cannot be attached: the caller puts everything back with qu_tap_restore(h, ...,
 * 0) and qu_tap_steer_release. */
int qu_tap_prepare(struct qu_harvest *h, const struct qu_carried *fds, size_t n, int may_steer);
/* The queues qu_tap_prepare did attach (the journal's final list): numbers as above. */
size_t qu_tap_attached_queues(const struct qu_harvest *h, const struct qu_carried *fds, size_t n, int *old_fds,
			      int *new_fds, char (*names)[IFNAMSIZ], size_t max);
/* Once the new QEMU answers its monitor (nic_set_up) or failed to start: the header sizes put
 * back; queues it left attached detached again if it never set its NIC up; the steering
 * removed, unless a queue stays attached (then at qu_tap_steer_release). */
void qu_tap_restore(struct qu_harvest *h, const struct qu_carried *fds, size_t n, int nic_set_up);
/* Whether the tool still steers a tap (qu_tap_restore left it so). */
int qu_tap_steered(const struct qu_harvest *h);
/* The taps steer by flow again (the end of the transaction, whatever its outcome). */
void qu_tap_steer_release(struct qu_harvest *h);

/* While the new QEMU starts, a thread puts each tap's header size back as soon as it
 * changes, until stopped (the new QEMU answers its monitor: it is done with the taps). */
struct qu_tap_watch {
	struct qu_harvest *h;
	const struct qu_carried *fds;
	size_t n;
	unsigned long thread;
	volatile int stop;
	int running;
};
void qu_tap_watch_start(struct qu_tap_watch *w, struct qu_harvest *h, const struct qu_carried *fds, size_t n);
void qu_tap_watch_stop(struct qu_tap_watch *w);

#endif
