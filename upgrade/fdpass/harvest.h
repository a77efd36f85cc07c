/* Taking the carried descriptors out of the old QEMU (pidfd_getfd), or making them (a memfd
 * for converted RAM, /dev/vhost-net, a socket to a pty relay), before the new QEMU starts;
 * and keeping the taps' vnet header size as the old QEMU has it while the new one opens
 * them. */
#ifndef QU_HARVEST_H
#define QU_HARVEST_H

#include "upgrade/fdpass/carried.h"

#include <stddef.h>
#include <sys/types.h>

struct qu_context;

struct qu_harvest {
	int local[QU_MAX_CARRIED];    /* our copy of fds[i], or -1 */
	int tap_hdr[QU_MAX_CARRIED];  /* vnet header size of each tap queue before the new QEMU */
	int relay_go[QU_MAX_CARRIED]; /* per pty relay: a byte at the commit point lets it start */
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

/* restore=0: remember each tap's header size (and attach detached queues); 1: put it back. */
void qu_tap_headers(struct qu_harvest *h, const struct qu_carried *fds, size_t n, int restore);

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
