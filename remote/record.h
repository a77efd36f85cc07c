/* The record of one agent session, <state dir>/agent-<session pid>.session: what the agent's
 * listener must undo if the session process dies without doing it itself (killed, out of
 * memory): the new QEMU unless it was resumed, and the files made for it. The session
 * rewrites it at each change; the listener reads it when the session ends, and sweeps the
 * records of an agent that died at its start. */
#ifndef QU_REMOTE_RECORD_H
#define QU_REMOTE_RECORD_H

#include "upgrade/fdpass/asuser.h"
#include "qemu-integration/vm.h"

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* Descriptors re-created from specs, plus the disk images and the TLS key's files. */
#define QU_SESSION_MAX_FILES 80

struct qu_session_file {
	char path[PATH_MAX];
	int own; /* 1: the agent's own, removed as root ("own="); 0: the VM's ("created=") */
};

struct qu_session_record {
	pid_t qemu;                    /* the new QEMU; 0 before it starts */
	unsigned long long qemu_start; /* its /proc starttime: a PID reused since is not it */
	int resumed;                   /* the guest may run in it: it stays, and so do its files */
	char ctl[QU_SUN_PATH_MAX];     /* its private monitor socket, the agent's */
	struct qu_ident who;           /* the VM's user: its files are removed as that user */
	struct qu_session_file files[QU_SESSION_MAX_FILES]; /* in the order they were made */
	size_t nfiles;
};

/* Writes the record of this process's session (atomically: a temporary file, renamed). */
void qu_session_record_write(const struct qu_session_record *r);
/* Adds a file made for the session (while there is room) and writes the record. */
void qu_session_record_add_file(struct qu_session_record *r, const char *path, int own);
/* Reads the record session left; *out is the caller's to free. -ENOENT when there is none. */
int qu_session_record_read(pid_t session, struct qu_session_record **out);
/* Removes the files r names, in their order (a file before the directory it is in): the VM's
 * as who, the agent's as root. */
void qu_session_record_remove_files(const struct qu_session_record *r, const struct qu_ident *who);
/* Removes this process's own record (its session cleaned up itself). */
void qu_session_record_remove(void);

/* For the agent's listener, after session process `session` ended: undoes what its record
 * says it left (a new QEMU not resumed, files made for it). 1 when there was a record (what
 * says what was done), 0 when the session had cleaned up itself. */
int qu_session_record_cleanup(pid_t session, char *what, size_t len);
/* At the agent's start: cleans up after the sessions of an agent that died (their records
 * name a process that is gone), and logs what it did. */
void qu_session_record_sweep(void);

#endif
