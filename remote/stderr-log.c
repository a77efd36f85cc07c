#include "remote/stderr-log.h"
#include "upgrade/clock.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define MINUTE_US (60ull * 1000000u)

static void log_line(struct qu_stderr_log *s, pid_t pid)
{
	uint64_t now = qu_now_us();
	if (now - s->minute_start_us >= MINUTE_US) {
		if (s->dropped)
			qu_info("agent: QEMU %d wrote %llu more bytes on stderr in a minute, not logged", (int)pid,
				s->dropped);
		s->minute_start_us = now;
		s->lines_this_minute = 0;
		s->dropped = 0;
	}
	if (s->lines_this_minute < QU_STDERR_LINES_PER_MIN) {
		s->line[s->nline] = '\0';
		qu_info("agent: QEMU %d said: %s%s", (int)pid, s->line, s->cut ? "..." : "");
		s->lines_this_minute++;
	} else {
		s->dropped += s->nline + 1;
	}
	s->nline = 0;
	s->cut = 0;
}

int qu_stderr_log_drain(struct qu_stderr_log *s, int fd, pid_t pid)
{
	char buf[4096];
	if (fd < 0)
		return 1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (int chunks = 0; chunks < 16; chunks++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return 1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : 1;
		for (ssize_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];
			if (c == '\n') {
				log_line(s, pid);
			} else if (c == '\r') {
				continue;
			} else if (s->nline == QU_STDERR_LINE_MAX) {
				s->cut = 1;
			} else {
				/* The VM owner's text: nothing that could forge or hide a log line. */
				s->line[s->nline++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
			}
		}
	}
	return 0;
}

void qu_stderr_log_flush(struct qu_stderr_log *s, pid_t pid)
{
	if (s->nline || s->cut)
		log_line(s, pid);
	if (s->dropped)
		qu_info("agent: QEMU %d wrote %llu more bytes on stderr, not logged", (int)pid, s->dropped);
	s->dropped = 0;
}
