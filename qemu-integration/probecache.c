#include "qemu-integration/probecache.h"
#include "upgrade/io.h"
#include "upgrade/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER_MAX 512

static const char *cache_dir(void)
{
	const char *d = qu_test_env("QEMU_UPGRADE_CACHE_DIR");
	return d ? d : QU_PROBE_CACHE_DIR;
}

/* FNV-1a of the probe's words: one file per file, user and probe. */
static uint32_t words_hash(const char *what)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)what; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static void entry_path(const char *what, uid_t uid, gid_t gid, const struct stat *st, char *buf, size_t len)
{
	snprintf(buf, len, "%s/probe-%u-%u-%llx-%llu-%08x", cache_dir(), (unsigned)uid, (unsigned)gid,
		 (unsigned long long)st->st_dev, (unsigned long long)st->st_ino, words_hash(what));
}

/* Everything the answer depends on, as the entry's first line. */
static int header(const char *what, uid_t uid, gid_t gid, const struct stat *st, int status, char *buf, size_t len)
{
	int n = snprintf(buf, len, "qemu-upgrade probe 1 uid=%u gid=%u dev=%llu ino=%llu size=%lld mtime=%lld.%09ld "
			 "ctime=%lld.%09ld status=%d what=%s\n", (unsigned)uid, (unsigned)gid,
			 (unsigned long long)st->st_dev, (unsigned long long)st->st_ino, (long long)st->st_size,
			 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
			 st->st_ctim.tv_nsec, status, what);
	return n > 0 && (size_t)n < len ? n : -ENAMETOOLONG;
}

int qu_probe_cache_get(const char *what, uid_t uid, gid_t gid, const struct stat *st, int *status, char *buf,
		       size_t cap)
{
	char path[PATH_MAX], want[HEADER_MAX];
	struct stat es;
	entry_path(what, uid, gid, st, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	/* Root's own file, which nobody else could have written. */
	if (fstat(fd, &es) < 0 || !S_ISREG(es.st_mode) || es.st_uid != 0 || (es.st_mode & 022) ||
	    es.st_size > (off_t)(HEADER_MAX + cap)) {
		close(fd);
		return -ENOENT;
	}
	size_t len = (size_t)es.st_size;
	char *text = malloc(len + 1);
	ssize_t n = text ? read(fd, text, len) : -1;
	close(fd);
	if (n != (ssize_t)len) {
		free(text);
		return -ENOENT;
	}
	text[len] = '\0';
	/* The status is part of the line: try each it can be (what QEMU exits with, or 126/127). */
	const char *nl = memchr(text, '\n', len);
	const char *st_at = nl ? strstr(text, " status=") : NULL;
	int r = -ENOENT;
	if (st_at && st_at < nl) {
		int s = atoi(st_at + 8);
		if (header(what, uid, gid, st, s, want, sizeof(want)) > 0 && (size_t)(nl + 1 - text) == strlen(want) &&
		    !memcmp(text, want, strlen(want)) && len - strlen(want) < cap) {
			memcpy(buf, nl + 1, len - strlen(want));
			buf[len - strlen(want)] = '\0';
			*status = s;
			r = 0;
		}
	}
	free(text);
	return r;
}

void qu_probe_cache_put(const char *what, uid_t uid, gid_t gid, const struct stat *st, int status, const char *out)
{
	char path[PATH_MAX], head[HEADER_MAX];
	int n = header(what, uid, gid, st, status, head, sizeof(head));
	if (n < 0)
		return;
	if (mkdir(cache_dir(), 0700) < 0 && errno != EEXIST)
		return;
	size_t olen = strlen(out);
	char *text = malloc((size_t)n + olen);
	if (!text)
		return;
	memcpy(text, head, (size_t)n);
	memcpy(text + n, out, olen);
	entry_path(what, uid, gid, st, path, sizeof(path));
	qu_write_file_atomic(path, text, (size_t)n + olen);
	free(text);
}
