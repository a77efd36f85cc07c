/* The destination's copies of what the VM had on its old host, made from the specs the tool
 * sent (no descriptor crosses hosts): guest RAM as a new memfd, listening sockets at the same
 * paths, taps opened by name, vhost-net, log files, and the empty images a disk copy goes
 * into. What belongs to the VM is made as its user, only where that user may make it, never
 * over an existing file; each file made goes into the session's record at once, so that
 * whoever ends the session can remove it. */
#ifndef QU_REMOTE_RECREATE_H
#define QU_REMOTE_RECREATE_H

#include "remote/record.h"
#include "upgrade/fdpass/asuser.h"

#include <stdint.h>

/* A descriptor of kind (QU_FD_*) for the new QEMU, named name, from its spec: the open
 * descriptor, or -errno with a message. who: the VM's user. */
int qu_recreate_fd(const struct qu_ident *who, struct qu_session_record *made, unsigned kind, const char *name,
		   const char *spec);
/* An image of format and size at path, which must not exist here: created empty as who, then
 * formatted by qemu-img running as who. */
int qu_recreate_image(const struct qu_ident *who, struct qu_session_record *made, const char *path,
		      const char *format, unsigned long long size, uint64_t deadline_us);

#endif
