/* Connecting to a UNIX socket whose path the VM's user controls, as that user: a child with
 * the user's identity makes the connection and hands the descriptor back (SCM_RIGHTS). The
 * kernel then checks the path and the socket's permissions as for the user: a link or a
 * socket file the user put there leads only where the user could go, and whatever listens sees
 * the user's credentials, never root's. */
#ifndef QU_ASUSER_H
#define QU_ASUSER_H

#include <sys/types.h>

/* A connected, close-on-exec socket, or -errno (the connect's own errno) with a message. */
int qu_connect_as(const char *path, uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

#endif
