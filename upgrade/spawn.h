/* One way to start a helper process that outlives the tool (the pty relay, the guardian, the
 * tap watchers): it runs a function of ours, not a program, in a process that holds only the
 * descriptors it was given, in a session of its own, with nothing of the tool's signal
 * handling, working directory or terminal. */
#ifndef QU_SPAWN_H
#define QU_SPAWN_H

#include <sys/types.h>

/* How many descriptors a helper may be given. */
#define QU_SPAWN_MAX_FDS 8

enum {
	/* The helper stays the caller's child (one fork, not two), and the caller reaps it: for
	 * a helper whose end the caller waits for (the guardian, released when the tool is done,
	 * and known as the tool's child to --recover's message and to the tests). Without it the
	 * helper is a grandchild that nobody has to reap, reparented at once. */
	QU_SPAWN_CHILD = 1 << 0,
	/* fd 2 stays the caller's stderr (the guardian's word on what it settled goes where the
	 * tool's own messages go); without it stderr is /dev/null, as stdin and stdout always are. */
	QU_SPAWN_KEEP_STDERR = 1 << 1,
	/* SIGTERM is ignored too: a helper that must not die before its work is done (the
	 * guardian). Without it SIGTERM ends the helper, so that it can be stopped. */
	QU_SPAWN_IGNORE_TERM = 1 << 2,
};

struct qu_spawn {
	const int *fds;      /* given to the helper as 3, 4, ... in this order (close-on-exec there) */
	unsigned nfds;       /* at most QU_SPAWN_MAX_FDS */
	unsigned flags;      /* QU_SPAWN_* */
	const char *name;    /* its name in ps (PR_SET_NAME, 15 characters), or NULL: the tool's */
};

/* Starts body(arg) in a new process and returns 0 once that process is set up, with its PID
 * in *pid; -errno with a message if it could not be started (nothing is left running then).
 * The process's exit status is what body returns; it never returns into the caller's code.
 * In it: a session of its own; no signal blocked, every disposition the default but SIGPIPE,
 * SIGHUP and SIGINT ignored (and SIGTERM with QU_SPAWN_IGNORE_TERM); stdin and stdout (and
 * stderr unless kept) on /dev/null; the given descriptors at 3.. and nothing else open;
 * working directory "/"; umask the caller's with 022 added. */
int qu_spawn_detached(const struct qu_spawn *s, int (*body)(void *arg), void *arg, pid_t *pid);

#endif
