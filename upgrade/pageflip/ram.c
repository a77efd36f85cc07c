#include "upgrade/pageflip/ram.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

int qu_ram_dir_file(const char *mapped, const char *dir, const char *id)
{
	static const char deleted[] = " (deleted)";
	size_t d = strlen(dir), ml = strlen(mapped), il = strlen(id);
	while (d > 1 && dir[d - 1] == '/')
		d--;
	/* QEMU names it DIR/qemu_back_mem.ID.XXXXXX (mkstemp), with '/' in ID made '_'. */
	if (ml < d + 1 || strncmp(mapped, dir, d) || mapped[d] != '/')
		return 0;
	const char *name = mapped + d + 1;
	if (strncmp(name, "qemu_back_mem.", 14))
		return 0;
	name += 14;
	for (size_t i = 0; i < il; i++)
		if (name[i] != (id[i] == '/' ? '_' : id[i]))
			return 0;
	name += il;
	size_t rest = strlen(name);
	return rest == 1 + 6 + sizeof(deleted) - 1 && name[0] == '.' && !strchr(name + 1, '/') &&
	       !strcmp(name + 7, deleted);
}

/* The mapping of a file backend: the file itself, or, for a mem-path directory, the unlinked
 * file QEMU made in it (the same size as the block: several blocks may share a directory).
 * -1 when none. */
static long find_file_mapping(const struct qu_vm *vm, const struct qu_ram *ram, const struct mapped *m, size_t n,
			      int *is_dir)
{
	int fd;
	struct stat st;
	char p[PATH_MAX + 64], real[PATH_MAX];
	*is_dir = 0;
	if (sscanf(ram->backing, "/proc/self/fd/%d", &fd) == 1)
		snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)vm->pid, fd);
	else
		snprintf(p, sizeof(p), "%s", ram->backing);
	if (stat(p, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		*is_dir = 1;
		/* The kernel shows the path without symlinks. */
		const char *dir = realpath(ram->backing, real) ? real : ram->backing;
		for (size_t k = 0; k < n; k++)
			if (m[k].bytes == ram->size && qu_ram_dir_file(m[k].path, dir, ram->id))
				return (long)k;
		return -1;
	}
	for (size_t k = 0; k < n; k++)
		if (m[k].ino == st.st_ino && m[k].dev == st.st_dev)
			return (long)k;
	return -1;
}

static int match_file(struct qu_vm *vm, struct qu_ram *ram, struct mapped *m, size_t n)
{
	int dir;
	long k = find_file_mapping(vm, ram, m, n, &dir);
	if (k >= 0 && m[k].fd >= 0) {
		ram->old_fd = m[k].fd;
		if (dir)
			snprintf(ram->backing, sizeof(ram->backing), "%s", m[k].path);
		return 0;
	}
	if (dir)
		return qu_err(-ENOENT, "memory backend '%s': mem-path %s is a directory, and PID %d maps no "
			      "%llu-byte file QEMU made in it through a descriptor (qemu_back_mem.%s.*)", ram->id,
			      ram->backing, (int)vm->pid, (unsigned long long)ram->size, ram->id);
	return qu_err(-ENOENT, "memory backend '%s': PID %d does not map %s through a descriptor",
		      ram->id, (int)vm->pid, ram->backing);
}

/* hugetlbfs gives its page size as the block size of the mount; 0: not hugetlbfs. */
static uint64_t hugetlb_page(const char *path)
{
	struct statfs s;
	if (statfs(path, &s) < 0 || (unsigned long)s.f_type != (unsigned long)HUGETLBFS_MAGIC)
		return 0;
	return (uint64_t)s.f_bsize;
}

uint64_t qu_ram_default_hugepage(const char *meminfo)
{
	const char *h = meminfo ? strstr(meminfo, "\nHugepagesize:") : NULL;
	unsigned long long kb;
	if (!h || sscanf(h + 15, " %llu kB", &kb) != 1)
		return 0;
	return (uint64_t)kb << 10;
}

/* Which page size each block's memory comes in, so that a copy can keep it: a file backend
 * (-mem-path too) by the filesystem its file is on, looked at through the old QEMU's
 * descriptor where it has one; a memfd by its hugetlb= and hugetlbsize= (0: the default). */
static void find_page_sizes(struct qu_vm *vm, const struct mapped *m, size_t n)
{
	for (size_t i = 0; i < vm->nram; i++) {
		struct qu_ram *ram = &vm->ram[i];
		char p[PATH_MAX + 64];
		int dir;
		if (!strcmp(ram->qom_type, "memory-backend-memfd") && ram->hugetlb) {
			char *text = NULL;
			ram->page_size = ram->hugetlb_size;
			if (!ram->page_size && qu_read_file("/proc/meminfo", &text, NULL) == 0)
				ram->page_size = qu_ram_default_hugepage(text);
			free(text);
			if (!ram->page_size)
				ram->page_size = 2ULL << 20; /* x86's default, when meminfo does not say */
			continue;
		}
		if (strcmp(ram->qom_type, "memory-backend-file") || !ram->backing[0])
			continue;
		long k = find_file_mapping(vm, ram, m, n, &dir);
		if (k >= 0 && m[k].fd >= 0)
			snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)vm->pid, m[k].fd);
		else if (sscanf(ram->backing, "/proc/self/fd/%d", &dir) == 1)
			snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)vm->pid, dir);
		else
			snprintf(p, sizeof(p), "%s", ram->backing);
		ram->page_size = hugetlb_page(p);
	}
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
	find_page_sizes(vm, m, n);
	r = match_memfds(vm, m, n);
	for (size_t i = 0; r == 0 && i < vm->nram; i++)
		if (vm->ram[i].share && !strcmp(vm->ram[i].qom_type, "memory-backend-file"))
			r = match_file(vm, &vm->ram[i], m, n);
	free(m);
	return r;
}
