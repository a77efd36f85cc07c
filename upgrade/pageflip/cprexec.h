/* cpr-exec's talk with the one process (upgrade/pageflip/cprexec-image.c), shared by the
 * upgrade (cprexec.c) and its settling (cprexec-settle.c): the saved state's file, handed to
 * QEMU as descriptors, the VM's monitor reached again after the exec, and the load. */
#ifndef QU_CPREXEC_H
#define QU_CPREXEC_H

#include "upgrade/journal.h"
#include "upgrade/undo.h"

#include <stddef.h>
#include <stdint.h>

struct qu_qmp;

/* <state dir>/<old pid>.cprstate: the device state the old image saves. */
void cpr_exec_state_path(const struct qu_journal *j, char *path, size_t len);
/* Opened by root (O_CREAT: made, and given to the VM's user); -errno with a message. */
int cpr_exec_open_state(const struct qu_journal *j, int flags);
/* add-fd: QEMU gets fd in a new descriptor set; its id, or -errno. */
int cpr_exec_add_fd(struct qu_qmp *q, int fd, uint64_t deadline);
void cpr_exec_remove_fdset(struct qu_qmp *q, int id, uint64_t deadline);
/* The VM's monitor at its path, tried every few milliseconds until the deadline or until the
 * process (pidfd; -1: the journal's PID) is gone. */
int cpr_exec_reconnect(const struct qu_journal *j, struct qu_hold *h, int pidfd, uint64_t deadline, struct qu_qmp **q);
/* The image waiting at -incoming defer loads the state and, the guest having run, resumes it
 * (*resumed: QEMU's wall-clock stamp of its RESUME). inherited >= 0: the file is that
 * descriptor of the process; -1: handed over with add-fd. */
int cpr_exec_load_state(const struct qu_journal *j, struct qu_qmp *q, int pidfd, uint64_t deadline, int64_t *resumed,
			int inherited);

#endif
