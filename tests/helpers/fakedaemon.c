/* fakedaemon: a stand-in for libvirt's daemon in tests/unit/test-libvirtd.c, copied to a file
 * named libvirtd or virtqemud (upgrade/libvirtd.c knows a daemon by its executable's name).
 * Like libvirtd it writes its PID to --pid-file FILE, and with -d (--daemon) it detaches: the
 * parent exits 0 once the child has written the file. Then it waits; SIGTERM ends it (the
 * default action). Other arguments are ignored (a test gives it a long command line).
 *
 *     libvirtd [-d] --pid-file FILE [ARG...]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_pid(const char *path)
{
	char text[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
	int ok = write(fd, text, (size_t)n) == n;
	return close(fd) == 0 && ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *pidfile = NULL;
	int detach = 0, ready[2];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-d") || !strcmp(argv[i], "--daemon"))
			detach = 1;
		else if (!strcmp(argv[i], "--pid-file") && i + 1 < argc)
			pidfile = argv[++i];
	}
	if (!pidfile) {
		fprintf(stderr, "usage: %s [-d] --pid-file FILE\n", argv[0]);
		return 2;
	}
	if (detach) {
		if (pipe(ready) < 0)
			return 1;
		pid_t child = fork();
		if (child < 0)
			return 1;
		if (child > 0) {
			char c;
			close(ready[1]);
			return read(ready[0], &c, 1) == 1 ? 0 : 1;
		}
		close(ready[0]);
		setsid();
	}
	if (write_pid(pidfile) < 0)
		return 1;
	if (detach) {
		if (write(ready[1], "", 1) != 1)
			return 1;
		close(ready[1]);
	}
	for (;;)
		pause();
}
