/* tapqueues PID: prints the state of each tap queue that process PID holds, in descriptor
 * order, as "attached" or "detached" words on one line ("none" when it holds no tap). The
 * queue is taken with pidfd_getfd and asked with TUNGETIFF: the kernel shows a queue's
 * detachment nowhere in /proc.
 * tapqueues --steering: prints how many eBPF programs named qu_tapsteer (the tool's tap
 * steering, upgrade/fdpass/tapsteer.c) the kernel holds, machine-wide. */
#include <dirent.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int count_steering(void)
{
	union bpf_attr a;
	unsigned id = 0, n = 0;
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.start_id = id;
		if (syscall(SYS_bpf, BPF_PROG_GET_NEXT_ID, &a, sizeof(a)) < 0)
			break; /* ENOENT: no more */
		id = a.next_id;
		memset(&a, 0, sizeof(a));
		a.prog_id = id;
		int fd = (int)syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, &a, sizeof(a));
		if (fd < 0)
			continue; /* gone meanwhile */
		struct bpf_prog_info info;
		memset(&info, 0, sizeof(info));
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = (unsigned)fd;
		a.info.info_len = sizeof(info);
		a.info.info = (unsigned long)&info;
		if (syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &a, sizeof(a)) == 0 && !strcmp(info.name, "qu_tapsteer"))
			n++;
		close(fd);
	}
	printf("%u\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--steering"))
		return count_steering();
	if (argc != 2) {
		fprintf(stderr, "usage: %s PID | --steering\n", argv[0]);
		return 2;
	}
	int pid = atoi(argv[1]);
	char dir[64], path[512], link[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "tapqueues: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int fds[1024], n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 1024) {
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		ssize_t len = readlink(path, link, sizeof(link) - 1);
		if (len > 0 && (link[len] = 0, !strcmp(link, "/dev/net/tun")))
			fds[n++] = atoi(e->d_name);
	}
	closedir(d);
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		fprintf(stderr, "tapqueues: pidfd_open %d: %s\n", pid, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int fd = (int)syscall(SYS_pidfd_getfd, pidfd, fds[i], 0);
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		if (fd < 0 || ioctl(fd, TUNGETIFF, &ifr) < 0) {
			fprintf(stderr, "tapqueues: descriptor %d of %d: %s\n", fds[i], pid, strerror(errno));
			return 1;
		}
		printf("%s%s", i ? " " : "", ifr.ifr_flags & IFF_DETACH_QUEUE ? "detached" : "attached");
		close(fd);
	}
	printf("%s\n", n ? "" : "none");
	return 0;
}
