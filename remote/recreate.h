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

#include <stddef.h>
#include <stdint.h>

struct qu_carried;

/* A descriptor for the new QEMU, as the tool described it (kind, name, spec): the open
 * descriptor, or -errno with a message. who: the VM's user. */
int qu_recreate_fd(const struct qu_ident *who, struct qu_session_record *made, const struct qu_carried *c);
/* Whether this side can re-create a descriptor of kind (upgrade/fdpass/kinds.h says which
 * kinds may go to another host: tests/unit/test-kinds.c checks that the two agree). */
int qu_recreate_knows(unsigned kind);
/* An image of format and size at path, which must not exist here: created empty as who, then
 * formatted by qemu-img running as who; over backing file `backing` (as written in the image's
 * header, of backing_format) when not NULL: a new top for --copy-storage-inc, whose chain the
 * caller checked (qemu-img does not open it: -u). */
int qu_recreate_image(const struct qu_ident *who, struct qu_session_record *made, const char *path,
		      const char *format, unsigned long long size, const char *backing, const char *backing_format,
		      uint64_t deadline_us);
/* qemu-img in PATH (buf), or NULL. */
const char *qu_find_qemu_img(char *buf, size_t len);

#endif
