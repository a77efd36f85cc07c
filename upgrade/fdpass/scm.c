#include "upgrade/fdpass/scm.h"
#include "upgrade/io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

union scm_control {
	char buf[CMSG_SPACE(sizeof(int) * QU_SCM_MAX_FDS)];
	struct cmsghdr align;
};
_Static_assert(sizeof(union scm_control) >= CMSG_SPACE(sizeof(int) * QU_SCM_MAX_FDS),
	       "control buffer must hold QU_SCM_MAX_FDS descriptors");

int qu_scm_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union scm_control ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (len == 0 || nfds > QU_SCM_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The descriptors went with the first byte; the rest is plain data. */
	return qu_write_full(sock, (const char *)buf + n, len - (size_t)n) ;
}

static void close_received(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *got = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++)
			close(got[i]);
	}
}

ssize_t qu_scm_recv(int sock, void *buf, size_t len, int *fds, size_t *nfds, size_t max_fds)
{
	union scm_control ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (msg.msg_flags & MSG_CTRUNC) {
		close_received(&msg);
		return -EMSGSIZE;
	}
	size_t total = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			total += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	if (total && (!fds || *nfds + total > max_fds)) {
		close_received(&msg);
		return -EMSGSIZE;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
		*nfds += k;
	}
	return n;
}
