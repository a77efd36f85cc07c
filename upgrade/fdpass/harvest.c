#include "upgrade/fdpass/harvest.h"
#include "upgrade/fdpass/kinds.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/tapsteer.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void qu_harvest_init(struct qu_harvest *h)
{
	for (size_t i = 0; i < QU_MAX_CARRIED; i++) {
		h->local[i] = -1;
		h->tap_steer[i] = -1;
		h->tap_attached[i] = 0;
	}
	h->nrelays = 0;
}

int qu_harvest(struct qu_harvest *h, const struct qu_carried *fds, size_t n, pid_t pid, int pidfd,
	       const struct qu_context *ctx)
{
	for (size_t i = 0; i < n; i++) {
		struct qu_take_from from = { .pid = pid, .pidfd = pidfd, .ctx = ctx };
		int fd = qu_fd_take(&fds[i], &from);
		if (from.relay_go >= 0)
			h->relay_go[h->nrelays++] = from.relay_go;
		if (fd < 0)
			return fd;
		h->local[i] = fd;
	}
	return 0;
}

/* A new QEMU that opens a tap resets its vnet header size (and offloads) while the old QEMU
 * still runs the guest on it: frames would be read with the wrong header until the state is
 * loaded. The header size is the tap device's, so it is read before and put back at once.
 * A multiqueue tap's queue that the guest does not use is detached in the kernel, but a
 * starting QEMU believes every queue attached and aborts when detaching one fails: such
 * queues are attached again just before it starts, with the tap steered to a queue the
 * guest reads until the new QEMU has detached them again (upgrade/fdpass/tapsteer.h). */
/* One journal entry: the queue's numbers and its tap's name (what settling checks). */
static void entry(const struct qu_harvest *h, const struct qu_carried *fds, size_t i, int *old_fds, int *new_fds,
		  char (*names)[IFNAMSIZ], size_t k)
{
	old_fds[k] = fds[i].old_fd;
	new_fds[k] = fds[i].target;
	if (qu_tap_name(h->local[i], names[k]) < 0)
		names[k][0] = '\0';
}

size_t qu_tap_unused_queues(const struct qu_harvest *h, const struct qu_carried *fds, size_t n, int *old_fds,
			    int *new_fds, char (*names)[IFNAMSIZ], size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k < max; i++)
		if (fds[i].kind == QU_FD_TAP && h->local[i] >= 0 && qu_tap_queue_attached(h->local[i]) == 0)
			entry(h, fds, i, old_fds, new_fds, names, k++);
	return k;
}

int qu_tap_prepare(struct qu_harvest *h, const struct qu_carried *fds, size_t n, int may_steer)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i].kind != QU_FD_TAP || h->local[i] < 0)
			continue;
		if (ioctl(h->local[i], TUNGETVNETHDRSZ, &h->tap_hdr[i]) < 0)
			h->tap_hdr[i] = -1;
		if (qu_tap_queue_attached(h->local[i]) != 0)
			continue;
		int r = -EPERM;
		if (may_steer && (r = qu_tap_steer_first(h->local[i])) == 0 &&
		    (h->tap_steer[i] = fcntl(h->local[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			r = -errno;
			qu_tap_steer_clear(h->local[i]); /* no descriptor to remove it through later */
		}
		if (r < 0)
			qu_info("warning: %s: frames the tap steers to its unused queue are lost until the new "
				"QEMU sets its NIC up: %s", fds[i].name,
				may_steer ? strerror(-r) : "the VM steers the tap itself (virtio-net RSS), left as it is");
		/* A queue left detached makes the new QEMU abort as it sets up its NIC (QEMU 7.2), the
		 * guest paused by then: better refused now, before anything started. */
		if ((r = qu_tap_queue_set(h->local[i], 1)) < 0)
			return qu_err(r, "%s: cannot attach the tap queue the guest does not use, which the new QEMU needs "
				      "attached as it starts: %s", fds[i].name, strerror(-r));
		h->tap_attached[i] = 1;
	}
	return 0;
}

size_t qu_tap_attached_queues(const struct qu_harvest *h, const struct qu_carried *fds, size_t n, int *old_fds,
			      int *new_fds, char (*names)[IFNAMSIZ], size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k < max; i++)
		if (h->tap_attached[i])
			entry(h, fds, i, old_fds, new_fds, names, k++);
	return k;
}

void qu_tap_restore(struct qu_harvest *h, const struct qu_carried *fds, size_t n, int nic_set_up)
{
	int still = 0;
	for (size_t i = 0; i < n; i++) {
		if (fds[i].kind != QU_FD_TAP || h->local[i] < 0)
			continue;
		if (h->tap_hdr[i] > 0 && ioctl(h->local[i], TUNSETVNETHDRSZ, &h->tap_hdr[i]) < 0)
			qu_info("warning: %s: cannot restore the vnet header size: %s", fds[i].name,
				strerror(errno));
		if (!h->tap_attached[i] || qu_tap_queue_attached(h->local[i]) != 1)
			continue;
		/* A new QEMU that never set its NIC up leaves the queue attached: the old QEMU
		 * believes it detached, so it is detached again. One that did set it up and left
		 * it attached believes it attached: it stays, steered, until the end. */
		int r = nic_set_up ? 0 : qu_tap_queue_set(h->local[i], 0);
		if (r < 0)
			qu_info("warning: %s: cannot detach the queue again: %s", fds[i].name, strerror(-r));
		if (nic_set_up)
			qu_debug("%s: the new QEMU left the queue attached: the tap stays steered", fds[i].name);
		still |= nic_set_up;
	}
	if (!still)
		qu_tap_steer_release(h);
}

int qu_tap_steered(const struct qu_harvest *h)
{
	for (size_t i = 0; i < QU_MAX_CARRIED; i++)
		if (h->tap_steer[i] >= 0)
			return 1;
	return 0;
}

void qu_tap_steer_release(struct qu_harvest *h)
{
	for (size_t i = 0; i < QU_MAX_CARRIED; i++) {
		if (h->tap_steer[i] < 0)
			continue;
		int r = qu_tap_steer_clear(h->tap_steer[i]);
		if (r < 0)
			qu_info("warning: a tap stays steered to its first queue: %s", strerror(-r));
		qu_close(&h->tap_steer[i]);
	}
}

/* While the new QEMU starts it sets the tap's header size twice (netdev setup, then the
 * NIC's realize); the watcher puts the old size back within a fraction of a millisecond each
 * time. */
static void *tap_watch_loop(void *arg)
{
	struct qu_tap_watch *w = arg;
	struct qu_harvest *h = w->h;
	while (!w->stop) {
		for (size_t i = 0; i < w->n; i++) {
			int cur;
			if (w->fds[i].kind != QU_FD_TAP || h->local[i] < 0 || h->tap_hdr[i] <= 0)
				continue;
			if (ioctl(h->local[i], TUNGETVNETHDRSZ, &cur) == 0 && cur != h->tap_hdr[i])
				ioctl(h->local[i], TUNSETVNETHDRSZ, &h->tap_hdr[i]);
		}
		usleep(200);
	}
	return NULL;
}

/* One thread watches every tap. */
void qu_tap_watch_start(struct qu_tap_watch *w, struct qu_harvest *h, const struct qu_carried *fds, size_t n)
{
	*w = (struct qu_tap_watch){ .h = h, .fds = fds, .n = n };
	int any = 0;
	for (size_t i = 0; i < n; i++)
		any |= fds[i].kind == QU_FD_TAP && h->tap_hdr[i] > 0;
	pthread_t thread;
	if (any && pthread_create(&thread, NULL, tap_watch_loop, w) == 0) {
		w->thread = (unsigned long)thread;
		w->running = 1;
	}
}

void qu_tap_watch_stop(struct qu_tap_watch *w)
{
	if (!w->running)
		return;
	w->stop = 1;
	pthread_join((pthread_t)w->thread, NULL);
	w->running = 0;
}

void qu_harvest_close(struct qu_harvest *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qu_close(&h->local[i]);
}

void qu_harvest_relays_go(struct qu_harvest *h, int go)
{
	for (size_t i = 0; i < h->nrelays; i++) {
		if (go && write(h->relay_go[i], "G", 1) != 1)
			qu_info("warning: a pty relay did not get the go: %s", strerror(errno));
		qu_close(&h->relay_go[i]);
	}
	h->nrelays = 0;
}
