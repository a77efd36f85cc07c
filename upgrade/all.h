/* --all: every running QEMU whose executable was replaced on disk (a package upgrade) moves to
 * the binary now at its path; all others are left alone. Each upgrade runs in a child process
 * of its own (isolated state, a crash costs one VM's upgrade, not the others'), N at a time. */
#ifndef QU_ALL_H
#define QU_ALL_H

#include <stdio.h>

struct qu_all_options {
	const char *binary;   /* only VMs running this path (NULL: any QEMU) */
	int jobs;             /* 0: from the config file */
	int dry_run;
	int allow_copy;       /* also from the config's allow_copy */
	int low_memory;       /* also from the config's low_memory */
	int json;
	int from_hook;        /* the package hook: obey `enabled`, log to syslog, never fail */
	unsigned timeout_ms;  /* per VM */
};

/* Prints a summary table (or one JSON object) to out. Returns 0 when every replaced VM was
 * upgraded (or planned), 1 when any failed or was refused, 2 on a bad configuration. */
int qu_all(const struct qu_all_options *o, FILE *out);

#endif
