#include "upgrade/memory.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/statedir.h"
#include "upgrade/log.h"
#include "upgrade/fdpass/procfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* Free pages parked on the page allocator's per-CPU lists (/proc/zoneinfo "count:"), bytes.
 * MemFree, and so MemAvailable, leaves them out, and heavy free/allocate traffic (a copy
 * that frees pages on one side and faults them in on the other) grows them by gigabytes
 * that then shrink only slowly (bench/RESULTS.md): they are free all the same. */
static long long percpu_free(void)
{
	char *text = NULL, *save = NULL;
	long long pages = 0, n;
	if (qu_read_file("/proc/zoneinfo", &text, NULL) < 0)
		return 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, " count: %lld", &n) == 1 && n > 0)
			pages += n;
	free(text);
	return pages * sysconf(_SC_PAGESIZE);
}

/* MemAvailable from /proc/meminfo plus the per-CPU free lists, bytes; -1 unknown. */
static long long mem_available(void)
{
	char *text = NULL;
	long long kb = -1;
	if (qu_read_file("/proc/meminfo", &text, NULL) < 0)
		return -1;
	char *m = strstr(text, "MemAvailable:");
	if (m)
		sscanf(m + 13, "%lld", &kb);
	free(text);
	return kb < 0 ? -1 : kb * 1024 + percpu_free();
}

/* A number in dir/name; -1 when absent or "max". */
static long long read_number(const char *dir, const char *name)
{
	char path[PATH_MAX + 64], *text = NULL;
	long long v = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (qu_read_file(path, &text, NULL) < 0)
		return -1;
	if (strncmp(text, "max", 3) && sscanf(text, "%lld", &v) != 1)
		v = -1;
	free(text);
	return v;
}

/* A key's value in dir/memory.stat; 0 when absent. */
static long long stat_value(const char *dir, const char *key)
{
	char path[PATH_MAX + 64], *text = NULL, *save = NULL;
	long long v = 0;
	size_t kl = strlen(key);
	snprintf(path, sizeof(path), "%s/memory.stat", dir);
	if (qu_read_file(path, &text, NULL) < 0)
		return 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			v = atoll(line + kl + 1);
	free(text);
	return v;
}

/* Room left under dir's memory limit and every ancestor's (v1: limit_in_bytes, which reads
 * as a huge number when unlimited; v2: memory.max). */
static long long cgroup_room(const char *procs, char *where, size_t len)
{
	char dir[PATH_MAX + 32];
	long long best = -1;
	snprintf(dir, sizeof(dir), "%s", procs);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	for (;;) {
		/* Usage counts page cache, of which the inactive part is reclaimed first. */
		long long limit = read_number(dir, "memory.limit_in_bytes");
		long long used = read_number(dir, "memory.usage_in_bytes");
		if (limit >= 0 && used >= 0) {
			used -= stat_value(dir, "total_inactive_file");
		} else {
			limit = read_number(dir, "memory.max");
			used = read_number(dir, "memory.current");
			if (used >= 0)
				used -= stat_value(dir, "inactive_file");
		}
		if (limit > 0 && limit < (1LL << 60) && used >= 0) {
			long long room = limit > used ? limit - used : 0;
			if (best < 0 || room < best) {
				best = room;
				snprintf(where, len, "the memory limit of cgroup %s", dir);
			}
		}
		slash = strrchr(dir, '/');
		if (!slash || slash == dir || !strcmp(dir, "/sys/fs/cgroup"))
			break;
		*slash = '\0';
	}
	return best;
}

long long qu_memory_room(const struct qu_context *ctx, char *where, size_t len)
{
	long long room = mem_available();
	snprintf(where, len, "MemAvailable");
	for (int i = 0; ctx && i < ctx->ncgroups; i++) {
		char w[PATH_MAX + 64];
		long long r = cgroup_room(ctx->cgroup_procs[i], w, sizeof(w));
		if (r >= 0 && (room < 0 || r < room)) {
			room = r;
			snprintf(where, len, "%s", w);
		}
	}
	return room;
}

#define LEDGER_MAX 128
#define BOOK_POLL_US 250000u

struct booking {
	pid_t pid;
	unsigned long long start;
	unsigned long long token; /* one per upgrade: a process may run several (threads) */
	long long bytes;
};

static void ledger_path(char *path, size_t len)
{
	snprintf(path, len, "%s/memory.ledger", qu_state_dir());
}

/* The ledger, locked. An empty ledger is removed (so a state directory holds nothing once
 * all is done): a process that opened it just before must then open it anew. */
static int ledger_open(void)
{
	char path[PATH_MAX];
	ledger_path(path, sizeof(path));
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "cannot create the state directory %s: %s", qu_state_dir(), strerror(errno));
	for (;;) {
		struct stat a, b;
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return qu_err(-errno, "cannot open %s: %s", path, strerror(errno));
		if (flock(fd, LOCK_EX) < 0) {
			int e = errno;
			close(fd);
			return qu_err(-e, "cannot lock %s: %s", path, strerror(e));
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
}

/* The bookings of live processes, without the one with token drop (0: none). */
static size_t ledger_read(int fd, struct booking *b, unsigned long long drop)
{
	char buf[LEDGER_MAX * 64];
	size_t n = 0;
	ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line && n < LEDGER_MAX; line = strtok_r(NULL, "\n", &save)) {
		struct booking x;
		int pid;
		if (sscanf(line, "%d %llu %llu %lld", &pid, &x.start, &x.token, &x.bytes) != 4)
			continue;
		x.pid = pid;
		if ((!drop || x.token != drop) && qu_proc_alive(x.pid, x.start))
			b[n++] = x;
	}
	return n;
}

static void ledger_write(int fd, const struct booking *b, size_t n)
{
	char buf[LEDGER_MAX * 64];
	size_t len = 0;
	if (n == 0) {
		char path[PATH_MAX];
		ledger_path(path, sizeof(path));
		unlink(path);
		return;
	}
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%d %llu %llu %lld\n", (int)b[i].pid, b[i].start,
					b[i].token, b[i].bytes);
	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, len, 0) == (ssize_t)len)
		fsync(fd);
}

/* One look at the ledger: books need (when token is not NULL) and returns 0 if it fits
 * beside the other bookings, or if there are none (alone, the plan said it fits); else
 * -EBUSY with why. */
static int try_book(long long need, const struct qu_context *ctx, unsigned long long *token, char *why, size_t len)
{
	struct booking *b = calloc(LEDGER_MAX + 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	int fd = ledger_open();
	if (fd < 0) {
		free(b);
		return fd;
	}
	size_t n = ledger_read(fd, b, 0);
	long long booked = 0, room;
	char where[PATH_MAX + 64];
	for (size_t i = 0; i < n; i++)
		booked += b[i].bytes;
	room = qu_memory_room(ctx, where, sizeof(where));
	int r = 0;
	if (n == 0 || room < 0 || room - booked >= need || n >= LEDGER_MAX) {
		if (token) {
			while (!*token && getrandom(token, sizeof(*token), 0) != sizeof(*token))
				;
			b[n++] = (struct booking){ getpid(), qu_proc_starttime(getpid()), *token, need };
			ledger_write(fd, b, n);
		}
	} else {
		snprintf(why, len, "%zu other copies in progress have booked %lld MiB of the %lld MiB that %s leaves; "
			 "this copy needs %lld MiB", n, booked >> 20, room >> 20, where, need >> 20);
		r = -EBUSY;
	}
	close(fd);
	free(b);
	return r;
}

int qu_memory_book(long long need, const struct qu_context *ctx, unsigned long long *token)
{
	char why[PATH_MAX + 256];
	int r = try_book(need, ctx, token, why, sizeof(why));
	return r == -EBUSY ? qu_err(r, "%s", why) : r;
}

int qu_memory_wait(long long need, const struct qu_context *ctx, uint64_t deadline_us)
{
	char why[PATH_MAX + 256];
	int said = 0, r;
	uint64_t start = qu_now_us();
	while ((r = try_book(need, ctx, NULL, why, sizeof(why))) == -EBUSY) {
		if (!said++)
			qu_info("waiting for memory: %s", why);
		if ((r = qu_cancel_check()) < 0)
			return r;
		if (qu_now_us() + BOOK_POLL_US >= deadline_us)
			return qu_err(-ETIMEDOUT, "waited %.0f s for other copies to leave room: %s; try again later",
				      (double)(qu_now_us() - start) / 1e6, why);
		usleep(BOOK_POLL_US);
	}
	return r;
}

void qu_memory_unbook(unsigned long long token)
{
	struct booking *b = calloc(LEDGER_MAX, sizeof(*b));
	int fd = b ? ledger_open() : -1;
	if (fd >= 0) {
		ledger_write(fd, b, ledger_read(fd, b, token));
		close(fd);
	}
	free(b);
}

static long long read_count(const char *path)
{
	char *text = NULL;
	int r = qu_read_file(path, &text, NULL);
	if (r < 0)
		return r;
	long long v = atoll(text);
	free(text);
	return v;
}

long long qu_memory_free_hugepages(uint64_t page_size)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
		 (unsigned long long)(page_size >> 10));
	long long avail = read_count(path);
	if (avail < 0)
		return avail;
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/resv_hugepages",
		 (unsigned long long)(page_size >> 10));
	long long resv = read_count(path);
	if (resv < 0)
		return resv;
	return avail > resv ? avail - resv : 0;
}
