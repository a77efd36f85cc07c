/* Descriptor sets as QMP query-fdsets lists them: every member, whoever added it (-add-fd on
 * the command line or QMP add-fd at run time), checked before it is believed. */
#ifndef QU_FDSETS_H
#define QU_FDSETS_H

#include "qemu-integration/vm.h"

#include <json-c/json.h>

/* Fills vm->fdset_fds from query-fdsets' answer. A member no QEMU could list (a set number
 * above QU_MAX_FDSET_ID or below 0, a descriptor out of range, an opaque that is not a string
 * of printable bytes that fits) is left out and sets vm->fdsets_invalid; members past
 * QU_MAX_FDSET_FDS set vm->fdsets_truncated. An answer that is not a list is invalid too. */
void qu_fdsets_read(json_object *answer, struct qu_vm *vm);

/* -add-fd set=N,fd=M[,opaque=X]: QEMU dups M into set N and closes M, so what is carried is
 * the set's member as query-fdsets lists it (same set, same opaque), passed at a new number T:
 * -add-fd set=N,fd=T[,opaque=X]. /dev/fdset/N keeps naming the same set. NULL when the option
 * names exactly one member (*member: its index in vm->fdset_fds), else why it cannot be
 * carried. argv: the command line the option is on (options of the same set and opaque
 * cannot be told apart from their members). */
const char *qu_fdset_member(const struct qu_vm *vm, const struct qu_argv *argv, const char *val, int *member);

#endif
