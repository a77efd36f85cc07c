#include "upgrade/log.h"
#include "upgrade/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static int log_level = QU_LOG_INFO;
static __thread char err_msg[2048];
static __thread int err_errno;

void qu_log_set_level(int level) { log_level = level; }
int qu_log_level(void) { return log_level; }

/* Not on a terminal (a package hook, a service): the lines go to syslog (the journal) too. */
static int to_syslog(void)
{
	static int state = -1;
	if (state < 0) {
		state = !isatty(STDERR_FILENO);
		if (state)
			openlog("qemu-upgrade", LOG_PID, LOG_DAEMON);
	}
	return state;
}

static void vlog(int prio, const char *tag, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	fprintf(stderr, "[%7.1f ms] %s", qu_ms_since_start(), tag);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (to_syslog())
		vsyslog(prio, fmt, copy);
	va_end(copy);
}

void qu_info(const char *fmt, ...)
{
	va_list ap;
	if (log_level < QU_LOG_INFO)
		return;
	va_start(ap, fmt);
	vlog(LOG_INFO, "", fmt, ap);
	va_end(ap);
}

void qu_debug(const char *fmt, ...)
{
	va_list ap;
	if (log_level < QU_LOG_DEBUG)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, "debug: ", fmt, ap);
	va_end(ap);
}

int qu_err(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	err_errno = err < 0 ? -err : err;
	return err;
}

int qu_err_wrap(int err, const char *fmt, ...)
{
	char prefix[512];
	va_list ap;

	va_start(ap, fmt);
	int pl = vsnprintf(prefix, sizeof(prefix) - 2, fmt, ap);
	va_end(ap);
	if (pl < 0)
		return err;
	if ((size_t)pl > sizeof(prefix) - 3)
		pl = (int)sizeof(prefix) - 3;
	if (!err_msg[0])
		snprintf(err_msg, sizeof(err_msg), "%s", strerror(err < 0 ? -err : err));
	memcpy(prefix + pl, ": ", 3);
	pl += 2;
	/* Shift the earlier message right and put the context in front of it. */
	size_t old = strnlen(err_msg, sizeof(err_msg) - 1 - (size_t)pl);
	memmove(err_msg + pl, err_msg, old);
	err_msg[pl + old] = '\0';
	memcpy(err_msg, prefix, (size_t)pl);
	err_errno = err < 0 ? -err : err;
	return err;
}

void qu_err_append_output(int fd, const char *who)
{
	char buf[1024];
	size_t n = 0;
	if (fd < 0)
		return;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* The last KiB of what is there (at most a pipe's 64 KiB): a program that dies says why
	 * at the end, after whatever warnings it wrote before. */
	for (int chunks = 0; chunks < 64; chunks++) {
		if (n == sizeof(buf) - 1) {
			memmove(buf, buf + sizeof(buf) / 2, n - sizeof(buf) / 2);
			n -= sizeof(buf) / 2;
		}
		ssize_t got = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;
	buf[n] = '\0';
	/* Room for what it said: the message before it is cut short if need be. */
	size_t used = strnlen(err_msg, sizeof(err_msg) - sizeof(buf) - 64);
	err_msg[used] = '\0';
	snprintf(err_msg + used, sizeof(err_msg) - used, "; %.48s said: %s", who, buf);
}

const char *qu_err_msg(void) { return err_msg; }
int qu_err_errno(void) { return err_errno; }
void qu_err_clear(void) { err_msg[0] = '\0'; err_errno = 0; }
