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

#endif
