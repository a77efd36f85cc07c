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

#endif
