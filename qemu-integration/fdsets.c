#include "qemu-integration/fdsets.h"
#include "qemu-integration/opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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


const char *qu_fdset_member(const struct qu_vm *vm, const struct qu_argv *argv, const char *val, int *member)
{
	static const char *const keys[] = { "set", "fd", "opaque", NULL };
	struct qu_opts o;
	const char *why = NULL;
	if (qu_opts_parse(val, NULL, &o) < 0)
		return "it cannot be read";
	for (size_t k = 0; k < o.n && !why; k++) {
		const char *const *ok = keys;
		while (*ok && strcmp(*ok, o.v[k].key))
			ok++;
		if (!*ok)
			why = "it has an option other than set=, fd= and opaque=";
	}
	int set = qu_fd_number(qu_opts_get(&o, "set")), fd = qu_fd_number(qu_opts_get(&o, "fd"));
	const char *opaque = qu_opts_get(&o, "opaque");
	if (!why && (set < 0 || fd < 0))
		why = "it needs set= and fd= as numbers";
	size_t matches = 0, same = 0;
	for (size_t k = 0; !why && k < vm->nfdset_fds; k++) {
		const struct qu_fdset_fd *e = &vm->fdset_fds[k];
		if (e->set == set && e->has_opaque == (opaque != NULL) && (!opaque || !strcmp(e->opaque, opaque))) {
			matches++;
			*member = (int)k;
		}
	}
	/* Options of the same set and opaque cannot be told apart from their members. */
	for (size_t i = 0; !why && i < argv->n; i++) {
		struct qu_opts x;
		if (!argv->a[i].opt || strcmp(argv->a[i].opt, "add-fd") || !argv->a[i].val ||
		    qu_opts_parse(argv->a[i].val, NULL, &x) < 0)
			continue;
		const char *xo = qu_opts_get(&x, "opaque");
		if (qu_fd_number(qu_opts_get(&x, "set")) == set && !xo == !opaque && (!xo || !strcmp(xo, opaque)))
			same++;
		qu_opts_free(&x);
	}
	qu_opts_free(&o);
	if (why)
		return why;
	if (vm->fdsets_truncated)
		return "the old QEMU's descriptor sets have more members than can be carried";
	if (matches == 0)
		return "its descriptor is not in the old QEMU's set (query-fdsets lists no member with this "
		       "set and opaque: it was removed, or QEMU did not take it)";
	if (matches > 1 || same > 1)
		return "several descriptors of this set have the same opaque, and cannot be told apart";
	return NULL;
}
