/* The new QEMU's command line: the old one, with guest RAM, listening sockets and the tool's
 * own channels turned into inherited descriptors, the machine type pinned, and the options
 * that only make sense for a fresh start taken out. */
#ifndef QU_REWRITE_H
#define QU_REWRITE_H

#include "qemu-integration/argv.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/refusals.h"
#include "qemu-integration/vm.h"
#include "upgrade/fdpass/carried.h"
#include "upgrade/strategy.h"

#include <stddef.h>

/* What the rewriter reads and writes of an upgrade's plan. The plan (upgrade/plan.h) holds
 * these same members first, in a union with this struct, as the kernel's
 * struct_group_tagged() does: the plan keeps its field names, and the rewriter, one floor
 * down, sees these alone. */
#define QU_REWRITE_MEMBERS \
	enum qu_strategy strategy;             /* in: cpr-transfer changes the command line */ \
	struct qu_binary target;               /* in: the new binary's version and machines */ \
	struct qu_argv argv;                   /* out: the new QEMU's command line */ \
	struct qu_carried fds[QU_MAX_CARRIED]; /* out: the descriptors it inherits */ \
	size_t nfds; \
	char cpr_channel[64];                  /* abstract UNIX socket names (in the VM's network \
						* namespace) for cpr-transfer */ \
	char main_channel[64]; \
	unsigned convert_mask;                 /* in: vm->ram[i] arrives in a shared memfd the tool makes */ \
	struct qu_argv back_argv;              /* out, cpr-exec: the old binary's command line as a new \
						* process on the kept descriptors, for a rollback after the exec */ \
	struct qu_refusals refusals;           /* out: n > 0: cannot upgrade, and every reason */

struct qu_rewrite {
	QU_REWRITE_MEMBERS
};

/* The new command line (fds numbered from QU_FD_FIRST_CARRIED, upgrade/launcher.h): fills
 * rw->argv and rw->fds; everything that cannot be carried goes to rw->refusals (one reason
 * per option), on top of what is there already. */
int qu_rewrite(const struct qu_vm *vm, struct qu_rewrite *rw);

#endif
