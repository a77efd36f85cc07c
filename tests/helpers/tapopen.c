/* tapopen IFNAME FD PROGRAM [ARGS...]: opens the tap device IFNAME (with a vnet header, as
 * libvirt does), puts it at descriptor FD and executes PROGRAM: the tests' stand-in for a
 * management daemon that hands QEMU `-netdev tap,fd=FD`. Creates the device if needed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s IFNAME FD PROGRAM [ARGS...]\n", argv[0]);
		return 2;
	}
	int fd = open("/dev/net/tun", O_RDWR);
	if (fd < 0) {
		perror("tapopen: /dev/net/tun");
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "tapopen: TUNSETIFF %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int target = atoi(argv[2]);
	if (fd != target && (dup2(fd, target) < 0 || close(fd) < 0)) {
		perror("tapopen: dup2");
		return 1;
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "tapopen: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
