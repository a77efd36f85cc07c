/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz-*.c). Each target is one file
 * with LLVMFuzzerTestOneInput; a crash, a sanitizer report, a leak or a broken round trip
 * (FUZZ_CHECK) is a finding. */
#ifndef QU_TESTS_FUZZ_H
#define QU_TESTS_FUZZ_H

#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the parser must keep: abort (a finding) with where and why. */
#define FUZZ_CHECK(cond)                                                                       \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                               \
		}                                                                              \
	} while (0)

/* The input as a NUL-terminated string (cut at its first NUL, as a C parser sees it). */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* No progress lines, and no syslog: the library logs to stderr at INFO by default.
 * FUZZ_VERBOSE=1 in the environment: every line, QMP traffic included (to see what an input
 * does: build/fuzz/fuzz-qmp FILE). */
static inline void fuzz_quiet(void)
{
	qu_log_set_level(getenv("FUZZ_VERBOSE") ? QU_LOG_DEBUG : QU_LOG_QUIET);
}

/* The LLVMFuzzerInitialize of a target that needs nothing but quiet. */
#define FUZZ_QUIET_INIT                                      \
	int LLVMFuzzerInitialize(int *argc, char ***argv)    \
	{                                                    \
		(void)argc;                                  \
		(void)argv;                                  \
		fuzz_quiet();                                \
		return 0;                                    \
	}

/* A socketpair whose peer end already holds data and is shut for writing, so that a reader
 * of the returned end gets exactly data, then EOF: deterministic, never blocks. The peer end
 * stays open (in *peer) so that the reader may still write (its writes are never read).
 * Returns the reading end, or -1 when data does not fit in the socket buffer. */
static inline int fuzz_socket_with(const uint8_t *data, size_t size, int *peer)
{
	int s[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0)
		abort();
	size_t done = 0;
	while (done < size) {
		ssize_t n = send(s[1], data + done, size - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0) {
			close(s[0]);
			close(s[1]);
			return -1;
		}
		done += (size_t)n;
	}
	shutdown(s[1], SHUT_WR);
	*peer = s[1];
	return s[0];
}

static char fuzz_dir[64];

/* At exit: the directory's files (no subdirectories are made), then the directory. */
static inline void fuzz_tmpdir_remove(void)
{
	DIR *d = opendir(fuzz_dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(fuzz_dir);
}

/* A private directory under /dev/shm (else /tmp) for the targets that write files; made
 * once, removed at exit. */
static inline const char *fuzz_tmpdir(void)
{
	if (!fuzz_dir[0]) {
		snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/qu-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(fuzz_dir))
			abort();
		atexit(fuzz_tmpdir_remove);
	}
	return fuzz_dir;
}

/* Replaces the content of path with data. */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	close(fd);
}

/* A mutated record almost never keeps its CRC: the stream targets put right the CRC of every
 * whole record in buf when the input asks for it, so
 * that mutations reach what lies behind the check. */
static inline void fuzz_fix_crcs(uint8_t *buf, size_t len)
{
	for (size_t off = 0; len - off >= QU_STREAM_HDR_LEN;) {
		uint8_t *h = buf + off;
		uint32_t plen = qu_get_u32(h + 8);
		if (qu_get_u32(h) != QU_STREAM_MAGIC || plen > len - off - QU_STREAM_HDR_LEN)
			return;
		uint32_t c = (uint32_t)crc32(crc32(0L, h, 12), h + QU_STREAM_HDR_LEN, plen);
		for (int i = 0; i < 4; i++)
			h[12 + i] = (uint8_t)(c >> (8 * i));
		off += QU_STREAM_HDR_LEN + plen;
	}
}

#endif
