#include "upgrade/fdpass/kinds.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/log.h"
#include "upgrade/ptyrelay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* glibc 2.36 has MFD_HUGETLB but not the size shift; <linux/memfd.h> would redefine the rest. */
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif
#include <unistd.h>

/* The default: the old QEMU's own descriptor, through its pidfd. */
static int take_getfd(const struct qu_carried *c, struct qu_take_from *from)
{
	int fd = qu_pidfd_getfd(from->pidfd, c->old_fd);
	if (fd < 0)
		return qu_err(fd, "cannot take %s (fd %d) from PID %d: %s", c->name, c->old_fd, (int)from->pid,
			      strerror(-fd));
	return fd;
}

/* Guest RAM: the old QEMU's memfd or shared file, or, converted RAM (no old descriptor), a
 * fresh memfd the migration fills. */
static int take_ram(const struct qu_carried *c, struct qu_take_from *from)
{
	if (c->old_fd >= 0)
		return take_getfd(c, from);
	/* RAM on huge pages is copied into huge pages of the same size: the page size encoded as
	 * its log2 in the flags (memfd_create(2)). */
	unsigned flags = MFD_CLOEXEC;
	if (c->page_size) {
		if (c->page_size & (c->page_size - 1))
			return qu_err(-EINVAL, "huge page size %llu is not a power of two", c->page_size);
		flags |= MFD_HUGETLB | ((unsigned)__builtin_ctzll(c->page_size) << MFD_HUGE_SHIFT);
	}
	int fd = memfd_create("memory-backend-memfd", flags);
	if (fd < 0 || ftruncate(fd, (off_t)c->size) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return qu_err(-e, "cannot make a %llu-byte memfd%s for the guest's RAM: %s", c->size,
			      c->page_size ? " on huge pages" : "", strerror(e));
	}
	return fd;
}

/* A pty: its master goes to a relay process, and the new QEMU gets a socket to the relay. */
static int take_pty(const struct qu_carried *c, struct qu_take_from *from)
{
	int master = take_getfd(c, from), sv[2], go[2];
	if (master < 0)
		return master;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = errno;
		close(master);
		return qu_err(-e, "socketpair: %s", strerror(e));
	}
	if (pipe2(go, O_CLOEXEC) < 0) {
		int e = errno;
		close(master);
		close(sv[0]);
		close(sv[1]);
		return qu_err(-e, "pipe: %s", strerror(e));
	}
	int r = qu_ptyrelay_start(master, sv[0], go[0], from->ctx);
	close(master);
	close(sv[0]);
	close(go[0]);
	from->relay_go = go[1];
	if (r < 0) {
		close(sv[1]);
		return r;
	}
	return sv[1];
}

/* The new QEMU becomes its owner (VHOST_SET_OWNER) when it sets the tap up. */
static int take_vhost(const struct qu_carried *c, struct qu_take_from *from)
{
	int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	return fd < 0 ? qu_err(-errno, "cannot open /dev/vhost-net for %s: %s", c->name, strerror(errno)) : fd;
}

/* Namespaces and directories by PID: the pin check after the harvest proves they were the
 * old QEMU's. */
static int take_by_pid(const struct qu_carried *c, struct qu_take_from *from)
{
	char path[sizeof(c->name) + 32];
	int dir = c->kind == QU_FD_DIRECTORY;
	snprintf(path, sizeof(path), "/proc/%d/%s%s", (int)from->pid, dir ? "" : "ns/", c->name);
	int fd = open(path, dir ? O_PATH | O_DIRECTORY | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
	return fd < 0 ? qu_err(-errno, "cannot open %s: %s", path, strerror(errno)) : fd;
}

static const char ITS_END_STAYS[] = "its other end stays on this host: use a UNIX socket server chardev instead";

static const struct qu_fd_kind_ops kinds[] = {
	[QU_FD_STDIO] = { .name = "stdio", .use = QU_FD_USE_INSTALL },
	[QU_FD_CONTROL] = { .name = "control", .use = QU_FD_USE_INSTALL, .made_at_launch = 1 },
	[QU_FD_MIGRATION] = { .name = "migration", .use = QU_FD_USE_INSTALL, .made_at_launch = 1 },
	[QU_FD_RAM] = { .name = "ram", .use = QU_FD_USE_INSTALL, .take = take_ram },
	[QU_FD_LISTENER] = { .name = "listener", .use = QU_FD_USE_INSTALL },
	[QU_FD_TAP] = { .name = "tap", .use = QU_FD_USE_INSTALL },
	[QU_FD_NAMESPACE] = { .name = "namespace", .use = QU_FD_USE_ENTER, .take = take_by_pid,
			      .not_remote = "a namespace of this host cannot follow the VM to another host" },
	[QU_FD_VHOST] = { .name = "vhost", .use = QU_FD_USE_INSTALL, .take = take_vhost },
	[QU_FD_PTY] = { .name = "pty", .use = QU_FD_USE_INSTALL, .take = take_pty, .not_remote = ITS_END_STAYS },
	[QU_FD_SOCKET] = { .name = "socket", .use = QU_FD_USE_INSTALL, .not_remote = ITS_END_STAYS },
	[QU_FD_PROGRAM] = { .name = "program", .use = QU_FD_USE_EXEC, .made_at_launch = 1 },
	[QU_FD_DIRECTORY] = { .name = "directory", .use = QU_FD_USE_DIRECTORY, .take = take_by_pid,
			      .not_remote = "a directory of this host cannot follow the VM to another host" },
	[QU_FD_FDSET] = { .name = "fdset", .use = QU_FD_USE_INSTALL,
			  .not_remote = "a descriptor passed in by the VM's manager (-add-fd, or QMP add-fd at run time) stays on this host" },
	[QU_FD_PIDFILE] = { .name = "pidfile", .use = QU_FD_USE_INSTALL, .made_at_launch = 1,
			    .not_remote = "the manager's PID file is this host's" },
};

const struct qu_fd_kind_ops *qu_fd_kind(unsigned kind)
{
	return kind < sizeof(kinds) / sizeof(kinds[0]) && kinds[kind].name ? &kinds[kind] : NULL;
}

const char *qu_fd_kind_name(unsigned kind)
{
	const struct qu_fd_kind_ops *k = qu_fd_kind(kind);
	return k ? k->name : "?";
}

int qu_fd_take(const struct qu_carried *c, struct qu_take_from *from)
{
	const struct qu_fd_kind_ops *k = qu_fd_kind(c->kind);
	if (!k)
		return qu_err(-EINVAL, "%s: unknown descriptor kind %u", c->name, c->kind);
	from->relay_go = -1;
	return k->take ? k->take(c, from) : take_getfd(c, from);
}
