/* The VM's disks as its QEMU reports them (query-block): what a move to another host copies
 * or expects to find there. */
#ifndef QU_DISKS_H
#define QU_DISKS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

struct qu_qmp;

#define QU_MAX_DISKS 16
/* Backing files below a disk's top image that a move follows (deeper chains are refused). */
#define QU_MAX_BACKING 8

/* One backing file, as the old QEMU opened it. */
struct qu_backing {
	char file[PATH_MAX]; /* absolute, as QEMU resolved the name in the image above */
	char format[16];
};

struct qu_disk {
	char device[64];  /* what QMP calls it in both QEMUs: the -drive id, or the -blockdev
			   * root node name (a -drive's node names are generated, differently
			   * in each QEMU) */
	char file[PATH_MAX];
	char format[16];
	unsigned long long size;  /* virtual size */
	int readonly;
	int backing;      /* the image has a backing file */
	/* Its backing chain, top down (chain[0] is the top's backing file), when backing. */
	char backing_name[PATH_MAX]; /* as written in the top image's header (maybe relative) */
	struct qu_backing chain[QU_MAX_BACKING];
	int nchain;       /* entries in chain; -1: deeper than QU_MAX_BACKING, or not told */
	int removable;    /* a CD-ROM or floppy drive */
};

struct qu_disks {
	struct qu_disk d[QU_MAX_DISKS];
	size_t n;
};

/* Every block device with a medium (-E2BIG beyond QU_MAX_DISKS). */
int qu_disks_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_disks *out);

#endif
