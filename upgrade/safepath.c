#include "upgrade/safepath.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_LINKS 40

static int openat2_fd(int dfd, const char *name, int flags, mode_t mode, unsigned long long resolve)
{
	struct open_how how = { .flags = (unsigned long long)flags, .mode = mode, .resolve = resolve };
	long fd = syscall(SYS_openat2, dfd, name, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* One name in one directory, never through a link, never out of the directory. */
#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

static int owner_ok(const struct stat *st, uid_t allowed)
{
	return st->st_uid == 0 || (allowed != (uid_t)-1 && st->st_uid == allowed);
}

/* Nobody but root (or the allowed user) can replace what root (or that user) put in this
 * directory: owned by them, and writable by nobody else, or sticky. */
static int keeps_entries(const struct stat *st, uid_t allowed)
{
	return owner_ok(st, allowed) && (!(st->st_mode & 022) || (st->st_mode & S_ISVTX));
}

struct walk {
	const char *path;      /* as given, for messages */
	char walked[PATH_MAX]; /* the directory reached so far, for messages */
	uid_t allowed;
};

static int refuse_link(const struct walk *w, const char *comp, const struct stat *dir, const struct stat *link)
{
	char who[48];
	if (keeps_entries(dir, w->allowed))
		return qu_err(-ELOOP, "%s: '%s' in %s is a symbolic link made by uid %u: not followed (only links "
			      "root made are followed)", w->path, comp, w->walked[0] ? w->walked : "/",
			      (unsigned)link->st_uid);
	if (!owner_ok(dir, w->allowed))
		snprintf(who, sizeof(who), "uid %u owns", (unsigned)dir->st_uid);
	else
		snprintf(who, sizeof(who), "others can write");
	return qu_err(-ELOOP, "%s: '%s' in %s is a symbolic link, and %s that directory (or one above it): not "
		      "followed, refused (a link there could lead anywhere)", w->path, comp,
		      w->walked[0] ? w->walked : "/", who);
}

static void walked_add(struct walk *w, const char *comp)
{
	size_t n = strlen(w->walked);
	snprintf(w->walked + n, sizeof(w->walked) - n, "/%s", comp);
}

/* The walk's buffers: too large for the sanitizer build's frame limit together. */
struct walk_bufs {
	char rest[2 * PATH_MAX];   /* what is left to walk */
	char joined[2 * PATH_MAX]; /* a link's target and what followed it */
	char target[PATH_MAX];
};

static int walk(const char *path, uid_t allowed, int follow_last, struct qu_safe_dir *d, struct walk_bufs *b,
		char *real, size_t rlen);

int qu_safe_open_dir(const char *path, uid_t allowed, int follow_last, struct qu_safe_dir *d)
{
	return qu_safe_open_dir_real(path, allowed, follow_last, d, NULL, 0);
}

int qu_safe_open_dir_real(const char *path, uid_t allowed, int follow_last, struct qu_safe_dir *d, char *real,
			  size_t rlen)
{
	d->fd = -1;
	d->name[0] = '\0';
	d->doubt[0] = '\0';
	if (!path || path[0] != '/' || strlen(path) >= PATH_MAX)
		return qu_err(-EINVAL, "%s: not an absolute path", path ? path : "(none)");
	if (path[strlen(path) - 1] == '/')
		return qu_err(-EISDIR, "%s: names a directory, not a file", path);
	struct walk_bufs *b = calloc(1, sizeof(*b));
	if (!b)
		return qu_err(-ENOMEM, "out of memory");
	int r = walk(path, allowed, follow_last, d, b, real, rlen);
	free(b);
	return r;
}

static int walk(const char *path, uid_t allowed, int follow_last, struct qu_safe_dir *d, struct walk_bufs *b,
		char *real, size_t rlen)
{
	char *rest = b->rest, *target = b->target, *joined = b->joined;
	struct walk w = { .path = path, .allowed = allowed };
	struct stat dst;
	int links = 0, r;

	snprintf(rest, sizeof(b->rest), "%s", path);
	int dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &dst) < 0)
		return qu_err(-errno, "cannot open /: %s", strerror(errno));
	int safe = keeps_entries(&dst, allowed);
	if (!safe)
		snprintf(d->doubt, sizeof(d->doubt), "/ is not root's alone");
	char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p) {
			r = qu_err(-EISDIR, "%s: names a directory, not a file", path);
			goto fail;
		}
		char *comp = p, *next = strchr(p, '/');
		if (next)
			*next++ = '\0';
		else
			next = p + strlen(p);
		while (*next == '/')
			next++;
		int last = !*next;
		if (!strcmp(comp, ".")) {
			if (last) {
				r = qu_err(-EISDIR, "%s: names a directory, not a file", path);
				goto fail;
			}
			p = next;
			continue;
		}
		if (!strcmp(comp, "..")) {
			r = qu_err(-EINVAL, "%s: '..' in a path is not followed", path);
			goto fail;
		}
		if (strlen(comp) >= QU_SAFE_NAME_MAX) {
			r = qu_err(-ENAMETOOLONG, "%s: a component is too long", path);
			goto fail;
		}
		if (last && !follow_last) {
			snprintf(d->name, sizeof(d->name), "%s", comp);
			break;
		}
		int fd = openat2_fd(dfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, BENEATH);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = fd < 0 ? fd : -errno;
			if (r == -ENOENT)
				qu_err(r, "%s: %s", path, strerror(-r));
			else
				qu_err(r, "%s: cannot open '%s' in %s: %s", path, comp, w.walked[0] ? w.walked : "/",
				       strerror(-r));
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = -1;
			if (!safe || !owner_ok(&st, allowed))
				r = refuse_link(&w, comp, &dst, &st);
			else if (++links > MAX_LINKS)
				r = qu_err(-ELOOP, "%s: too many symbolic links", path);
			else if ((n = readlinkat(fd, "", target, PATH_MAX - 1)) < 0)
				r = qu_err(-errno, "%s: cannot read the link '%s': %s", path, comp, strerror(errno));
			close(fd);
			if (n < 0)
				goto fail;
			target[n] = '\0';
			/* The link's target, then what followed it: walked from / or from here. */
			if ((size_t)snprintf(joined, sizeof(b->joined), "%s/%s", target, next) >= sizeof(b->joined)) {
				r = qu_err(-ENAMETOOLONG, "%s: too long once its links are followed", path);
				goto fail;
			}
			snprintf(rest, sizeof(b->rest), "%s", joined);
			p = rest;
			if (target[0] == '/') {
				close(dfd);
				dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (dfd < 0 || fstat(dfd, &dst) < 0)
					return qu_err(-errno, "cannot open /: %s", strerror(errno));
				safe = keeps_entries(&dst, allowed);
				w.walked[0] = '\0';
				d->doubt[0] = '\0';
			}
			continue;
		}
		if (last) {
			/* follow_last: the program itself, which is not a link. */
			close(fd);
			snprintf(d->name, sizeof(d->name), "%s", comp);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(fd);
			r = qu_err(-ENOTDIR, "%s: '%s' in %s is not a directory", path, comp, w.walked[0] ? w.walked : "/");
			goto fail;
		}
		walked_add(&w, comp);
		if (safe && !keeps_entries(&st, allowed) && owner_ok(&st, allowed))
			snprintf(d->doubt, sizeof(d->doubt), "%.100s can be written by group or others", w.walked);
		else if (safe && !keeps_entries(&st, allowed))
			snprintf(d->doubt, sizeof(d->doubt), "%.100s belongs to uid %u", w.walked, (unsigned)st.st_uid);
		safe = safe && keeps_entries(&st, allowed);
		close(dfd);
		dfd = fd;
		dst = st;
		p = next;
	}
	if (real && (size_t)snprintf(real, rlen, "%s", w.walked[0] ? w.walked : "/") >= rlen) {
		r = qu_err(-ENAMETOOLONG, "%s: too long once its links are followed", path);
		goto fail;
	}
	d->fd = dfd;
	d->trusted = safe;
	d->sticky = !!(dst.st_mode & S_ISVTX);
	return 0;
fail:
	close(dfd);
	return r;
}

void qu_safe_close(struct qu_safe_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

int qu_safe_open(const struct qu_safe_dir *d, int flags)
{
	return openat2_fd(d->fd, d->name, (flags & ~O_CREAT) | O_NOFOLLOW | O_CLOEXEC, 0, BENEATH);
}
