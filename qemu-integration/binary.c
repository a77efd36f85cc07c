#include "qemu-integration/binary.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
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

int qu_binary_probe(const char *path, char *const *envp, uint64_t deadline_us, struct qu_binary *b)
{
	struct stat st;
	char out[4096];
	memset(b, 0, sizeof(*b));
	snprintf(b->path, sizeof(b->path), "%s", path);
	if (stat(path, &st) < 0)
		return qu_err(-errno, "new binary %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
		return qu_err(-EACCES, "new binary %s is not an executable file", path);
	char *argv[] = { (char *)path, (char *)"--version", NULL };
	int r = qu_run_capture(path, argv, envp, deadline_us, out, sizeof(out));
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
	size_t cap = 1 << 16;
	char *out = malloc(cap);
	if (!out)
		return -ENOMEM;
	char *argv[] = { (char *)b->path, (char *)"-machine", (char *)"help", NULL };
	int r = qu_run_capture(b->path, argv, envp, deadline_us, out, cap);
	if (r == 0) {
		/* One machine per line: "<name> <description>"; aliases appear as their own line. */
		r = 0;
		size_t ml = strlen(machine);
		for (char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
			if (!strncmp(line, machine, ml) && (line[ml] == ' ' || line[ml] == '\n'))
				r = 1;
	} else if (r > 0) {
		r = -EIO;
	}
	free(out);
	return r;
}
