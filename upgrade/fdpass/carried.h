/* A descriptor the new QEMU gets from the old one (or that the tool makes for it): what the
 * plan lists, the harvest takes, the launcher installs and an agent re-creates. */
#ifndef QU_CARRIED_H
#define QU_CARRIED_H

#include "upgrade/stream.h"

#define QU_MAX_CARRIED 48
#define QU_CARRIED_SPEC_MAX (108 + 64)

struct qu_carried {
	int old_fd;       /* in the old QEMU; -1 for descriptors the tool makes */
	int target;       /* number in the new QEMU */
	unsigned kind;    /* enum qu_fd_kind */
	char name[128];   /* what it is, for the plan and the stream */
	char spec[QU_CARRIED_SPEC_MAX]; /* "key=value" lines: what an agent on another host needs
				 * to re-create it (size=, path=, ifname=, queues=) */
	unsigned long long size; /* a memfd the tool makes (old_fd -1, kind RAM): its size */
	unsigned long long page_size; /* and its huge page size (hugetlb memfd); 0: normal pages */
};

#endif
