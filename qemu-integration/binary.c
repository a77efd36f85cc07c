#include "qemu-integration/binary.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int qu_run_capture(const char *path, char *const *argv, char *const *envp, uint64_t deadline_us,
		   char *out, size_t len)
{
	return qu_run_capture_as(path, argv, envp, (uid_t)-1, (gid_t)-1, deadline_us, out, len);
}

int qu_run_capture_as(const char *path, char *const *argv, char *const *envp, uid_t uid, gid_t gid,
		      uint64_t deadline_us, char *out, size_t len)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (uid != (uid_t)-1 && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
					 setresuid(uid, uid, uid) < 0))
			_exit(126);
		extern char **environ;
		execve(path, argv, envp ? envp : environ);
		_exit(127);
	}
	close(p[1]);
	size_t used = 0;
	int r = 0;
	for (;;) {
		int pr = qu_poll_one(p[0], POLLIN, deadline_us);
		if (pr < 0) {
			r = pr;
			break;
		}
		char sink[4096];
		char *dst = used + 1 < len ? out + used : sink;
		size_t room = used + 1 < len ? len - 1 - used : sizeof(sink);
		ssize_t n = read(p[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst == out + used)
			used += (size_t)n;
	}
	out[used] = '\0';
	close(p[0]);
	int status;
	if (r < 0)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (r < 0)
		return r;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What a binary printed for one probe, remembered per (path, inode, mtime): `--all` probes
 * each distinct binary once in the parent, and the upgrades it forks inherit the answers
 * instead of starting that QEMU twice each (a third of an upgrade's time on a busy host). */
struct probe_memo {
	char path[PATH_MAX];
	const char *what;
	struct stat st;
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

/* Runs `path what...` (what: "--version" or "-machine help") or answers from the memo.
 * Returns the exit status or -errno; *out stays owned by the memo. */
static int probe(const char *path, const char *what, char *const *envp, uint64_t deadline_us,
		 const char **out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	for (size_t i = 0; i < nmemo; i++) {
		if (!strcmp(memo[i].path, path) && memo[i].what == what && same_file(&memo[i].st, &st)) {
			*out = memo[i].out;
			return memo[i].status;
		}
	}
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	char *argv[4] = { (char *)path, (char *)what, NULL, NULL };
	if (!strcmp(what, "-machine help")) {
		argv[1] = (char *)"-machine";
		argv[2] = (char *)"help";
	}
	int r = qu_run_capture(path, argv, envp, deadline_us, buf, cap);
	if (r < 0) {
		free(buf);
		return r;
	}
	struct probe_memo *m = &memo[nmemo < 16 ? nmemo++ : 15];
	if (m->out && m == &memo[15])
		free(m->out);
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->what = what;
	m->st = st;
	m->status = r;
	m->out = buf;
	*out = buf;
	return r;
}

static const char probe_version[] = "--version";
static const char probe_machines[] = "-machine help";

int qu_binary_probe(const char *path, char *const *envp, uint64_t deadline_us, struct qu_binary *b)
{
	struct stat st;
	const char *out;
	memset(b, 0, sizeof(*b));
	snprintf(b->path, sizeof(b->path), "%s", path);
	if (stat(path, &st) < 0)
		return qu_err(-errno, "new binary %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
		return qu_err(-EACCES, "new binary %s is not an executable file", path);
	int r = probe(path, probe_version, envp, deadline_us, &out);
	if (r < 0)
		return qu_err(r, "new binary %s: cannot run it: %s", path, strerror(-r));
	const char *v = strstr(out, "QEMU emulator version ");
	if (r != 0 || !v || sscanf(v + 22, "%d.%d.%d", &b->ver[0], &b->ver[1], &b->ver[2]) < 2)
		return qu_err(-EINVAL, "new binary %s is not QEMU: `%s --version` did not print "
			      "\"QEMU emulator version\"", path, path);
	const char *eol = strchr(v, '\n');
	snprintf(b->version_line, sizeof(b->version_line), "%.*s", eol ? (int)(eol - v) : (int)strlen(v), v);
	return 0;
}

int qu_binary_has_machine(const struct qu_binary *b, char *const *envp, const char *machine,
			  uint64_t deadline_us)
{
	const char *out;
	int r = probe(b->path, probe_machines, envp, deadline_us, &out);
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
