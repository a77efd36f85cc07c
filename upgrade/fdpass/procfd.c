#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Listening sockets carry __SO_ACCEPTCON in the Flags column of /proc/net/unix. */
#define UNIX_FLAG_ACCEPTCON 0x10000UL

int qu_proc_readlink(pid_t pid, const char *rel, char *buf, size_t len)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, rel);
	ssize_t n = readlink(path, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

int qu_proc_fd_link(pid_t pid, int fd, char *buf, size_t len)
{
	char rel[32];
	snprintf(rel, sizeof(rel), "fd/%d", fd);
	return qu_proc_readlink(pid, rel, buf, len);
}

/* Calls match(fd, arg) for each descriptor of pid until it returns 1; returns that fd. */
static int scan_fds(pid_t pid, int (*match)(pid_t, int, const void *), const void *arg)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int best = -ENOENT;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (match(pid, fd, arg) == 1 && (best < 0 || fd < best))
			best = fd;
	}
	closedir(d);
	return best;
}

static int match_socket(pid_t pid, int fd, const void *arg)
{
	char link[128], want[64];
	snprintf(want, sizeof(want), "socket:[%lu]", *(const unsigned long *)arg);
	return qu_proc_fd_link(pid, fd, link, sizeof(link)) == 0 && strcmp(link, want) == 0;
}

int qu_proc_fd_by_socket(pid_t pid, unsigned long ino)
{
	return scan_fds(pid, match_socket, &ino);
}

/* Walks /proc/PID/net/unix: "Num RefCount Protocol Flags Type St Inode [Path]". */
static int scan_unix(pid_t pid, int (*fn)(unsigned long flags, unsigned long ino,
					  const char *path, void *arg), void *arg)
{
	char file[64], *text = NULL;
	snprintf(file, sizeof(file), "/proc/%d/net/unix", (int)pid);
	int r = qu_read_file(file, &text, NULL);
	if (r < 0)
		return r;
	r = -ENOENT;
	char *save = NULL;
	strtok_r(text, "\n", &save); /* header */
	for (char *line; (line = strtok_r(NULL, "\n", &save));) {
		unsigned long flags, ino;
		int pathpos = 0;
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %lu %n", &flags, &ino, &pathpos) < 2)
			continue;
		const char *p = pathpos ? line + pathpos : "";
		if (fn(flags, ino, p, arg) == 1) {
			r = 0;
			break;
		}
	}
	free(text);
	return r;
}

struct listener_query {
	const struct qu_fdtab *fds;
	const char *path;
	unsigned long ino;
};

/* Another process may listen on a socket bound to the same path (the table keeps the name a
 * socket was bound to, even once its file is gone or replaced): only one pid holds counts. */
static int find_listener(unsigned long flags, unsigned long ino, const char *path, void *arg)
{
	struct listener_query *q = arg;
	if (!(flags & UNIX_FLAG_ACCEPTCON) || strcmp(path, q->path) != 0 || qu_fdtab_by_socket(q->fds, ino) < 0)
		return 0;
	q->ino = ino;
	return 1;
}

int qu_proc_unix_listener(pid_t pid, const struct qu_fdtab *fds, const char *path, unsigned long *ino)
{
	struct listener_query q = { .fds = fds, .path = path };
	int r = scan_unix(pid, find_listener, &q);
	if (r == 0)
		*ino = q.ino;
	return r;
}

struct path_query {
	unsigned long ino;
	char *path;
	size_t len;
	int listening;
};

static int find_path(unsigned long flags, unsigned long ino, const char *path, void *arg)
{
	struct path_query *q = arg;
	if (ino != q->ino)
		return 0;
	snprintf(q->path, q->len, "%s", path);
	q->listening = !!(flags & UNIX_FLAG_ACCEPTCON);
	return 1;
}

int qu_proc_unix_path(pid_t pid, unsigned long ino, char *path, size_t len, int *listening)
{
	struct path_query q = { .ino = ino, .path = path, .len = len };
	int r = scan_unix(pid, find_path, &q);
	if (r == 0 && listening)
		*listening = q.listening;
	return r;
}

/* The fields after "(comm)": comm may hold spaces and parentheses, so parse from the last ')'. */
static int stat_fields(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (qu_read_file(path, &text, NULL) < 0)
		return -ENOENT;
	char *p = strrchr(text, ')');
	int r = p && sscanf(p + 2, "%c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
			    "%*s %*s %*s %llu", state, start) == 2 ? 0 : -EPROTO;
	free(text);
	return r;
}

unsigned long long qu_proc_starttime(pid_t pid)
{
	char state;
	unsigned long long start;
	return stat_fields(pid, &state, &start) == 0 ? start : 0;
}

pid_t qu_proc_ppid(pid_t pid)
{
	char path[64], *text = NULL;
	int ppid = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (qu_read_file(path, &text, NULL) == 0) {
		char *p = strstr(text, "\nPPid:");
		if (p)
			ppid = atoi(p + 6);
		free(text);
	}
	return (pid_t)ppid;
}

char qu_proc_state(pid_t pid)
{
	char state;
	unsigned long long start;
	return pid > 0 && stat_fields(pid, &state, &start) == 0 ? state : 0;
}

int qu_proc_alive(pid_t pid, unsigned long long start)
{
	char state;
	unsigned long long s;
	if (pid <= 0 || stat_fields(pid, &state, &s) < 0)
		return 0;
	return s == start && state != 'Z' && state != 'X';
}

long long qu_proc_anon_bytes(pid_t pid)
{
	/* RssAnon of /proc/PID/status: the kernel's counter, read in constant time. Not
	 * smaps_rollup, which walks the page tables of every mapping: about 100 ms for a guest of
	 * 8 GiB (measured), on the upgrade's path, once of them inside the guest's pause. */
	char path[64], *text = NULL;
	long long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (qu_read_file(path, &text, NULL) < 0)
		return -1;
	char *a = strstr(text, "\nRssAnon:");
	if (a)
		sscanf(a + 9, "%lld", &kb);
	free(text);
	return kb < 0 ? -1 : kb * 1024;
}
