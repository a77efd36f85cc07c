/* plan: from the facts about a VM and the new binary's abilities to what execute will do:
 * the strategy, the new command line and the descriptors to carry, or every refusal. */
#ifndef QU_PLAN_H
#define QU_PLAN_H

#include "qemu-integration/disks.h"
#include "qemu-integration/rewrite.h"
#include "qemu-integration/vm.h"
#include "upgrade/launcher.h"

struct qu_remote;

struct qu_plan {
	/* What the rewriter reads and writes (qemu-integration/rewrite.h), by the same names:
	 * strategy, target, argv, fds, nfds, cpr_channel, main_channel, convert_mask, refusals. */
	union {
		struct qu_rewrite rw;
		struct { QU_REWRITE_MEMBERS };
	};
	int stop_first;             /* copy with the old QEMU stopped (TCG before 9.0; postcopy too) */
	uint64_t ram_shared_bytes;  /* guest RAM handed over in place */
	uint64_t ram_copy_bytes;    /* guest RAM the migration will copy */
	uint64_t ram_huge_bytes;    /* of which on huge pages (copied into huge pages) */
	int capture_stderr;         /* the old QEMU's stderr is /dev/null: give the new one a pipe */
	int allow_copy;             /* in: the caller accepts the copy path (QU_FLAG_ALLOW_COPY) */
	int low_memory;             /* in: copy with postcopy whatever the memory (QU_FLAG_LOW_MEMORY) */
	int keep_pid;               /* in: cpr-exec or nothing (QU_FLAG_KEEP_PID) */
	char pid_note[512];         /* whether the PID stays, and why (cpr-exec chosen or not) */
	long long memory_needed;    /* bytes of host memory the copy needs */
	long long memory_room;      /* bytes it may take (MemAvailable or the VM's cgroup limit) */
	/* --remote: the new QEMU starts on another host, through its agent; RAM is always copied,
	 * and disks are copied (mirrored over NBD) or shared. */
	struct qu_remote *remote;   /* in: the agent's connection, or NULL for this host */
	int copy_storage;           /* in: --copy-storage */
	int no_tls;                 /* in: --no-tls: migration and disk copy over plain TCP */
	int shared_storage;         /* in: --shared-storage */
	const struct qu_disks *disks; /* in: the VM's disks (query-block), for --remote */
	int copy_storage_inc;       /* in: --copy-storage-inc (only the top of a backing chain moves) */
	int verify;                 /* in: --verify (both hosts sum the copy before the resume) */
	unsigned copy_disks;        /* disks.d[i] to mirror to the other host */
	unsigned top_disks;         /* of which only the top image moves (sync=top) */
	unsigned collapse_disks;    /* of which the chain becomes one standalone image there */
	char base_sum[QU_MAX_DISKS][65]; /* top_disks: the sum of the top's backing file here */
	int write_blocking;         /* the old QEMU can switch its mirrors to write-blocking (8.2+) */
	int pause_switchover;       /* the source waits in pre-switchover for the mirrors to end */
	char warning[512];          /* what the user must know before it runs (postcopy's risk) */
};

/* Fills plan; a VM that cannot be upgraded gets every reason in plan->refusals (and returns
 * 0). Errors in probing the new binary return -errno with a message. */
int qu_plan_make(const struct qu_vm *vm, const char *new_binary, uint64_t deadline_us,
		 struct qu_plan *plan);
void qu_plan_free(struct qu_plan *plan);
/* --remote (upgrade/to-remote.c): sends the agent the images to create and the launch
 * (descriptors as specs, the context without this host's cgroups and CPU numbers), for it to
 * judge against its policy (why: the agent's reasons, one a line; returns 1 when refused)
 * or, with why NULL, to start (QEMU's TLS as the plan says). */
int qu_remote_send(const struct qu_vm *vm, const struct qu_plan *p, uint64_t deadline_us, char *why, size_t len);

#endif
