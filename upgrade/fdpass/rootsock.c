#include "upgrade/fdpass/rootsock.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int qu_connect_root_socket(const char *path)
{
	struct qu_safe_dir d;
	struct stat st;
	int r = qu_safe_open_dir(path, (uid_t)-1, 0, &d);
	if (r < 0)
		return r;
	int fd = qu_safe_open(&d, O_PATH | O_CLOEXEC);
	qu_safe_close(&d);
	if (fd < 0)
		return qu_err(fd, "%s: %s", path, strerror(-fd));
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != 0) {
		close(fd);
		return qu_err(-EPERM, "%s is not a socket root owns: not connected to as root", path);
	}
	/* Through the descriptor: the entry checked is the one connected to, whatever the
	 * directory's owner renames meanwhile. */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d", fd);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		r = -errno;
	else if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		if (s >= 0)
			close(s);
		return qu_err(r, "cannot connect to %s: %s", path, strerror(-r));
	}
	return s;
}

/* The inode of the socket at the other end of sock (sock_diag, UDIAG_SHOW_PEER): 0 and *peer,
 * or -errno. */
static int peer_inode(int sock, unsigned long *peer)
{
	struct stat st;
	if (fstat(sock, &st) < 0)
		return -errno;
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg = {
		.nlh = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST },
		.req = { .sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_ino = (uint32_t)st.st_ino,
			 .udiag_show = UDIAG_SHOW_PEER, .udiag_cookie = { ~0u, ~0u } },
	};
	struct sockaddr_nl to = { .nl_family = AF_NETLINK };
	int r = -EPROTO;
	char buf[1024] __attribute__((aligned(4)));
	if (sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		r = -errno;
		goto out;
	}
	ssize_t n = recv(nl, buf, sizeof(buf), 0);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (size_t)n) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
		goto out;
	struct unix_diag_msg *m = NLMSG_DATA(h);
	if (m->udiag_ino != (uint32_t)st.st_ino)
		goto out;
	int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
			*peer = *(uint32_t *)RTA_DATA(a);
			r = 0;
			break;
		}
	}
out:
	close(nl);
	return r;
}

int qu_socket_peer_of(int sock, pid_t pid)
{
	unsigned long peer = 0;
	int r = peer_inode(sock, &peer);
	if (r < 0)
		return qu_err(r, "cannot tell whose socket is at the other end (sock_diag): %s", strerror(-r));
	if (qu_proc_fd_by_socket(pid, peer) < 0)
		return qu_err(-EPERM, "the monitor socket's other end is not held by QEMU PID %d: another process "
			      "answers there; not talked to", (int)pid);
	return 0;
}
