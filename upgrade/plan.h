/* plan: from the facts about a VM and the new binary's abilities to what execute will do:
 * the strategy, the new command line and the descriptors to carry, or a refusal. */
#ifndef QU_PLAN_H
#define QU_PLAN_H

#include "qemu-integration/argv.h"
#include "qemu-integration/binary.h"
#include "remote/blk/mirror.h"
#include "upgrade/fdpass/carried.h"
#include "upgrade/launcher.h"
#include "upgrade/strategy.h"
#include "upgrade/vm.h"

struct qu_remote;

struct qu_plan {
	enum qu_strategy strategy;
	struct qu_binary target;
	struct qu_argv argv;        /* the new QEMU's command line */
	struct qu_carried fds[QU_MAX_CARRIED];
	size_t nfds;
	int stop_first;             /* copy with the old QEMU stopped (TCG before 9.0; postcopy too) */
	char cpr_channel[64];       /* abstract UNIX socket names (in the VM's network namespace) */
	char main_channel[64];
	unsigned convert_mask;      /* vm->ram[i] arrives in a shared memfd the tool makes */
	uint64_t ram_shared_bytes;  /* guest RAM handed over in place */
	uint64_t ram_copy_bytes;    /* guest RAM the migration will copy */
	int capture_stderr;         /* the old QEMU's stderr is /dev/null: give the new one a pipe */
	int allow_copy;             /* in: the caller accepts the copy path (QU_FLAG_ALLOW_COPY) */
	int low_memory;             /* in: copy with postcopy whatever the memory (QU_FLAG_LOW_MEMORY) */
	long long memory_needed;    /* bytes of host memory the copy needs */
	long long memory_room;      /* bytes it may take (MemAvailable or the VM's cgroup limit) */
	/* --remote: the new QEMU starts on another host, through its agent; RAM is always copied,
	 * and disks are copied (mirrored over NBD) or shared. */
	struct qu_remote *remote;   /* in: the agent's connection, or NULL for this host */
	int copy_storage;           /* in: --copy-storage */
	int no_tls;                 /* in: --no-tls: migration and disk copy over plain TCP */
	int shared_storage;         /* in: --shared-storage */
	const struct qu_disks *disks; /* in: the VM's disks (query-block), for --remote */
	unsigned copy_disks;        /* disks.d[i] to mirror to the other host */
	int pause_switchover;       /* the source waits in pre-switchover for the mirrors to end */
	char warning[512];          /* what the user must know before it runs (postcopy's risk) */
	char refusal[1024];         /* non-empty: cannot upgrade, and why */
};

/* Fills plan; a VM that cannot be upgraded gets plan->refusal (and returns 0). Errors in
 * probing the new binary return -errno with a message. */
int qu_plan_make(const struct qu_vm *vm, const char *new_binary, uint64_t deadline_us,
		 struct qu_plan *plan);
void qu_plan_free(struct qu_plan *plan);

/* qemu-integration/rewrite.c: the new command line for plan (fds numbered from
 * QU_FD_FIRST_CARRIED). Fills plan->argv and plan->fds; refusals go to plan->refusal. */
int qu_rewrite(const struct qu_vm *vm, struct qu_plan *plan);

#endif
