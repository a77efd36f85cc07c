/* What a hostile VM owner puts in LD_PRELOAD: a library whose constructor records which user
 * loaded it, in <its own path>.log (made writable for all by the test). A line with uid 0
 * means the VM's environment reached a root process. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void record(void) __attribute__((constructor));

static void record(void)
{
	Dl_info info;
	char log[4200], comm[64] = "", line[256];
	if (!dladdr((void *)record, &info) || !info.dli_fname)
		return;
	snprintf(log, sizeof(log), "%s.log", info.dli_fname);
	int c = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (c >= 0) {
		ssize_t n = read(c, comm, sizeof(comm) - 1);
		comm[n > 0 ? n : 0] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
		close(c);
	}
	int fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "uid=%u euid=%u pid=%d comm=%s\n", (unsigned)getuid(),
			 (unsigned)geteuid(), (int)getpid(), comm);
	if (write(fd, line, (size_t)n) < 0)
		n = 0;
	close(fd);
}
