/* The rewriter's refusals: everything on the new command line that holds a descriptor the plan
 * does not carry, or a device that cannot be opened twice. */
#ifndef QU_REFUSE_H
#define QU_REFUSE_H

#include "qemu-integration/rewrite.h"

/* Judges every option of rw->argv (the rewritten command line: carried descriptors are the
 * plan's by now) and vm's descriptor sets; each reason goes to rw->refusals, one per option
 * (the first found), so that the operator changes or removes each option once. */
void qu_refuse_uncarried(const struct qu_vm *vm, struct qu_rewrite *rw);

#endif
