#include "remote/recreate.h"
#include "upgrade/fdpass/carried.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/run.h"
#include "upgrade/safepath.h"
#include "upgrade/stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *qu_find_qemu_img(char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/qemu-img", dir);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* path's directory, walked by root from / with no link followed but root's own (as the policy
 * walked it: remote/policy.h), kept open, and the path to its entry through that descriptor
 * (/proc/self/fd/N/NAME, in via): a file opened there as the VM's user is in that very
 * directory, whatever link the user puts on the way after the check. */
static int pin_dir(const char *path, struct qu_safe_dir *d, char *via, size_t len)
{
	int r = qu_safe_open_dir(path, (uid_t)-1, 0, d);
	if (r < 0)
		return r;
	if ((size_t)snprintf(via, len, "/proc/self/fd/%d/%s", d->fd, d->name) >= len) {
		qu_safe_close(d);
		return qu_err(-ENAMETOOLONG, "%s: too long", path);
	}
	return 0;
}

/* open() as the VM's user in path's pinned directory (never through a link: the last
 * component with O_NOFOLLOW, the rest walked by pin_dir). */
static int open_pinned(const struct qu_ident *who, const char *path, int flags, mode_t mode)
{
	char via[PATH_MAX];
	struct qu_safe_dir d;
	int r = pin_dir(path, &d, via, sizeof(via));
	if (r < 0)
		return r;
	r = qu_open_as(who, via, flags, mode);
	qu_safe_close(&d);
	return r;
}

/* A new file of the VM's user, mode 0600, that did not exist: made as that user (so only
 * where that user may make files, and never through a link), never over an existing file
 * (another VM's disk, or this one's if the storage is shared after all). flags: O_WRONLY and
 * perhaps O_APPEND. Returns the open descriptor. */
static int create_new(const struct qu_ident *who, struct qu_session_record *made, const char *path,
		      const char *what, int flags)
{
	int fd = open_pinned(who, path, flags | O_CREAT | O_EXCL | O_NOCTTY, 0600);
	if (fd == -EEXIST)
		return qu_err(-EEXIST, "%s exists on this host already: the %s would overwrite it; remove it%s", path,
			      what, strcmp(what, "disk copy") ? "" : ", or pass --shared-storage if it is the same storage");
	if (fd < 0)
		return qu_err(fd, "cannot create %s as uid %u (the VM's user): %s", path, (unsigned)who->uid,
			      strerror(-fd));
	qu_session_record_add_file(made, path, 0);
	return fd;
}

/* Created empty here, then formatted by qemu-img running as the VM's user, who can touch
 * nothing the VM could not. */
int qu_recreate_image(const struct qu_ident *who, struct qu_session_record *made, const char *path,
		      const char *format, unsigned long long size, const char *backing, const char *backing_format,
		      uint64_t deadline_us)
{
	char img[PATH_MAX], bytes[32], out[1024];
	if (!qu_find_qemu_img(img, sizeof(img)))
		return qu_err(-ENOENT, "qemu-img is not installed on this host: it makes the images to copy the disks into");
	int fd = create_new(who, made, path, "disk copy", O_WRONLY);
	if (fd < 0)
		return fd;
	close(fd);
	snprintf(bytes, sizeof(bytes), "%llu", size);
	char *plain[] = { img, (char *)"create", (char *)"-q", (char *)"-f", (char *)format, (char *)path, bytes, NULL };
	char *over[] = { img, (char *)"create", (char *)"-q", (char *)"-f", (char *)format, (char *)"-u", (char *)"-b",
			 (char *)backing, (char *)"-F", (char *)backing_format, (char *)path, bytes, NULL };
	char **argv = backing ? over : plain;
	int r = qu_run_capture(img, -1, argv, who->uid ? who->uid : (uid_t)-1, who->uid ? who->gid : (gid_t)-1,
			       deadline_us, out, sizeof(out));
	if (r != 0)
		return qu_err(r < 0 ? r : -EIO, "cannot create %s (%s, %s bytes): %s", path, format, bytes,
			      r < 0 ? strerror(-r) : out);
	return 0;
}

/* Whether the socket at path is in the directory d pinned before the bind: a socket's address
 * is its path (QEMU and the next upgrade read it back), so it is bound by path, and a link the
 * VM's user put on the way meanwhile shows here. */
static int still_there(const char *path, const struct qu_safe_dir *d)
{
	struct qu_safe_dir now;
	struct stat a, b, e;
	int r = qu_safe_open_dir(path, (uid_t)-1, 0, &now);
	if (r < 0)
		return r;
	int same = fstat(d->fd, &a) == 0 && fstat(now.fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
		   fstatat(now.fd, now.name, &e, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(e.st_mode);
	qu_safe_close(&now);
	return same ? 0 : qu_err(-ELOOP, "%s: the directory changed while the socket was made (a link put on the way?)",
				 path);
}

/* A socket file at path that nobody listens on (its QEMU died, as after a failover): connect
 * is refused. Asked as the VM's user, like everything done at that path. */
static int stale_socket(const struct qu_ident *who, const struct qu_safe_dir *d, const char *path)
{
	struct stat st;
	if (fstatat(d->fd, d->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	int fd = qu_connect_as(who, path);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	qu_err_clear();
	return fd == -ECONNREFUSED;
}

/* Bound as the VM's user: the socket file is that user's, made where that user may. A stale
 * socket file is replaced (removed as that user first), a live one never. */
static int make_listener(const struct qu_ident *who, struct qu_session_record *made, const char *path)
{
	char via[PATH_MAX];
	struct qu_safe_dir d;
	if (path[0] != '/' || strlen(path) >= QU_SUN_PATH_MAX)
		return qu_err(-EINVAL, "listening socket path '%s' is not usable here", path);
	int r = pin_dir(path, &d, via, sizeof(via));
	if (r < 0)
		return r;
	int fd = qu_listen_as(who, path, 16);
	if (fd == -EADDRINUSE && stale_socket(who, &d, path)) {
		qu_info("agent: %s: nobody listens on it (a QEMU that died left it): replaced", path);
		if ((r = qu_remove_as(who, path)) < 0) {
			qu_safe_close(&d);
			return qu_err(r, "%s: a stale socket nobody listens on, which uid %u (the VM's user) cannot remove: "
				      "%s; remove it", path, (unsigned)who->uid, strerror(-r));
		}
		fd = qu_listen_as(who, path, 16);
	}
	if (fd >= 0 && (r = still_there(path, &d)) < 0) {
		qu_session_record_add_file(made, path, 0);
		close(fd);
		fd = r;
	}
	qu_safe_close(&d);
	if (fd == -ELOOP)
		return fd;
	if (fd == -EADDRINUSE)
		return qu_err(-EEXIST, "%s exists on this host already and something listens on it (another VM's "
			      "socket?): stop that, or remove the file", path);
	if (fd < 0)
		return qu_err(fd, "cannot listen on %s as uid %u (the VM's user): %s", path, (unsigned)who->uid,
			      strerror(-fd));
	qu_session_record_add_file(made, path, 0);
	return fd;
}

/* A process of this network namespace that holds a queue of tap ifname (its fdinfo says
 * "iff: NAME"), or 0. */
static pid_t tap_holder(const char *ifname)
{
	char ours[64], theirs[64], path[600], *text = NULL, want[IFNAMSIZ + 8];
	ssize_t n = readlink("/proc/self/ns/net", ours, sizeof(ours) - 1);
	if (n < 0)
		return 0;
	ours[n] = '\0';
	snprintf(want, sizeof(want), "iff:\t%s\n", ifname);
	DIR *proc = opendir("/proc");
	pid_t found = 0;
	for (struct dirent *p; proc && !found && (p = readdir(proc));) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", p->d_name);
		n = readlink(path, theirs, sizeof(theirs) - 1);
		if (n < 0 || (theirs[n] = '\0', strcmp(theirs, ours)))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fdinfo", p->d_name);
		DIR *fds = opendir(path);
		for (struct dirent *f; fds && !found && (f = readdir(fds));) {
			snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", p->d_name, f->d_name);
			if (f->d_name[0] != '.' && qu_read_file(path, &text, NULL) == 0) {
				found = strstr(text, want) ? (pid_t)atoi(p->d_name) : 0;
				free(text);
			}
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	return found;
}

/* The tap must exist here already (made and bridged by the host's network setup): a tap
 * that TUNSETIFF would create on the fly would be attached to nothing. Nobody may hold it:
 * a multiqueue tap would take us in as one more queue of another VM's network. */
static int open_tap(const char *spec)
{
	char ifname[IFNAMSIZ + 8], sys[64];
	qu_kv_get(spec, "ifname", ifname, sizeof(ifname));
	if (!ifname[0] || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/'))
		return qu_err(-EINVAL, "a tap without a usable interface name ('%s')", ifname);
	snprintf(sys, sizeof(sys), "/sys/class/net/%s", ifname);
	if (access(sys, F_OK) < 0)
		return qu_err(-ENODEV, "tap '%s' does not exist on this host: create it there first (e.g. `ip tuntap add "
			      "dev %s mode tap`, attached like on the source)", ifname, ifname);
	pid_t holder = tap_holder(ifname);
	if (holder)
		return qu_err(-EBUSY, "tap '%s' is in use on this host by PID %d (another VM?): give the VM a tap of its "
			      "own there", ifname, (int)holder);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return qu_err(-errno, "cannot open /dev/net/tun: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	/* The header as the source's queues had it (a tool that does not say: with one). */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (qu_kv_num(spec, "vnet_hdr", 1) ? IFF_VNET_HDR : 0);
	if (qu_kv_num(spec, "queues", 1) > 1)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot open tap '%s': %s", ifname, strerror(e));
	}
	return fd;
}

/* Log files reopen at their path, appending, as the VM's user (who may write only what it
 * could write anyway; a new one is that user's); anything else (a pipe, a socket, a terminal
 * of the source host) has no meaning here and becomes /dev/null. */
static int open_stdio(const struct qu_ident *who, struct qu_session_record *made, const char *spec)
{
	char path[PATH_MAX];
	qu_kv_get(spec, "path", path, sizeof(path));
	if (path[0] != '/' || !strncmp(path, "/dev/", 5) || !strncmp(path, "/proc/", 6))
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	int fd = open_pinned(who, path, O_WRONLY | O_APPEND | O_NOCTTY, 0);
	if (fd == -ENOENT)
		return create_new(who, made, path, "log", O_WRONLY | O_APPEND);
	return fd < 0 ? qu_err(fd, "cannot open %s for the new QEMU's output as uid %u (the VM's user): %s", path,
			       (unsigned)who->uid, strerror(-fd)) : fd;
}

static int recreate_ram(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c)
{
	long long size = qu_kv_num(c->spec, "size", -1);
	int fd = memfd_create("memory-backend-memfd", MFD_CLOEXEC);
	if (size <= 0 || fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		int e = size <= 0 ? EINVAL : errno;
		if (fd >= 0)
			close(fd);
		return qu_err(-e, "cannot make a %lld-byte memfd for %s: %s", size, c->name, strerror(e));
	}
	return fd;
}

static int recreate_listener(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c)
{
	char path[PATH_MAX];
	qu_kv_get(c->spec, "path", path, sizeof(path));
	return make_listener(who, made, path);
}

static int recreate_tap(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c)
{
	return open_tap(c->spec);
}

static int recreate_vhost(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c)
{
	int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	return fd < 0 ? qu_err(-errno, "cannot open /dev/vhost-net for %s: %s", c->name, strerror(errno)) : fd;
}

static int recreate_stdio(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c)
{
	return open_stdio(who, made, c->spec);
}

/* One entry per kind that can follow a VM to this host (upgrade/fdpass/kinds.h). */
static int (*const recreate[])(const struct qu_ident *, struct qu_session_record *, const struct qu_carried *) = {
	[QU_FD_RAM] = recreate_ram,
	[QU_FD_LISTENER] = recreate_listener,
	[QU_FD_TAP] = recreate_tap,
	[QU_FD_VHOST] = recreate_vhost,
	[QU_FD_STDIO] = recreate_stdio,
};

int qu_recreate_knows(unsigned kind)
{
	return kind < sizeof(recreate) / sizeof(recreate[0]) && recreate[kind];
}

int qu_recreate_fd(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c)
{
	if (!qu_recreate_knows(c->kind))
		return qu_err(-EOPNOTSUPP, "%s (kind %u) cannot be re-created on another host", c->name, c->kind);
	return recreate[c->kind](who, made, c);
}
