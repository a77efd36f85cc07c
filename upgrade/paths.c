/* Every path here comes from the VM's command line and lies where its user may point it: each
 * step runs as the VM's user (upgrade/fdpass/asuser.h), so the kernel lets it do only what
 * that user could do; a directory swapped for a link to someone else's stops it there. A
 * step that fails leaves the path alone with a warning: the upgrade does not need it. */
#include "upgrade/paths.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct step {
	const char *path;
	const char *suffix;
	int keep;       /* qu_keep_path: 1 keep, 0 put back */
	int committed;  /* qu_pidfile_settle */
};

/* Only what the VM made there is linked or renamed: its socket or its pidfile. */
static int ours_to_touch(const struct stat *st)
{
	return S_ISSOCK(st->st_mode) || S_ISREG(st->st_mode);
}

/* As the VM's user. */
static int keep_step(void *arg)
{
	const struct step *s = arg;
	char tmp[PATH_MAX + 32];
	struct stat a, b;
	snprintf(tmp, sizeof(tmp), "%s%s", s->path, s->suffix);
	if (s->keep) {
		unlink(tmp);
		if (lstat(s->path, &a) < 0)
			return errno == ENOENT ? 0 : -errno;
		if (!ours_to_touch(&a)) {
			qu_info("warning: %s is neither a socket nor a file any more: left alone", s->path);
			return 0;
		}
		if (link(s->path, tmp) < 0) /* link(2) never follows a link at its source */
			qu_info("warning: cannot keep %s across the old QEMU's exit: %s", s->path, strerror(errno));
		return 0;
	}
	/* Still there (the old QEMU did not unlink it): rename() between two links of one file
	 * does nothing, so the spare link goes. */
	if (lstat(s->path, &a) == 0 && lstat(tmp, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
		unlink(tmp);
		return 0;
	}
	if (rename(tmp, s->path) < 0 && errno != ENOENT)
		qu_info("warning: cannot restore %s: %s", s->path, strerror(errno));
	return 0;
}

static void as_user(const struct qu_ident *who, int (*fn)(void *), struct step *s)
{
	int r = qu_run_as(who, fn, s);
	if (r < 0)
		qu_info("warning: left alone: %s (as uid %u: %s)", s->path, (unsigned)who->uid, strerror(-r));
}

void qu_keep_path(const struct qu_ident *who, const char *path, const char *suffix, int keep)
{
	struct step s = { .path = path, .suffix = suffix, .keep = keep };
	if (path[0])
		as_user(who, keep_step, &s);
}

void qu_keep_paths(const struct qu_ident *who, const char *const *paths, size_t n, int keep)
{
	for (size_t i = 0; i < n; i++)
		qu_keep_path(who, paths[i], QU_KEEP_SUFFIX, keep);
}

/* The old QEMU holds a lock on its pidfile, so the new one cannot write that file: the old
 * inode moves aside (a hard link, for a rollback) and an unlocked copy with the same
 * contents and mode is renamed over the path, which the new QEMU then locks and rewrites
 * with its PID. Readers never find the path missing (only, for microseconds, the new QEMU's
 * truncate-then-write). As the VM's user, whose file it is. */
static int aside_step(void *arg)
{
	struct step *s = arg;
	char tmp[PATH_MAX + 32], buf[64];
	struct stat st;
	s->suffix = QU_PIDFILE_ASIDE_SUFFIX;
	s->keep = 1;
	keep_step(s);
	snprintf(tmp, sizeof(tmp), "%s.qemu-upgrade-tmp", s->path);
	/* A file of our own under that name (O_EXCL after the unlink), or nothing. */
	unlink(tmp);
	int in = open(s->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), out = -1;
	ssize_t n = in >= 0 ? read(in, buf, sizeof(buf)) : -1;
	if (in >= 0 && fstat(in, &st) == 0 && S_ISREG(st.st_mode) && n >= 0 &&
	    (out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) >= 0 &&
	    write(out, buf, (size_t)n) == n && fchmod(out, st.st_mode & 0666) == 0 && rename(tmp, s->path) == 0) {
		close(in);
		close(out);
		return 0;
	}
	/* No copy: the path goes until the new QEMU writes it. */
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	unlink(tmp);
	unlink(s->path);
	return 0;
}

void qu_pidfile_aside(const struct qu_ident *who, const char *pidfile)
{
	struct step s = { .path = pidfile };
	if (pidfile[0])
		as_user(who, aside_step, &s);
}

/* After the commit the spare link goes; after a rollback it is renamed back over the path
 * (keep_step does nothing when there is none). */
static int settle_step(void *arg)
{
	struct step *s = arg;
	char aside[PATH_MAX + 32];
	snprintf(aside, sizeof(aside), "%s%s", s->path, s->suffix);
	if (s->committed) {
		unlink(aside);
		return 0;
	}
	s->keep = 0;
	return keep_step(s);
}

void qu_pidfile_settle(const struct qu_ident *who, const char *pidfile, int committed)
{
	struct step s = { .path = pidfile, .suffix = QU_PIDFILE_ASIDE_SUFFIX, .committed = committed };
	if (pidfile[0])
		as_user(who, settle_step, &s);
}

void qu_rebound_aside(const struct qu_ident *who, const char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qu_keep_path(who, paths[i], QU_REBOUND_SUFFIX, 1);
}

/* The old QEMU's socket's link goes back over the path the new QEMU bound (or goes). */
void qu_rebound_settle(const struct qu_ident *who, const char *const *paths, size_t n, int committed)
{
	for (size_t i = 0; i < n; i++) {
		struct step s = { .path = paths[i], .suffix = QU_REBOUND_SUFFIX, .committed = committed };
		if (paths[i][0])
			as_user(who, settle_step, &s);
	}
}

static int forget_step(void *arg)
{
	const struct step *s = arg;
	if (unlink(s->path) < 0 && errno != ENOENT)
		qu_info("warning: cannot remove %s: %s", s->path, strerror(errno));
	return 0;
}

void qu_forget_paths(const struct qu_ident *who, const char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct step s = { .path = paths[i] };
		if (paths[i][0])
			as_user(who, forget_step, &s);
	}
}
