#include "upgrade/fdpass/tapsteer.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/log.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The program is two instructions (return 0: the tap's queue index 0), loaded by bpf(2)
 * directly; a loader library would add an ELF object and a dependency for nothing. */
static int load_return_zero(void)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (unsigned long)prog;
	attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
	attr.license = (unsigned long)"GPL";
	/* Named, so that what is loaded can be told apart (tests/helpers/tapqueues --steering). */
	memcpy(attr.prog_name, "qu_tapsteer", sizeof("qu_tapsteer"));
	int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

int qu_tap_steer_first(int fd)
{
	int prog = load_return_zero();
	if (prog < 0)
		return prog;
	/* The tap holds its own reference to the program from here on. */
	int r = ioctl(fd, TUNSETSTEERINGEBPF, &prog) < 0 ? -errno : 0;
	close(prog);
	return r;
}

int qu_tap_steer_clear(int fd)
{
	int none = -1;
	return ioctl(fd, TUNSETSTEERINGEBPF, &none) < 0 ? -errno : 0;
}

int qu_tap_queue_attached(int fd)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return -errno;
	return !(ifr.ifr_flags & IFF_DETACH_QUEUE);
}

int qu_tap_name(int fd, char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return -errno;
	memcpy(name, ifr.ifr_name, IFNAMSIZ);
	name[IFNAMSIZ - 1] = '\0';
	return 0;
}

int qu_tap_vnet_hdr(int fd)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return -errno;
	return !!(ifr.ifr_flags & IFF_VNET_HDR);
}

int qu_tap_queue_set(int fd, int attach)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	return ioctl(fd, TUNSETQUEUE, &ifr) < 0 ? -errno : 0;
}

/* Still a queue of the multiqueue tap the journal names: the number could have been reused
 * (netdev_del, netdev_add) by the time --recover runs. */
static int same_tap(int fd, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	return ioctl(fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_MULTI_QUEUE) &&
	       !strncmp(ifr.ifr_name, name, IFNAMSIZ);
}

int qu_tap_settle_queues(int pidfd, const int *fds, const char (*names)[IFNAMSIZ], size_t n, int detach, int unsteer)
{
	int detached = 0;
	for (size_t i = 0; i < n; i++) {
		int fd = qu_pidfd_getfd(pidfd, fds[i]);
		if (fd < 0) {
			qu_info("warning: cannot take tap queue %d to settle it: %s", fds[i], strerror(-fd));
			continue;
		}
		if (!same_tap(fd, names[i])) {
			qu_info("warning: descriptor %d is no longer a queue of tap %s: left alone", fds[i], names[i]);
			close(fd);
			continue;
		}
		if (detach && qu_tap_queue_attached(fd) == 1) {
			int r = qu_tap_queue_set(fd, 0);
			if (r < 0)
				qu_info("warning: tap queue %d stays attached: %s", fds[i], strerror(-r));
			else
				detached++;
		}
		if (unsteer) {
			int r = qu_tap_steer_clear(fd);
			if (r < 0)
				qu_info("warning: a tap stays steered to its first queue: %s", strerror(-r));
		}
		close(fd);
	}
	return detached;
}
