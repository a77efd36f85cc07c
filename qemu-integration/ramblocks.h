/* QEMU's RAM blocks (`info ramblock`): every one the old QEMU has must exist in the new one
 * with a size QEMU's migration accepts, or the new QEMU rejects the stream ("Length
 * mismatch"). Firmware and option ROMs are RAM blocks too, so a new release whose BIOS or
 * ROM files changed size is caught here, before the old QEMU stops. */
#ifndef QU_RAMBLOCKS_H
#define QU_RAMBLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define QU_MAX_RAMBLOCKS 256

struct qu_ramblock {
	char name[128];
	uint64_t used, total; /* total > used: resizable (ACPI tables) up to total */
};

struct qu_qmp;

/* Parses the text of `info ramblock`; returns the number of blocks or -EBADMSG. */
int qu_ramblocks_parse(const char *text, struct qu_ramblock *b, size_t max);
/* 0 when every block of old fits its namesake in new; else -EINVAL with why (a sentence
 * naming the block and both sizes). */
int qu_ramblocks_compare(const struct qu_ramblock *old, size_t nold, const struct qu_ramblock *new_,
			 size_t nnew, char *why, size_t len);
/* One line for another host: "NAME:USED:TOTAL" joined by ';' (a name may hold ':', the
 * numbers never). pack returns -ENOSPC when it does not fit; unpack the number of blocks or
 * -EBADMSG. */
int qu_ramblocks_pack(const struct qu_ramblock *b, size_t n, char *out, size_t len);
int qu_ramblocks_unpack(const char *text, struct qu_ramblock *b, size_t max);
/* Asks a QEMU for its blocks (HMP through QMP). */
int qu_ramblocks_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_ramblock *b, size_t max);

#endif
