#include "upgrade/memory.h"
#include "upgrade/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MemAvailable from /proc/meminfo, bytes; -1 unknown. */
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
	return kb < 0 ? -1 : kb * 1024;
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
		long long limit = read_number(dir, "memory.limit_in_bytes");
		long long used = read_number(dir, "memory.usage_in_bytes");
		if (limit < 0) {
			limit = read_number(dir, "memory.max");
			used = read_number(dir, "memory.current");
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
