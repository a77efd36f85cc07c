#include "upgrade/fdpass/fdtable.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A QEMU holds tens of descriptors, a big one a few thousand; a process cannot have more
 * than fs.nr_open (2^20 by default), which bounds the table's growth. */
#define FDTAB_MAX (1 << 20)

static int cmp_fd(const void *a, const void *b)
{
	const struct qu_fdent *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* Entries are named by decimal numbers only; anything else is not a descriptor. */
static int fd_name(const char *s)
{
	long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > INT_MAX / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= INT_MAX ? (int)v : -1;
}

static int add_entry(struct qu_fdtab *t, size_t *cap, int dirfd, int fd, const char *name)
{
	char link[PATH_MAX];
	struct stat st;
	ssize_t n = readlinkat(dirfd, name, link, sizeof(link) - 1);
	if (n < 0 && errno == ENOENT)
		return 0; /* closed during the walk */
	link[n < 0 ? 0 : n] = '\0';
	if (t->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		if (nc > FDTAB_MAX)
			return -E2BIG;
		struct qu_fdent *ne = realloc(t->e, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		t->e = ne;
		*cap = nc;
	}
	struct qu_fdent *e = &t->e[t->n];
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	if (!(e->link = strdup(link)))
		return -ENOMEM;
	/* Follows the magic link to the open file itself (never a path anyone could swap). */
	if (fstatat(dirfd, name, &st, 0) == 0) {
		e->stat_ok = 1;
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->mode = st.st_mode;
	}
	t->n++;
	return 0;
}

int qu_fdtab_read(pid_t pid, struct qu_fdtab *t)
{
	char path[64];
	size_t cap = 0;
	int r = 0;
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	for (struct dirent *de; r == 0 && (de = readdir(d));) {
		int fd = fd_name(de->d_name);
		if (fd >= 0)
			r = add_entry(t, &cap, dirfd(d), fd, de->d_name);
	}
	closedir(d);
	if (r < 0) {
		qu_fdtab_free(t);
		t->pid = pid;
		return r;
	}
	if (t->n)
		qsort(t->e, t->n, sizeof(*t->e), cmp_fd);
	return 0;
}

void qu_fdtab_free(struct qu_fdtab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i].link);
	free(t->e);
	t->e = NULL;
	t->n = 0;
}

const struct qu_fdent *qu_fdtab_get(const struct qu_fdtab *t, int fd)
{
	struct qu_fdent key = { .fd = fd };
	return t->n ? bsearch(&key, t->e, t->n, sizeof(*t->e), cmp_fd) : NULL;
}

const char *qu_fdtab_link(const struct qu_fdtab *t, int fd)
{
	const struct qu_fdent *e = qu_fdtab_get(t, fd);
	return e ? e->link : NULL;
}

int qu_fdtab_by_inode(const struct qu_fdtab *t, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < t->n; i++) /* sorted: the first match is the lowest */
		if (t->e[i].stat_ok && t->e[i].dev == dev && t->e[i].ino == ino)
			return t->e[i].fd;
	return -ENOENT;
}

int qu_fdtab_by_socket(const struct qu_fdtab *t, unsigned long ino)
{
	char want[40];
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].link, want))
			return t->e[i].fd;
	return -ENOENT;
}
