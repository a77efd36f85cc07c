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
 * host-wide ledger (<state dir>/memory.ledger, under flock; bookings of processes that are
 * gone are dropped). qu_memory_book books need if it fits beside the other bookings (or if
 * there are none: alone, the plan said it fits) and sets *token (one per upgrade), else
 * returns -EBUSY saying why. qu_memory_wait waits, until deadline_us or a cancel, for a
 * moment where need would fit (it books nothing: book after planning again). */
int qu_memory_book(long long need, const struct qu_context *ctx, unsigned long long *token);
int qu_memory_wait(long long need, const struct qu_context *ctx, uint64_t deadline_us);
/* Drops the booking with this token, and those of processes that are gone (token 0: only
 * those; the guardian and --recover call it for a tool that died). */
void qu_memory_unbook(unsigned long long token);

/* Huge pages of page_size bytes that a new mapping can still get: the pool's free pages less
 * those promised to mappings already made (resv_hugepages). -errno when the host has no such
 * pool. They are not booked in the ledger. */
long long qu_memory_free_hugepages(uint64_t page_size);

#endif
