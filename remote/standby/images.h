/* The secondary's active and hidden images (docs/standby.md, "Disks"): the scratch layers of
 * COLO's `replication` mode=secondary node, which hold the secondary guest's own writes and
 * the old contents of what the primary overwrote since the last checkpoint. The agent makes
 * them itself, in a directory of its own, and QEMU gets each as an open descriptor at a
 * number the tool chose (its -drive names /proc/self/fd/N): the files are unlinked before
 * QEMU starts, so nothing of them outlives the secondary, whatever becomes of the session. */
#ifndef QU_STANDBY_IMAGES_H
#define QU_STANDBY_IMAGES_H

#include <stddef.h>
#include <stdint.h>

struct qu_ident;

#define QU_COLO_IMAGES 2 /* active, hidden */

struct qu_colo_images {
	int asked;                    /* op=colo_disk came: the secondary needs them */
	int target[QU_COLO_IMAGES];   /* where QEMU finds them (the tool's -drive names these) */
	unsigned long long size;      /* the disk's virtual size: each layer has it */
	int fd[QU_COLO_IMAGES];       /* made, not yet handed to QEMU; -1 */
};

/* CALL op=colo_disk active_fd=N hidden_fd=M size=BYTES, from the tool: checked and kept.
 * 0, or -EINVAL with a message (numbers outside 3-258 or equal, a size not in 1 B-64 TiB). */
int qu_colo_images_ask(struct qu_colo_images *ci, const char *call);
/* Whether target fd n is one of the images' (a launch descriptor there would collide). */
int qu_colo_images_uses(const struct qu_colo_images *ci, int n);
/* Makes both qcow2 images in a fresh directory under the state directory (root's), hands
 * them to who (the VM's user: QEMU reopens them through /proc/self/fd as that user), unlinks
 * them and the directory, and keeps the open descriptors in ci->fd. 0, or -errno with a
 * message (nothing is left behind). */
int qu_colo_images_make(struct qu_colo_images *ci, const struct qu_ident *who, uint64_t deadline_us);
void qu_colo_images_close(struct qu_colo_images *ci);

#endif
