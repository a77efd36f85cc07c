#include "upgrade/paths.h"
#include "upgrade/log.h"

#include <errno.h>
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
	} else if (rename(tmp, path) < 0 && errno != ENOENT) {
		qu_info("warning: cannot restore %s: %s", path, strerror(errno));
	}
}

void qu_keep_paths(const char *const *paths, size_t n, int keep)
{
	for (size_t i = 0; i < n; i++)
		qu_keep_path(paths[i], QU_KEEP_SUFFIX, keep);
}

void qu_pidfile_aside(const char *pidfile)
{
	if (!pidfile[0])
		return;
	qu_keep_path(pidfile, QU_PIDFILE_ASIDE_SUFFIX, 1);
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
