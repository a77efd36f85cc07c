/* The secondary's command line, from the launch an upgrade to its host would send: what COLO
 * needs to differ there (docs/standby.md). */
#ifndef QU_STANDBY_SECONDARY_H
#define QU_STANDBY_SECONDARY_H

#include <stddef.h>

struct qu_argv;
struct qu_carried;

/* Guest RAM private on the secondary: each shared file or memfd backend (-object
 * memory-backend-file / memory-backend-memfd, key=value or JSON) becomes memory-backend-ram
 * with the same id and size, and the RAM descriptor it would have been given is dropped from
 * fds. With shared memfd RAM on the secondary too, its guest was corrupt at the first
 * checkpoint (docs/standby-research.md, item 8). Returns how many backends it changed, or
 * -errno (a backend it cannot read: -EINVAL with a message). */
int qu_colo_private_ram(struct qu_argv *argv, struct qu_carried *fds, size_t *nfds);

/* The ids of the secondary's disk graph (qemu-colo.rst's parent0 and childs0): its copy of the
 * image, exported over NBD to the primary's replication child, and the replication node. */
#define QU_COLO_PARENT_ID "qu-colo-parent"
#define QU_COLO_CHILD_ID "qu-colo-childs"

/* The secondary's disk graph in place of the VM's quorum drive `device` (a -drive
 * driver=quorum with one child): a drive QU_COLO_PARENT_ID on image (format), the
 * replication node QU_COLO_CHILD_ID mode=secondary over it with the active and hidden qcow2
 * images at /proc/self/fd/active_fd and hidden_fd (the agent makes them), and the quorum of
 * the same options but for its children, over QU_COLO_CHILD_ID. The quorum keeps its place
 * among the drives (its IDE unit). 0, or -errno with a message (-ENOENT: no such drive;
 * -EINVAL: it is not a quorum, or an id or a number QEMU would read otherwise). */
int qu_colo_secondary_drives(struct qu_argv *argv, const char *device, const char *image, const char *format,
			     int active_fd, int hidden_fd);

/* A guest that took over runs on that graph already (its command line holds the drives
 * QU_COLO_PARENT_ID and QU_COLO_CHILD_ID): qu_colo_secondary_drives first removes them, so
 * that its secondary gets the graph anew; this drops them from the disks to copy, where the
 * quorum stands for its image. */
struct qu_disks;
void qu_colo_drop_graph_disks(struct qu_disks *disks);

/* The way back from that graph, for a new QEMU of a guest that took over (an in-place upgrade,
 * a move): after the takeover the replication node has committed its scratch layers into the
 * parent and passes I/O straight through, so the quorum goes back over the parent image as the
 * VM had it before its protection (the parent's options become the quorum's children.0.*), and
 * the two graph drives go (their scratch images are descriptors only the old process holds).
 * The caller makes sure the takeover's commit is over (no block job left). 1 when it changed
 * argv, 0 when there is no such graph, -errno with a message (-EINVAL: a part of it alone). */
int qu_colo_promote_drives(struct qu_argv *argv);

#endif
