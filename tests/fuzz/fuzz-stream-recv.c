/* The handover stream from a socket (upgrade/stream.c: qu_stream_recv, with its descriptor
 * handling): the input is written to a socketpair whose write side is
 * then shut, and records are received until an error (EOF: -ECONNRESET).
 * Input: one mode byte, then the bytes the peer sends.
 *   bit 0: put every record's CRC right first
 *   bit 1: unused (it sealed the socket while the shared-key agent existed)
 *   bit 2: a descriptor (/dev/null) rides with the first byte; none may be left open after */
#include "tests/fuzz/fuzz.h"
#include "upgrade/clock.h"

#include <dirent.h>
#include <sys/uio.h>

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		abort();
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	uint8_t mode = data[0], *buf = malloc(size);
	size_t len = size - 1;
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);
	if (mode & 1)
		fuzz_fix_crcs(buf, len);
	int before = (mode & 4) ? open_fds() : 0, s[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0)
		abort();
	if (len) {
		int fd = -1;
		ssize_t n;
		if (mode & 4) {
			fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			struct iovec iov = { .iov_base = buf, .iov_len = len };
			union {
				char b[CMSG_SPACE(sizeof(int))];
				struct cmsghdr align;
			} ctl;
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
					     .msg_controllen = sizeof(ctl.b) };
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
			n = sendmsg(s[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
		} else {
			n = send(s[1], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		if (n != (ssize_t)len)
			abort(); /* 64 KiB always fit in a socketpair's buffer */
	}
	shutdown(s[1], SHUT_WR);

	uint64_t deadline = qu_now_us() + 10000000u;
	for (int i = 0;; i++) {
		struct qu_rec rec;
		int r = qu_stream_recv(s[0], deadline, &rec);
		if (r < 0) {
			FUZZ_CHECK(r != -ETIMEDOUT && r != -EAGAIN);
			FUZZ_CHECK(rec.payload == NULL && rec.fd == -1);
			break;
		}
		FUZZ_CHECK(i < 65536);
		FUZZ_CHECK(qu_stream_validate(&rec) == 0);
		FUZZ_CHECK(rec.payload[rec.len] == '\0');
		FUZZ_CHECK((rec.fd >= 0) == (rec.type == QU_REC_FD && !(rec.flags & QU_REC_FLAG_FD_ELIDED)));
		char line[256];
		qu_rec_describe(&rec, line, sizeof(line));
		qu_rec_free(&rec);
	}
	close(s[0]);
	close(s[1]);
	if (mode & 4)
		FUZZ_CHECK(open_fds() == before); /* every descriptor received was closed or handed out */
	free(buf);
	return 0;
}
