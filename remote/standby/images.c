/* The secondary's active and hidden images (images.h). */
#include "remote/standby/images.h"
#include "remote/recreate.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/io.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/run.h"
#include "upgrade/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SIZE (64ull << 40)
static const char *const names[QU_COLO_IMAGES] = { "active", "hidden" };

int qu_colo_images_ask(struct qu_colo_images *ci, const char *call)
{
	long long a = qu_kv_num(call, "active_fd", -1), h = qu_kv_num(call, "hidden_fd", -1);
	long long size = qu_kv_num(call, "size", -1);
	/* 0-2 are QEMU's stdio; the launcher takes up to 258 (as for the tool's descriptors). */
	if (a < 3 || a > 258 || h < 3 || h > 258 || a == h)
		return qu_err(-EINVAL, "standby: the secondary's image descriptors (%lld, %lld) are not two numbers "
			      "from 3 to 258", a, h);
	if (size <= 0 || (unsigned long long)size > MAX_SIZE)
		return qu_err(-EINVAL, "standby: disk size %lld is not one this agent makes images of", size);
	if (ci->asked)
		return qu_err(-EALREADY, "standby: the secondary's images were asked for already (one disk)");
	ci->asked = 1;
	ci->target[0] = (int)a;
	ci->target[1] = (int)h;
	ci->size = (unsigned long long)size;
	ci->fd[0] = ci->fd[1] = -1;
	return 0;
}

int qu_colo_images_uses(const struct qu_colo_images *ci, int n)
{
	return ci->asked && (ci->target[0] == n || ci->target[1] == n);
}

/* One qcow2 image of ci->size at dir/name, open read-write, the VM user's, unlinked. */
static int make_one(const struct qu_colo_images *ci, const char *dir, const char *name, const struct qu_ident *who,
		    uint64_t deadline_us)
{
	char img[PATH_MAX], path[PATH_MAX], bytes[32], out[1024];
	if (!qu_find_qemu_img(img, sizeof(img)))
		return qu_err(-ENOENT, "qemu-img is not installed on this host: it makes the secondary's images");
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.qcow2", dir, name) >= sizeof(path))
		return qu_err(-ENAMETOOLONG, "the state directory %s is too deep", dir);
	snprintf(bytes, sizeof(bytes), "%llu", ci->size);
	char *argv[] = { img, (char *)"create", (char *)"-q", (char *)"-f", (char *)"qcow2", path, bytes, NULL };
	/* As root, in root's own directory: nobody else can put anything on the way. */
	int r = qu_run_capture(img, -1, argv, (uid_t)-1, (gid_t)-1, deadline_us, out, sizeof(out));
	if (r != 0) {
		unlink(path);
		return qu_err(r < 0 ? r : -EIO, "cannot create the secondary's %s image (%s bytes): %s", name, bytes,
			      r < 0 ? strerror(-r) : out);
	}
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0 && fchown(fd, who->uid, who->gid) < 0)
		e = errno;
	unlink(path);
	if (e) {
		if (fd >= 0)
			close(fd);
		return qu_err(-e, "the secondary's %s image: %s", name, strerror(e));
	}
	return fd;
}

int qu_colo_images_make(struct qu_colo_images *ci, const struct qu_ident *who, uint64_t deadline_us)
{
	char dir[PATH_MAX];
	if (!ci->asked)
		return 0;
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "cannot create %s: %s", qu_state_dir(), strerror(errno));
	snprintf(dir, sizeof(dir), "%s/colo-XXXXXX", qu_state_dir());
	if (!mkdtemp(dir))
		return qu_err(-errno, "cannot make a directory for the secondary's images in %s: %s", qu_state_dir(),
			      strerror(errno));
	int r = 0;
	for (int i = 0; i < QU_COLO_IMAGES && r == 0; i++) {
		int fd = make_one(ci, dir, names[i], who, deadline_us);
		if (fd < 0)
			r = fd;
		else
			ci->fd[i] = fd;
	}
	rmdir(dir);
	if (r < 0)
		qu_colo_images_close(ci);
	return r;
}

void qu_colo_images_close(struct qu_colo_images *ci)
{
	for (int i = 0; i < QU_COLO_IMAGES; i++)
		if (ci->asked)
			qu_close(&ci->fd[i]);
}
