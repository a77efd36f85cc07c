/* Descriptors over a UNIX socket with SCM_RIGHTS.
 *
 * At most QU_SCM_MAX_FDS per message (the kernel's SCM_MAX_FD is 253) and always at least one
 * data byte, since a message with no data does not carry its control part on stream sockets. */
#ifndef QU_SCM_H
#define QU_SCM_H

#include <stddef.h>
#include <sys/types.h>

#define QU_SCM_MAX_FDS 252

/* Sends all of buf; the fds ride with the first byte. Returns 0 or -errno. */
int qu_scm_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds);
/* One recvmsg: up to len bytes; received descriptors (close-on-exec) are appended to
 * fds[*nfds..max_fds). More descriptors than fit, or a truncated control part, is -EMSGSIZE
 * (every received descriptor is closed first). Returns bytes read (0 at EOF) or -errno. */
ssize_t qu_scm_recv(int sock, void *buf, size_t len, int *fds, size_t *nfds, size_t max_fds);

#endif
