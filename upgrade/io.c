#include "upgrade/io.h"
#include "upgrade/clock.h"
#include "upgrade/log.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int qu_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	int is_socket = 1;
	while (len) {
		/* send(MSG_NOSIGNAL): a peer that died must be an error, not a SIGPIPE that kills
		 * the tool in the middle of an upgrade. */
		ssize_t n = is_socket ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
		if (n < 0 && errno == ENOTSOCK && is_socket) {
			is_socket = 0;
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t qu_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int qu_read_file(const char *path, char **out, size_t *len)
{
	size_t cap = 4096, used = 0;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		char *nb = realloc(buf, cap + 1);
		if (!nb) {
			free(buf);
			close(fd);
			return -ENOMEM;
		}
		buf = nb;
		ssize_t n = qu_read_full(fd, buf + used, cap - used);
		if (n < 0) {
			free(buf);
			close(fd);
			return (int)n;
		}
		used += (size_t)n;
		if (used < cap)
			break;
		cap *= 2;
	}
	close(fd);
	buf[used] = '\0';
	*out = buf;
	if (len)
		*len = used;
	return 0;
}

static volatile sig_atomic_t cancel_requested;
static volatile sig_atomic_t cancel_enabled;

void qu_cancel(void) { cancel_requested = 1; }
void qu_cancel_enable(int enabled) { cancel_enabled = enabled; }

int qu_cancel_check(void)
{
	if (cancel_requested && cancel_enabled)
		return qu_err(-ECANCELED, "cancelled by a signal");
	return 0;
}

int qu_poll_one(int fd, short events, unsigned long long deadline_us)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		int c = qu_cancel_check();
		if (c < 0)
			return c;
		int r = poll(&p, 1, qu_ms_left(deadline_us));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		return p.revents;
	}
}

void qu_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int write_and_rename(const char *path, const void *buf, size_t len, int durable)
{
	char tmp[PATH_MAX + 8];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp); /* one an earlier, interrupted write left */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = qu_write_full(fd, buf, len);
	if (r == 0 && durable && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int qu_write_file_atomic(const char *path, const void *buf, size_t len)
{
	return write_and_rename(path, buf, len, 1);
}

int qu_replace_file(const char *path, const void *buf, size_t len)
{
	return write_and_rename(path, buf, len, 0);
}
