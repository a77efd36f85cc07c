/* The tool's end of the ssh transport: ssh (or the command in QEMU_UPGRADE_SSH, run as git runs
 * GIT_SSH_COMMAND) started with BatchMode, the operator's own keys and known_hosts, and the
 * remote command `qemu-upgrade agent --stdio`; its stdin and stdout are one end of a
 * socketpair, the tool keeps the other, so the rest of the client talks to one socket as over
 * TCP. What ssh writes on stderr (its own complaints, and the agent's log lines) is kept, the
 * last of it, for the error when the connection fails. */
#ifndef QU_REMOTE_SSH_CONNECT_H
#define QU_REMOTE_SSH_CONNECT_H

#include "remote/ssh/uri.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QU_SSH_ENV "QEMU_UPGRADE_SSH"
#define QU_SSH_REMOTE_COMMAND "qemu-upgrade agent --stdio"
#define QU_SSH_TAIL 2048 /* bytes of ssh's stderr kept */

struct qu_ssh {
	pid_t pid;               /* ssh (or the shell running QEMU_UPGRADE_SSH); 0 once reaped */
	int err;                 /* the read end of its stderr; -1 once at its end */
	char tail[QU_SSH_TAIL];  /* the last of what it wrote there */
	size_t len;
	int status;              /* its wait status, once reaped */
};

/* Starts ssh to u; returns our end of the socketpair (close-on-exec) or -errno with a message. */
int qu_ssh_start(const struct qu_ssh_uri *u, struct qu_ssh *s);
/* Takes in what ssh wrote on stderr so far, never waiting; with deadline_us (not 0), until its
 * stderr ends (ssh exited) or the deadline passes. */
void qu_ssh_drain(struct qu_ssh *s, uint64_t deadline_us);
/* The last lines (at most `lines`) ssh wrote on stderr, printable, joined with " / " into buf
 * ("" when none). */
void qu_ssh_said(const struct qu_ssh *s, int lines, char *buf, size_t len);
/* Once our end of the socket is closed (ssh sees its input end, and ends with the agent's
 * session): waits for ssh until deadline_us, then kills it; reaps it either way. */
void qu_ssh_stop(struct qu_ssh *s, uint64_t deadline_us);

#endif
