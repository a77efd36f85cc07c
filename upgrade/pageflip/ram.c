#include "upgrade/pageflip/ram.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* A backend's mem-path, opened (O_PATH: nothing is read) as the VM's user and inside its
 * QEMU's root, never walked as root: the VM's owner chose the path and may have put links or
 * a FUSE mount on it, and a private mount namespace (libvirt's) has its own view of it. The
 * directory test goes through "PATH/.", so a link to a directory still leads there, under the
 * kernel's checks for that user. A descriptor, *is_dir set, or -errno. */
static int open_mem_path(const struct qu_vm *vm, const char *path, int *is_dir)
{
	char p[PATH_MAX + 96];
	struct qu_ident who;
	if (path[0] != '/')
		return -EINVAL;
	int n = snprintf(p, sizeof(p), "/proc/%d/root%s/.", (int)vm->pid, path);
	if (n < 0 || (size_t)n >= sizeof(p))
		return -ENAMETOOLONG;
	qu_ident_of(&vm->ctx, &who);
	int fd = qu_open_as(&who, p, O_PATH | O_DIRECTORY, 0);
	*is_dir = fd >= 0;
	if (fd >= 0)
		return fd;
	p[n - 2] = '\0';
	return qu_open_as(&who, p, O_PATH, 0);
}

/* Whether a mapped path names a file QEMU made for backend id in some directory. */
static int made_for(const char *mapped, const char *id)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(mapped, '/');
	if (!slash || (size_t)(slash - mapped) >= sizeof(dir))
		return 0;
	memcpy(dir, mapped, (size_t)(slash - mapped));
	dir[slash - mapped] = '\0';
	return qu_ram_dir_file(mapped, dir[0] ? dir : "/", id);
}

/* The mapping of a file backend: the file itself, or, for a mem-path directory, the unlinked
 * file QEMU made in it (named for the block, the same size, on the directory's filesystem:
 * several blocks may share a directory). Also the page size of that filesystem (0: not
 * hugetlbfs). -1 when none. */
static long find_file_mapping(const struct qu_vm *vm, const struct qu_ram *ram, const struct mapped *m, size_t n,
			      int *is_dir, uint64_t *page)
{
	int fd;
	struct stat st;
	struct statfs sf;
	char p[64];
	*is_dir = 0;
	*page = 0;
	if (sscanf(ram->backing, "/proc/self/fd/%d", &fd) == 1) {
		/* QEMU's own descriptor: a link the kernel keeps, not a path anyone chose. */
		snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)vm->pid, fd);
		fd = open(p, O_PATH | O_CLOEXEC);
	} else {
		fd = open_mem_path(vm, ram->backing, is_dir);
	}
	if (fd < 0)
		return -1;
	int ok = fstat(fd, &st) == 0;
	if (ok && fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)HUGETLBFS_MAGIC)
		*page = (uint64_t)sf.f_bsize;
	close(fd);
	if (!ok)
		return -1;
	for (size_t k = 0; k < n; k++) {
		if (*is_dir ? m[k].dev == st.st_dev && m[k].bytes == ram->size && made_for(m[k].path, ram->id)
			    : m[k].ino == st.st_ino && m[k].dev == st.st_dev)
			return (long)k;
	}
	return -1;
}

static int match_file(struct qu_vm *vm, struct qu_ram *ram, struct mapped *m, size_t n)
{
	int dir;
	uint64_t page;
	long k = find_file_mapping(vm, ram, m, n, &dir, &page);
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
		char p[64];
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
		uint64_t page;
		long k = find_file_mapping(vm, ram, m, n, &dir, &page);
		ram->page_size = page;
		if (k >= 0 && m[k].fd >= 0) {
			/* The file QEMU has open says best what its memory is. */
			snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)vm->pid, m[k].fd);
			ram->page_size = hugetlb_page(p);
		}
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
		int fd = qu_fdtab_by_inode(&vm->fds, m[k].dev, m[k].ino);
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
