/* What a QEMU binary on disk is and can do, asked by running it (it never sees the VM).
 *
 * A binary is run only once it is known that nobody but root (or, for a VM user's own build,
 * that user) could have changed it: the file and every directory above it are theirs and
 * writable by no one else (upgrade/safepath.h walks the path). What is checked is what runs:
 * an O_PATH descriptor of the file, executed with execveat(), never the path again. A probe
 * runs as the VM's user (or nobody), with no_new_privs and a fixed environment: never the
 * VM's, whose LD_PRELOAD would otherwise load into whoever runs the probe. */
#ifndef QU_BINARY_H
#define QU_BINARY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "upgrade/run.h"

struct qu_binary {
	char path[PATH_MAX];
	int ver[3];
	char version_line[256];
	dev_t dev;            /* the file that was checked and probed */
	ino_t ino;
	uid_t owner;          /* root, or the VM user whose own build it is */
	uid_t probe_uid;      /* who ran the probes */
	gid_t probe_gid;
};

/* Opens path for running it: -errno with a message naming the file or directory another
 * user could change. allowed_uid: a user besides root who may own it ((uid_t)-1: none).
 * Returns an O_PATH descriptor; *owner gets the file's owner. */
int qu_binary_open(const char *path, uid_t allowed_uid, uid_t *owner, dev_t *dev, ino_t *ino);
/* The same file again, for running it: -ESTALE when path leads to another file than b. */
int qu_binary_reopen(const struct qu_binary *b);

/* Checks path is a QEMU system emulator nobody but root or allowed_uid could change, and reads
 * its version, running it as uid:gid. */
int qu_binary_probe(const char *path, uid_t allowed_uid, uid_t uid, gid_t gid, uint64_t deadline_us,
		    struct qu_binary *b);
/* 1 when `path -machine help` lists machine, 0 when not, -errno on failure. */
int qu_binary_has_machine(const struct qu_binary *b, const char *machine, uint64_t deadline_us);

/* Whether the binary takes option -opt with an argument: 1, 0, or -errno (-EINVAL: an option
 * this does not know how to ask about: "id", Proxmox's pve-qemu-kvm's own, or "name"). */
int qu_binary_takes_option(const struct qu_binary *b, const char *opt, uint64_t deadline_us);

#endif
