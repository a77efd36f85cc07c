#include "qemu-integration/fdsets.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A member as QMP listed it, when every part of it is one a QEMU could have said: a set number
 * and a descriptor number in range, an opaque string short and printable enough to be written
 * back as it is. 0, or -EINVAL (the answer is not believed). */
static int fdset_entry(json_object *id, json_object *fd, json_object *op, struct qu_fdset_fd *e)
{
	if (!json_object_is_type(id, json_type_int) || !json_object_is_type(fd, json_type_int))
		return -EINVAL;
	int64_t set = json_object_get_int64(id), num = json_object_get_int64(fd);
	if (set < 0 || set > QU_MAX_FDSET_ID || num < 0 || num >= (1 << 20))
		return -EINVAL;
	e->set = (int)set;
	e->old_fd = (int)num;
	e->has_opaque = op != NULL;
	if (!op)
		return 0;
	const char *text = json_object_get_string(op);
	if (!json_object_is_type(op, json_type_string) || strlen(text) >= sizeof(e->opaque))
		return -EINVAL;
	for (const char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -EINVAL;
	snprintf(e->opaque, sizeof(e->opaque), "%s", text);
	return 0;
}

void qu_fdsets_read(json_object *sets, struct qu_vm *vm)
{
	if (!json_object_is_type(sets, json_type_array)) {
		vm->fdsets_invalid = 1;
		return;
	}
	for (size_t i = 0; i < json_object_array_length(sets); i++) {
		json_object *set = json_object_array_get_idx(sets, i), *id, *fds;
		if (!json_object_object_get_ex(set, "fdset-id", &id) || !json_object_object_get_ex(set, "fds", &fds) ||
		    !json_object_is_type(fds, json_type_array)) {
			vm->fdsets_invalid = 1;
			continue;
		}
		for (size_t k = 0; k < json_object_array_length(fds); k++) {
			json_object *m = json_object_array_get_idx(fds, k), *fd = NULL, *op = NULL;
			struct qu_fdset_fd e = { 0 };
			if (!json_object_object_get_ex(m, "fd", &fd))
				fd = NULL;
			if (!json_object_object_get_ex(m, "opaque", &op))
				op = NULL;
			if (fdset_entry(id, fd, op, &e) < 0) {
				vm->fdsets_invalid = 1;
				continue;
			}
			if (vm->nfdset_fds == QU_MAX_FDSET_FDS) {
				vm->fdsets_truncated = 1;
				break;
			}
			vm->fdset_fds[vm->nfdset_fds++] = e;
		}
	}
}
