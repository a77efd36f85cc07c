/* Shared helpers for the cmocka unit tests (tests/unit/test-*.c).
 *
 * Every test program speaks TAP: main() calls cmocka_set_message_output(CM_OUTPUT_TAP) and
 * runs one group (cmocka 1.1.5 prints one "1..N" plan per group, and prove wants one).
 * Notes on cmocka 1.1.5's TAP mode, which shape these tests:
 *  - skip() prints "not ok N # SKIP name", which prove counts as a failure: never skip.
 *  - a failing group setup prints "not ok 0 - ..." (out of sequence, bad plan): no group
 *    setup/teardown here, only per-test ones.
 *  - print_message() lines are not TAP; use note() below, which writes "# " comments. */
#ifndef QU_TESTS_UNIT_H
#define QU_TESTS_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upgrade/clock.h"
#include "upgrade/log.h"

__attribute__((format(printf, 1, 2), unused)) static void note(const char *fmt, ...)
{
	va_list ap;
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* Like assert_string_equal, but shows newlines and control characters escaped, so that a
 * failure message stays on one TAP comment line. */
#define assert_text_equal(a, b) assert_text_equal_((a), (b), __FILE__, __LINE__)

__attribute__((unused)) static char *escape_text(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * n + 1), *o = out;
	if (!out)
		abort();
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			o += sprintf(o, "\\x%02x", c);
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

__attribute__((unused)) static void assert_text_equal_(const char *a, const char *b, const char *file,
							int line)
{
	if (!a || !b) {
		print_error("%s != %s\n", a ? "string" : "NULL", b ? "string" : "NULL");
		_fail(file, line);
	}
	if (strcmp(a, b) == 0)
		return;
	char *ea = escape_text(a), *eb = escape_text(b);
	print_error("\"%s\" != \"%s\"\n", ea, eb);
	free(ea);
	free(eb);
	_fail(file, line);
}

/* Absolute deadline ms milliseconds from now, in the library's clock. */
__attribute__((unused)) static uint64_t deadline_ms(unsigned ms)
{
	return qu_now_us() + (uint64_t)ms * 1000u;
}

/* Descriptors open in this process, not counting the one the listing itself uses. */
__attribute__((unused)) static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

__attribute__((unused)) static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

__attribute__((unused)) static int fd_is_cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);
	return f >= 0 && (f & FD_CLOEXEC);
}

/* Same open file description target (device and inode) for two descriptors. */
__attribute__((unused)) static int same_inode(int a, int b)
{
	struct stat sa, sb;
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Reads until EOF (or len-1 bytes) into a NUL-terminated buffer; returns the byte count. */
__attribute__((unused)) static size_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

#endif
