#include "upgrade/fdpass/harvest.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/ptyrelay.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

void qu_harvest_init(struct qu_harvest *h)
{
	for (size_t i = 0; i < QU_MAX_CARRIED; i++)
		h->local[i] = -1;
	h->nrelays = 0;
}

int qu_harvest(struct qu_harvest *h, const struct qu_carried *fds, size_t n, pid_t pid, int pidfd,
	       const struct qu_context *ctx)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i].kind == QU_FD_RAM && fds[i].old_fd < 0) {
			/* Converted RAM: a fresh memfd the migration fills. */
			h->local[i] = memfd_create("memory-backend-memfd", MFD_CLOEXEC);
			if (h->local[i] < 0 || ftruncate(h->local[i], (off_t)fds[i].size) < 0)
				return qu_err(-errno, "cannot make a %llu-byte memfd for the guest's RAM: %s",
					      fds[i].size, strerror(errno));
			continue;
		}
		if (fds[i].kind == QU_FD_PTY) {
			/* The master goes to a relay; the new QEMU gets a socket to it. */
			int master = qu_pidfd_getfd(pidfd, fds[i].old_fd), sv[2];
			if (master < 0)
				return qu_err(master, "cannot take %s (fd %d) from PID %d: %s", fds[i].name,
					      fds[i].old_fd, (int)pid, strerror(-master));
			int go[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(go, O_CLOEXEC) < 0) {
				int e = errno;
				close(master);
				return qu_err(-e, "socketpair: %s", strerror(e));
			}
			int r = qu_ptyrelay_start(master, sv[0], go[0], ctx);
			close(master);
			close(sv[0]);
			close(go[0]);
			h->relay_go[h->nrelays++] = go[1];
			if (r < 0) {
				close(sv[1]);
				return r;
			}
			h->local[i] = sv[1];
			continue;
		}
		if (fds[i].kind == QU_FD_VHOST) {
			/* The new QEMU becomes its owner (VHOST_SET_OWNER) when it sets the tap up. */
			h->local[i] = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
			if (h->local[i] < 0)
				return qu_err(-errno, "cannot open /dev/vhost-net for %s: %s", fds[i].name, strerror(errno));
			continue;
		}
		if (fds[i].kind == QU_FD_NAMESPACE || fds[i].kind == QU_FD_DIRECTORY) {
			/* By PID: the pin check after the harvest proves they were the old QEMU's. */
			char path[sizeof(fds[i].name) + 32];
			int dir = fds[i].kind == QU_FD_DIRECTORY;
			snprintf(path, sizeof(path), "/proc/%d/%s%s", (int)pid, dir ? "" : "ns/", fds[i].name);
			h->local[i] = open(path, dir ? O_PATH | O_DIRECTORY | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
			if (h->local[i] < 0)
				return qu_err(-errno, "cannot open %s: %s", path, strerror(errno));
			continue;
		}
		h->local[i] = qu_pidfd_getfd(pidfd, fds[i].old_fd);
		if (h->local[i] < 0)
			return qu_err(h->local[i], "cannot take %s (fd %d) from PID %d: %s", fds[i].name,
				      fds[i].old_fd, (int)pid, strerror(-h->local[i]));
	}
	return 0;
}

/* A new QEMU that opens a tap resets its vnet header size (and offloads) while the old QEMU
 * still runs the guest on it: frames would be read with the wrong header until the state is
 * loaded. The header size is the tap device's, so it is read before and put back at once.
 * A multiqueue tap's queue that the guest does not use is detached in the kernel, but a
 * starting QEMU believes every queue attached and aborts when detaching one fails: such
 * queues are attached again just before it starts (it detaches them itself as it sets up
 * the NIC; frames the kernel steers to them meanwhile are lost). */
void qu_tap_headers(struct qu_harvest *h, const struct qu_carried *fds, size_t n, int restore)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i].kind != QU_FD_TAP || h->local[i] < 0)
			continue;
		if (!restore) {
			struct ifreq ifr;
			if (ioctl(h->local[i], TUNGETVNETHDRSZ, &h->tap_hdr[i]) < 0)
				h->tap_hdr[i] = -1;
			memset(&ifr, 0, sizeof(ifr));
			if (ioctl(h->local[i], TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_DETACH_QUEUE)) {
				memset(&ifr, 0, sizeof(ifr));
				ifr.ifr_flags = IFF_ATTACH_QUEUE;
				if (ioctl(h->local[i], TUNSETQUEUE, &ifr) < 0)
					qu_info("warning: %s: cannot attach the queue: %s", fds[i].name,
						strerror(errno));
			}
		} else if (h->tap_hdr[i] > 0 && ioctl(h->local[i], TUNSETVNETHDRSZ, &h->tap_hdr[i]) < 0) {
			qu_info("warning: %s: cannot restore the vnet header size: %s", fds[i].name,
				strerror(errno));
		}
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
