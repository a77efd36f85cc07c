/* A multiqueue tap's steering while the new QEMU starts. The queues the guest does not use
 * are detached in the kernel; a starting QEMU believes every queue attached (QEMU 7.2 aborts
 * when detaching one fails), so they are attached again just before it starts, and it
 * detaches them itself as it sets up its NIC, 100-300 ms later under TCG. Meanwhile the
 * kernel would steer some flows to queues nobody reads, and QEMU's detach drops what they
 * hold (13-30 of 300 pings at 10 ms were lost that way). A steering program on the tap
 * (TUNSETSTEERINGEBPF) sends every frame to its first attached queue instead, one that the
 * guest reads, until the queues are detached again. */
#ifndef QU_TAPSTEER_H
#define QU_TAPSTEER_H

#include <net/if.h>
#include <stddef.h>

/* Every frame the tap behind fd (any of its queues) receives goes to its first attached
 * queue. 0 or -errno (a kernel without TUNSETSTEERINGEBPF, or eBPF not allowed). */
int qu_tap_steer_first(int fd);
/* The tap steers by flow again (its steering program removed). 0 or -errno. */
int qu_tap_steer_clear(int fd);
/* Whether the queue fd is attached to its tap (1), detached (0), or -errno. */
int qu_tap_queue_attached(int fd);
/* The name of the tap behind queue fd into name (IFNAMSIZ bytes). 0 or -errno. */
int qu_tap_name(int fd, char *name);
/* Whether the tap queue fd carries a virtio-net header (IFF_VNET_HDR): 1 or 0, or -errno. */
int qu_tap_vnet_hdr(int fd);
/* Attaches (attach=1) or detaches the queue fd. 0 or -errno. */
int qu_tap_queue_set(int fd, int attach);

/* Settling an upgrade from its journal (the tool's own failure path, its guardian, --recover):
 * the queues numbered fds[] in the process behind pidfd, taken with pidfd_getfd, each still a
 * queue of a multiqueue tap named names[i], are detached again where still attached (detach: a
 * rollback to the QEMU that believes them detached), and the tap's steering removed (unsteer:
 * the tool had set it). Returns how many queues it detached; what it could not do, or a number
 * that is no longer that tap's queue, is a warning. */
int qu_tap_settle_queues(int pidfd, const int *fds, const char (*names)[IFNAMSIZ], size_t n, int detach, int unsteer);

#endif
