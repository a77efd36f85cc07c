#include "upgrade/pvelock.h"
#include "qemu-integration/argv.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"
#include "upgrade/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

long qu_pve_vmid_of_pidfile(const char *pidfile)
{
	const char *base = strrchr(pidfile, '/');
	if (!base || base - pidfile < 11 || strncmp(base - 11, "qemu-server", 11) ||
	    (base - 11 > pidfile && base[-12] != '/'))
		return 0;
	base++;
	/* qemu-server's VMIDs: 100 to 999999999, no leading zero. */
	size_t n = strspn(base, "0123456789");
	if (n < 3 || n > 9 || base[0] == '0' || strcmp(base + n, ".pid"))
		return 0;
	return strtol(base, NULL, 10);
}

/* The -pidfile of pid's command line, from /proc alone (nothing of the VM's is followed). */
static long vmid_of(pid_t pid)
{
	char path[64], *cmd = NULL;
	size_t len;
	struct qu_argv argv = { 0 };
	long vmid = 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (qu_read_file(path, &cmd, &len) < 0)
		return 0; /* inspect says what is wrong with the process */
	if (qu_argv_from_cmdline(cmd, len, &argv) == 0) {
		long i = qu_argv_find(&argv, "pidfile", 0);
		if (i >= 0 && argv.a[i].val)
			vmid = qu_pve_vmid_of_pidfile(argv.a[i].val);
	}
	qu_argv_free(&argv);
	free(cmd);
	return vmid;
}

/* The lock file, opened as Proxmox opens it (created when missing), in a directory only root
 * can change: a VM's owner can make a command line look like Proxmox's, and /run/lock is
 * writable by everyone, so a directory someone else made there is not Proxmox's. */
static int open_lock(const char *dir, long vmid, int *fd)
{
	char path[512];
	struct qu_safe_dir d;
	*fd = -1;
	snprintf(path, sizeof(path), "%s/lock-%ld.conf", dir, vmid);
	int r = qu_safe_open_dir(path, (uid_t)-1, 0, &d);
	if (r == -ENOENT) {
		qu_err_clear();
		return 0; /* no Proxmox here */
	}
	if (r < 0)
		return r;
	if (!d.trusted || d.sticky) {
		qu_info("warning: not taking Proxmox's lock of VM %ld: %s", vmid,
			d.trusted ? "its directory is sticky: anyone could have made the lock file" : d.doubt);
		qu_safe_close(&d);
		return 0;
	}
	*fd = openat(d.fd, d.name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	r = *fd < 0 ? qu_err(-errno, "cannot open Proxmox's lock %s: %s", path, strerror(errno)) : 0;
	qu_safe_close(&d);
	return r;
}

int qu_pve_lock_take(pid_t pid, uint64_t deadline_us, struct qu_pve_lock *l)
{
	return qu_pve_lock_take_vmid(vmid_of(pid), deadline_us, l);
}

int qu_pve_lock_take_vmid(long vmid, uint64_t deadline_us, struct qu_pve_lock *l)
{
	const char *dir = qu_test_env("QEMU_UPGRADE_PVE_LOCK_DIR");
	l->fd = -1;
	l->wait_ms = 0;
	if ((l->vmid = vmid) <= 0)
		return 0;
	int fd, r = open_lock(dir ? dir : QU_PVE_LOCK_DIR, l->vmid, &fd);
	if (r < 0 || fd < 0)
		return r;
	uint64_t t0 = qu_now_us();
	int said = 0;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK || qu_now_us() >= deadline_us) {
			int e = errno;
			close(fd);
			if (e != EWOULDBLOCK)
				return qu_err(-e, "cannot take Proxmox's lock of VM %ld: %s", l->vmid, strerror(e));
			return qu_err(-EBUSY, "Proxmox holds VM %ld's lock (%s/lock-%ld.conf) for another operation on it "
				      "(after a QEMU's monitor connection closed, as after an upgrade, `qm cleanup` holds it "
				      "for up to 30 s): try again when it is done", l->vmid, dir ? dir : QU_PVE_LOCK_DIR,
				      l->vmid);
		}
		if (!said++)
			qu_info("waiting for Proxmox's lock of VM %ld (another operation on it holds it)", l->vmid);
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	l->wait_ms = (double)(qu_now_us() - t0) / 1000.0;
	l->fd = fd;
	return 0;
}

void qu_pve_lock_release(struct qu_pve_lock *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}
