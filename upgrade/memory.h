/* How much memory a copy of guest RAM may take: the host's MemAvailable, or less when the
 * VM's memory cgroup (v1 or v2, at any level above it) leaves less room. The new QEMU joins
 * the old one's cgroups, so its copy of the RAM is charged where the old one is. */
#ifndef QU_MEMORY_H
#define QU_MEMORY_H

#include "upgrade/context.h"

#include <stddef.h>

/* Bytes the copy may use (-1: unknown); where names the tightest limit ("MemAvailable" or
 * the cgroup directory). */
long long qu_memory_room(const struct qu_context *ctx, char *where, size_t len);

#endif
