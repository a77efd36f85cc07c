#include "upgrade/pageflip/ram.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MAX_MAPPED 64

/* One file or memfd mapped by the process, its mapped bytes summed over its VMAs (a
 * backend's VMA can be split by madvise). */
struct mapped {
	dev_t dev;
	ino_t ino;
	uint64_t bytes;
	int fd;
	char path[PATH_MAX];
};

static int read_maps(pid_t pid, struct mapped *m, size_t *n)
{
	char file[64], *text = NULL, *save = NULL;
	snprintf(file, sizeof(file), "/proc/%d/maps", (int)pid);
	int r = qu_read_file(file, &text, NULL);
	if (r < 0)
		return r;
	*n = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long lo, hi, ino;
		unsigned maj, mnr;
		int pathpos = 0;
		if (sscanf(line, "%llx-%llx %*s %*s %x:%x %llu %n", &lo, &hi, &maj, &mnr, &ino, &pathpos) < 5 ||
		    ino == 0 || !pathpos || line[pathpos] != '/')
			continue;
		size_t k;
		for (k = 0; k < *n; k++)
			if (m[k].ino == ino && m[k].dev == makedev(maj, mnr))
				break;
		if (k == *n) {
			if (*n == MAX_MAPPED)
				continue;
			memset(&m[k], 0, sizeof(m[k]));
			m[k].dev = makedev(maj, mnr);
			m[k].ino = ino;
			m[k].fd = -1;
			snprintf(m[k].path, sizeof(m[k].path), "%s", line + pathpos);
			(*n)++;
		}
		m[k].bytes += hi - lo;
	}
	free(text);
	return 0;
}

static int is_memfd_backend(const struct mapped *m)
{
	return !strncmp(m->path, QU_MEMFD_BACKEND_NAME, strlen(QU_MEMFD_BACKEND_NAME));
}

/* memfd backends carry no path: pair them in command-line order with the mapped memfds in
 * descriptor order (QEMU creates both in that order), and insist that the sizes agree. */
static int match_memfds(struct qu_vm *vm, struct mapped *m, size_t n)
{
	size_t used[MAX_MAPPED] = { 0 };
	for (size_t i = 0; i < vm->nram; i++) {
		struct qu_ram *ram = &vm->ram[i];
		if (!ram->share || strcmp(ram->qom_type, "memory-backend-memfd"))
			continue;
		long best = -1;
		for (size_t k = 0; k < n; k++) {
			if (used[k] || !is_memfd_backend(&m[k]) || m[k].fd < 0 || m[k].bytes != ram->size)
				continue;
			if (best < 0 || m[k].fd < m[best].fd)
				best = (long)k;
		}
		if (best < 0)
			return qu_err(-ENOENT, "cannot find the memfd of memory backend '%s' (%llu bytes) in "
				      "/proc/%d/maps", ram->id, (unsigned long long)ram->size, (int)vm->pid);
		used[best] = 1;
		ram->old_fd = m[best].fd;
		snprintf(ram->backing, sizeof(ram->backing), "%s", m[best].path);
	}
	return 0;
}

static int match_file(struct qu_vm *vm, struct qu_ram *ram, struct mapped *m, size_t n)
{
	int fd;
	struct stat st;
	if (sscanf(ram->backing, "/proc/self/fd/%d", &fd) == 1) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)vm->pid, fd);
		if (stat(p, &st) < 0)
			return qu_err(-ENOENT, "memory backend '%s': mem-path %s is not open in PID %d",
				      ram->id, ram->backing, (int)vm->pid);
	} else if (stat(ram->backing, &st) < 0 || !S_ISREG(st.st_mode)) {
		return qu_err(-ENOENT, "memory backend '%s': mem-path %s is not a regular file (a "
			      "directory makes QEMU create an unnamed file that cannot be found)",
			      ram->id, ram->backing);
	}
	for (size_t k = 0; k < n; k++) {
		if (m[k].ino != st.st_ino || m[k].dev != st.st_dev)
			continue;
		if (m[k].fd < 0)
			break;
		ram->old_fd = m[k].fd;
		return 0;
	}
	return qu_err(-ENOENT, "memory backend '%s': PID %d does not map %s through a descriptor",
		      ram->id, (int)vm->pid, ram->backing);
}

int qu_ram_find_fds(struct qu_vm *vm)
{
	struct mapped *m = calloc(MAX_MAPPED, sizeof(*m));
	size_t n;
	if (!m)
		return -ENOMEM;
	int r = read_maps(vm->pid, m, &n);
	if (r < 0) {
		free(m);
		return qu_err(r, "cannot read /proc/%d/maps: %s", (int)vm->pid, strerror(-r));
	}
	for (size_t k = 0; k < n; k++) {
		int fd = qu_proc_fd_by_inode(vm->pid, m[k].dev, m[k].ino);
		m[k].fd = fd >= 0 ? fd : -1;
	}
	r = match_memfds(vm, m, n);
	for (size_t i = 0; r == 0 && i < vm->nram; i++)
		if (vm->ram[i].share && !strcmp(vm->ram[i].qom_type, "memory-backend-file"))
			r = match_file(vm, &vm->ram[i], m, n);
	free(m);
	return r;
}
