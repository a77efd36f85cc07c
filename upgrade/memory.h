/* How much memory a copy of guest RAM may take: the host's MemAvailable (plus the free pages
 * on the per-CPU lists, which it leaves out), or less when the
 * VM's memory cgroup (v1 or v2, at any level above it) leaves less room. The new QEMU joins
 * the old one's cgroups, so its copy of the RAM is charged where the old one is. */
#ifndef QU_MEMORY_H
#define QU_MEMORY_H

#include "upgrade/context.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes the copy may use (-1: unknown); where names the tightest limit ("MemAvailable" or
 * the cgroup directory). */
long long qu_memory_room(const struct qu_context *ctx, char *where, size_t len);

/* Copies side by side must not overcommit the host: each one books what it needs in a
 * host-wide ledger (<state dir>/memory.ledger, under flock; entries of processes that are
 * gone are dropped) and waits, until deadline_us, while the bookings of other copies leave
 * too little room. Returns 0 (booked; *waited_ms says how long it waited), or -errno with a
 * message. */
int qu_memory_book(long long need, const struct qu_context *ctx, uint64_t deadline_us, double *waited_ms);
/* Drops this process's booking, and those of processes that are gone (the guardian calls
 * it for a tool that died). */
void qu_memory_unbook(void);

#endif
