/* Settling an upgrade whose tool is gone, from its journal alone: finish it if the new QEMU
 * runs the guest (retire the old one), otherwise undo it (stop the new QEMU, resume the old
 * one, restore its migration settings). Used by the guardian and by --recover. */
#ifndef QU_SETTLE_H
#define QU_SETTLE_H

#include "upgrade/decision.h"
#include "upgrade/journal.h"
#include "upgrade/undo.h"

#include <stddef.h>

/* Writes one line about what it did to what. Removes the journal and the private monitor
 * path once settled. Returns 0, or -errno when something could not be settled. */
int qu_settle(const struct qu_journal *j, char *what, size_t len);
/* The same, with what the caller holds (the tool settling its own failure), and
 * remote_refused when the agent answered that it did not resume the guest. Gives the way it
 * went; -EAGAIN when it could not tell (the journal stays). */
int qu_settle_held(const struct qu_journal *j, struct qu_hold *h, int remote_refused, char *what, size_t len,
		   enum qu_settle_way *way);

/* cpr-exec's own (upgrade/pageflip/cprexec.c): one process, old image or new. */
int qu_cpr_exec_settle(const struct qu_journal *j, struct qu_hold *h, char *what, size_t len,
		       enum qu_settle_way *way);

#endif
