#include "upgrade/paths.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void qu_keep_path(const char *path, const char *suffix, int keep)
{
	char tmp[PATH_MAX + 32];
	if (!path[0])
		return;
	snprintf(tmp, sizeof(tmp), "%s%s", path, suffix);
	if (keep) {
		unlink(tmp);
		if (link(path, tmp) < 0 && errno != ENOENT)
			qu_info("warning: cannot keep %s across the old QEMU's exit: %s", path, strerror(errno));
	} else {
		/* Still there (the old QEMU did not unlink it): rename() between two links of one
		 * file does nothing, so the spare link goes. */
		struct stat a, b;
		if (stat(path, &a) == 0 && stat(tmp, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			unlink(tmp);
		else if (rename(tmp, path) < 0 && errno != ENOENT)
			qu_info("warning: cannot restore %s: %s", path, strerror(errno));
	}
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
	char tmp[PATH_MAX + 32], buf[64];
	struct stat st;
	if (!pidfile[0])
		return;
	qu_keep_path(pidfile, QU_PIDFILE_ASIDE_SUFFIX, 1);
	snprintf(tmp, sizeof(tmp), "%s.qemu-upgrade-tmp", pidfile);
	/* The directory may be writable by the VM's user: neither name may lead elsewhere
	 * (O_NOFOLLOW; O_EXCL after the unlink makes a file of our own or fails). */
	unlink(tmp);
	int in = open(pidfile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), out = -1;
	ssize_t n = in >= 0 ? read(in, buf, sizeof(buf)) : -1;
	if (in >= 0 && fstat(in, &st) == 0 && S_ISREG(st.st_mode) && n >= 0 &&
	    (out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) >= 0 &&
	    write(out, buf, (size_t)n) == n && fchown(out, st.st_uid, st.st_gid) == 0 &&
	    fchmod(out, st.st_mode & 0666) == 0 && rename(tmp, pidfile) == 0) {
		close(in);
		close(out);
		return;
	}
	/* No copy: the path goes until the new QEMU writes it. */
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	unlink(tmp);
	unlink(pidfile);
}

void qu_pidfile_settle(const char *pidfile, int committed)
{
	char aside[PATH_MAX + 32];
	if (!pidfile[0])
		return;
	snprintf(aside, sizeof(aside), "%s%s", pidfile, QU_PIDFILE_ASIDE_SUFFIX);
	if (committed) {
		unlink(aside);
		return;
	}
	if (access(aside, F_OK) == 0)
		qu_keep_path(pidfile, QU_PIDFILE_ASIDE_SUFFIX, 0);
}
