/* What a QEMU binary on disk is and can do, asked by running it (it never sees the VM). */
#ifndef QU_BINARY_H
#define QU_BINARY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qu_binary {
	char path[PATH_MAX];
	int ver[3];
	char version_line[256];
};

/* Checks path is an executable QEMU system emulator and reads its version. envp: the VM's
 * environment (module directories), or NULL. */
int qu_binary_probe(const char *path, char *const *envp, uint64_t deadline_us, struct qu_binary *b);
/* 1 when `path -machine help` lists machine, 0 when not, -errno on failure. */
int qu_binary_has_machine(const struct qu_binary *b, char *const *envp, const char *machine,
			  uint64_t deadline_us);
/* Runs path with args; collects up to len-1 bytes of stdout+stderr. Returns the exit status
 * (0-255) or -errno. */
int qu_run_capture(const char *path, char *const *argv, char *const *envp, uint64_t deadline_us,
		   char *out, size_t len);
/* The same as user uid and group gid (no supplementary groups); -1: as we are. */
int qu_run_capture_as(const char *path, char *const *argv, char *const *envp, uid_t uid, gid_t gid,
		      uint64_t deadline_us, char *out, size_t len);

#endif
