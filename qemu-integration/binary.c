#include "qemu-integration/binary.h"
#include "qemu-integration/probecache.h"
#include "upgrade/run.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int qu_binary_open(const char *path, uid_t allowed, uid_t *owner, dev_t *dev, ino_t *ino)
{
	struct qu_safe_dir d;
	struct stat st;
	int r = qu_safe_open_dir(path, allowed, 1, &d);
	if (r < 0)
		return r;
	if (!d.trusted) {
		r = qu_err(-EPERM, "%s: %s, so another user could change what runs: refused (install it as root, in "
			   "directories only root can write)", path, d.doubt);
		qu_safe_close(&d);
		return r;
	}
	int fd = qu_safe_open(&d, O_PATH);
	qu_safe_close(&d);
	if (fd < 0)
		return qu_err(fd, "%s: %s", path, strerror(-fd));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		r = qu_err(-EACCES, "%s is not an executable file", path);
	else if (st.st_uid != 0 && st.st_uid != allowed)
		r = qu_err(-EPERM, "%s belongs to uid %u: another user could change what runs: refused (install it "
			   "as root)", path, (unsigned)st.st_uid);
	else if (st.st_mode & 022)
		r = qu_err(-EPERM, "%s can be written by group or others: refused (chmod go-w it)", path);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (owner)
		*owner = st.st_uid;
	if (dev)
		*dev = st.st_dev;
	if (ino)
		*ino = st.st_ino;
	return fd;
}

int qu_binary_reopen(const struct qu_binary *b)
{
	dev_t dev;
	ino_t ino;
	int fd = qu_binary_open(b->path, b->owner, NULL, &dev, &ino);
	if (fd >= 0 && (dev != b->dev || ino != b->ino)) {
		close(fd);
		return qu_err(-ESTALE, "%s was replaced since it was probed: run the upgrade again", b->path);
	}
	return fd;
}

/* What a binary printed for one probe, remembered per (file, who ran it): `--all` probes each
 * distinct binary once in the parent, and the upgrades it forks inherit the answers instead
 * of starting that QEMU twice each (a third of an upgrade's time on a busy host). Per user:
 * an answer one VM's user could have tampered with (the probe runs as that user) is never
 * given to another VM. */
struct probe_memo {
	const char *what;
	struct stat st;
	uid_t uid;
	gid_t gid;
	int status;
	char *out;
};
static struct probe_memo memo[16];
static size_t nmemo;

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Runs `binary what...` (what: "--version" or "-machine help") or answers from the memo.
 * Returns the exit status or -errno; *out stays owned by the memo. */
static int probe(const struct qu_binary *b, const char *what, uint64_t deadline_us, const char **out)
{
	struct stat st;
	int fd = qu_binary_reopen(b);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	for (size_t i = 0; i < nmemo; i++) {
		if (memo[i].what == what && memo[i].uid == b->probe_uid && memo[i].gid == b->probe_gid &&
		    same_file(&memo[i].st, &st)) {
			close(fd);
			*out = memo[i].out;
			return memo[i].status;
		}
	}
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	int r;
	if (qu_probe_cache_get(what, b->probe_uid, b->probe_gid, &st, &r, buf, cap) == 0) {
		close(fd);
	} else {
		/* what: up to three words, split at spaces. */
		char words[64], *save = NULL, *argv[5] = { (char *)b->path, NULL, NULL, NULL, NULL };
		snprintf(words, sizeof(words), "%s", what);
		for (size_t k = 1; k < 4; k++)
			argv[k] = strtok_r(k == 1 ? words : NULL, " ", &save);
		r = qu_run_capture(b->path, fd, argv, b->probe_uid, b->probe_gid, deadline_us, buf, cap);
		close(fd);
		if (r < 0) {
			free(buf);
			return r;
		}
		qu_probe_cache_put(what, b->probe_uid, b->probe_gid, &st, r, buf);
	}
	struct probe_memo *m = &memo[nmemo < 16 ? nmemo++ : 15];
	if (m->out && m == &memo[15])
		free(m->out);
	m->what = what;
	m->st = st;
	m->uid = b->probe_uid;
	m->gid = b->probe_gid;
	m->status = r;
	m->out = buf;
	*out = buf;
	return r;
}

static const char probe_version[] = "--version";
static const char probe_machines[] = "-machine help";
/* QEMU reads its options in order: one it does not know stops it before --version. */
static const struct {
	const char *opt, *probe;
} option_probes[] = {
	{ "id", "-id 0 --version" },
	{ "name", "-name 0 --version" },
};

int qu_binary_probe(const char *path, uid_t allowed, uid_t uid, gid_t gid, uint64_t deadline_us,
		    struct qu_binary *b)
{
	const char *out;
	memset(b, 0, sizeof(*b));
	snprintf(b->path, sizeof(b->path), "%s", path);
	b->probe_uid = uid;
	b->probe_gid = gid;
	int fd = qu_binary_open(path, allowed, &b->owner, &b->dev, &b->ino);
	if (fd < 0) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", qu_err_msg());
		return qu_err(fd, "new binary %s", why);
	}
	close(fd);
	int r = probe(b, probe_version, deadline_us, &out);
	if (r < 0)
		return qu_err(r, "new binary %s: cannot run it: %s", path, r == -ESTALE ? qu_err_msg() : strerror(-r));
	const char *v = strstr(out, "QEMU emulator version ");
	if (r != 0 || !v || sscanf(v + 22, "%d.%d.%d", &b->ver[0], &b->ver[1], &b->ver[2]) < 2)
		return qu_err(-EINVAL, "new binary %s is not QEMU: `%s --version` did not print "
			      "\"QEMU emulator version\"%s", path, path, r == 126 ? " (it could not run as the VM's "
			      "user)" : "");
	const char *eol = strchr(v, '\n');
	snprintf(b->version_line, sizeof(b->version_line), "%.*s", eol ? (int)(eol - v) : (int)strlen(v), v);
	return 0;
}

int qu_binary_has_machine(const struct qu_binary *b, const char *machine, uint64_t deadline_us)
{
	const char *out;
	int r = probe(b, probe_machines, deadline_us, &out);
	if (r > 0)
		return -EIO;
	if (r < 0)
		return r;
	/* One machine per line: "<name> <description>"; aliases appear as their own line. */
	size_t ml = strlen(machine);
	for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (ml && !strncmp(line, machine, ml) && (line[ml] == ' ' || line[ml] == '\n'))
			return 1;
	return 0;
}

int qu_binary_takes_option(const struct qu_binary *b, const char *opt, uint64_t deadline_us)
{
	const char *out;
	for (size_t i = 0; i < sizeof(option_probes) / sizeof(option_probes[0]); i++) {
		if (strcmp(option_probes[i].opt, opt))
			continue;
		int r = probe(b, option_probes[i].probe, deadline_us, &out);
		if (r < 0)
			return r;
		return r == 0 && strstr(out, "QEMU emulator version ") != NULL;
	}
	return -EINVAL;
}
