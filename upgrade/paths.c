/* Every path here comes from the VM's command line and may lie in a directory its user
 * controls: each is reached through upgrade/safepath.h (no link followed where the user could
 * have made one) and changed only by *at() calls on its own directory. When that walk
 * refuses a path, the path is left alone with a warning: the upgrade does not need it. */
#include "upgrade/paths.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_parent(const char *path, struct qu_safe_dir *d)
{
	int r = qu_safe_open_dir(path, (uid_t)-1, 0, d);
	if (r < 0)
		qu_info("warning: left alone: %s", qu_err_msg());
	return r;
}

/* name+suffix in the same directory; -ENAMETOOLONG when it does not fit. */
static int sibling(const struct qu_safe_dir *d, const char *suffix, char *buf, size_t len)
{
	return (size_t)snprintf(buf, len, "%s%s", d->name, suffix) >= len ? -ENAMETOOLONG : 0;
}

/* Only what the VM made there is linked or renamed: its socket or its pidfile. */
static int ours_to_touch(const struct stat *st)
{
	return S_ISSOCK(st->st_mode) || S_ISREG(st->st_mode);
}

static void keep_in(const struct qu_safe_dir *d, const char *path, const char *suffix, int keep)
{
	char tmp[QU_SAFE_NAME_MAX];
	struct stat a, b;
	if (sibling(d, suffix, tmp, sizeof(tmp)) < 0)
		return;
	if (keep) {
		qu_safe_unlink(d, tmp, 0);
		int r = qu_safe_stat(d, NULL, &a);
		if (r == 0 && !ours_to_touch(&a))
			qu_info("warning: %s is neither a socket nor a file any more: left alone", path);
		else if (r == 0 && (r = qu_safe_link(d, tmp)) < 0)
			qu_info("warning: cannot keep %s across the old QEMU's exit: %s", path, strerror(-r));
		return;
	}
	/* Still there (the old QEMU did not unlink it): rename() between two links of one file
	 * does nothing, so the spare link goes. */
	if (qu_safe_stat(d, NULL, &a) == 0 && qu_safe_stat(d, tmp, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev) {
		qu_safe_unlink(d, tmp, 0);
		return;
	}
	int r = qu_safe_rename(d, tmp, d->name);
	if (r < 0 && r != -ENOENT)
		qu_info("warning: cannot restore %s: %s", path, strerror(-r));
}

void qu_keep_path(const char *path, const char *suffix, int keep)
{
	struct qu_safe_dir d;
	if (!path[0] || open_parent(path, &d) < 0)
		return;
	keep_in(&d, path, suffix, keep);
	qu_safe_close(&d);
}

void qu_keep_paths(const char *const *paths, size_t n, int keep)
{
	for (size_t i = 0; i < n; i++)
		qu_keep_path(paths[i], QU_KEEP_SUFFIX, keep);
}

/* The old QEMU holds a lock on its pidfile, so the new one cannot write that file: the old
 * inode moves aside (a hard link, for a rollback) and an unlocked copy with the same
 * contents, owner and mode is renamed over the path, which the new QEMU then locks and
 * rewrites with its PID. Readers never find the path missing (only, for microseconds, the
 * new QEMU's truncate-then-write). */
void qu_pidfile_aside(const char *pidfile)
{
	struct qu_safe_dir d;
	char tmp[QU_SAFE_NAME_MAX], buf[64];
	struct stat st;
	if (!pidfile[0] || open_parent(pidfile, &d) < 0)
		return;
	keep_in(&d, pidfile, QU_PIDFILE_ASIDE_SUFFIX, 1);
	if (sibling(&d, ".qemu-upgrade-tmp", tmp, sizeof(tmp)) < 0) {
		qu_safe_close(&d);
		return;
	}
	/* The copy is made under a name of our own, O_EXCL after the unlink: a file of ours or
	 * nothing, never something the VM's user left there. */
	qu_safe_unlink(&d, tmp, 0);
	struct qu_safe_dir t = d;
	snprintf(t.name, sizeof(t.name), "%s", tmp);
	int in = qu_safe_open(&d, O_RDONLY | O_NONBLOCK), out = -1;
	ssize_t n = in >= 0 ? read(in, buf, sizeof(buf)) : -1;
	if (in >= 0 && fstat(in, &st) == 0 && S_ISREG(st.st_mode) && n >= 0 &&
	    (out = qu_safe_create(&t, O_WRONLY, 0600)) >= 0 && write(out, buf, (size_t)n) == n &&
	    fchown(out, st.st_uid, st.st_gid) == 0 && fchmod(out, st.st_mode & 0666) == 0 &&
	    qu_safe_rename(&d, tmp, d.name) == 0) {
		close(in);
		close(out);
		qu_safe_close(&d);
		return;
	}
	/* No copy: the path goes until the new QEMU writes it. */
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	qu_safe_unlink(&d, tmp, 0);
	qu_safe_unlink(&d, NULL, 0);
	qu_safe_close(&d);
}

void qu_pidfile_settle(const char *pidfile, int committed)
{
	struct qu_safe_dir d;
	char aside[QU_SAFE_NAME_MAX];
	struct stat st;
	if (!pidfile[0] || open_parent(pidfile, &d) < 0)
		return;
	if (sibling(&d, QU_PIDFILE_ASIDE_SUFFIX, aside, sizeof(aside)) == 0) {
		if (committed)
			qu_safe_unlink(&d, aside, 0);
		else if (qu_safe_stat(&d, aside, &st) == 0)
			keep_in(&d, pidfile, QU_PIDFILE_ASIDE_SUFFIX, 0);
	}
	qu_safe_close(&d);
}

void qu_forget_paths(const char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!paths[i][0])
			continue;
		int r = qu_safe_unlink_path(paths[i], 0);
		if (r < 0 && r != -ENOENT)
			qu_info("warning: cannot remove %s: %s", paths[i], r == -ELOOP ? qu_err_msg() : strerror(-r));
	}
}
