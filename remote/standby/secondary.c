/* The secondary's command line (secondary.h). */
#include "remote/standby/secondary.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/opts.h"
#include "upgrade/fdpass/carried.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int shared_backend(const char *type)
{
	return type && (!strcmp(type, "memory-backend-file") || !strcmp(type, "memory-backend-memfd"));
}

/* The descriptor number a backend's mem-path names (/proc/self/fd/N, /dev/fd/N), or -1. */
static int fd_of_path(const char *path)
{
	const char *n = NULL;
	if (path && !strncmp(path, "/proc/self/fd/", 14))
		n = path + 14;
	else if (path && !strncmp(path, "/dev/fd/", 8))
		n = path + 8;
	return n ? qu_fd_number(n) : -1;
}

static void drop_fd(struct qu_carried *fds, size_t *nfds, int target)
{
	for (size_t i = 0; target >= 0 && i < *nfds; i++) {
		if (fds[i].target != target || fds[i].kind != QU_FD_RAM)
			continue;
		memmove(fds + i, fds + i + 1, (*nfds - i - 1) * sizeof(*fds));
		(*nfds)--;
		return;
	}
}

/* A JSON -object: rewritten in JSON. 1 when changed, 0 when not a shared backend. */
static int json_backend(const char *text, char **out, int *fd)
{
	json_object *o = json_tokener_parse(text), *v;
	const char *type = o && json_object_object_get_ex(o, "qom-type", &v) ? json_object_get_string(v) : NULL;
	if (!o || !shared_backend(type)) {
		json_object_put(o);
		return o ? 0 : qu_err(-EINVAL, "an -object the secondary needs is not JSON QEMU reads");
	}
	json_object *n = json_object_new_object(), *id, *size;
	if (!json_object_object_get_ex(o, "id", &id) || !json_object_object_get_ex(o, "size", &size)) {
		json_object_put(o);
		json_object_put(n);
		return qu_err(-EINVAL, "a RAM backend without id or size: cannot give the secondary its RAM");
	}
	*fd = json_object_object_get_ex(o, "mem-path", &v) ? fd_of_path(json_object_get_string(v)) : -1;
	json_object_object_add(n, "qom-type", json_object_new_string("memory-backend-ram"));
	json_object_object_add(n, "id", json_object_get(id));
	json_object_object_add(n, "size", json_object_get(size));
	*out = strdup(json_object_to_json_string_ext(n, JSON_C_TO_STRING_PLAIN));
	json_object_put(n);
	json_object_put(o);
	return *out ? 1 : -ENOMEM;
}

static int keyval_backend(const char *text, char **out, int *fd)
{
	struct qu_opts o = { 0 };
	int r = qu_opts_parse(text, "qom-type", &o);
	if (r < 0)
		return qu_err(r, "an -object the secondary needs cannot be read");
	const char *type = qu_opts_get(&o, "qom-type"), *id = qu_opts_get(&o, "id"), *size = qu_opts_get(&o, "size");
	if (!shared_backend(type)) {
		qu_opts_free(&o);
		return 0;
	}
	if (!id || !size) {
		qu_opts_free(&o);
		return qu_err(-EINVAL, "a RAM backend without id or size: cannot give the secondary its RAM");
	}
	*fd = fd_of_path(qu_opts_get(&o, "mem-path"));
	const char *kv[] = { "qom-type", "memory-backend-ram", "id", id, "size", size, NULL };
	*out = qu_opts_from(1, kv);
	qu_opts_free(&o);
	return *out ? 1 : -ENOMEM;
}

int qu_colo_private_ram(struct qu_argv *argv, struct qu_carried *fds, size_t *nfds)
{
	int changed = 0;
	for (long i = qu_argv_find(argv, "object", 0); i >= 0; i = qu_argv_find(argv, "object", (size_t)i + 1)) {
		const char *val = argv->a[i].val;
		char *text = NULL;
		int fd = -1;
		int r = !val ? 0 : val[0] == '{' ? json_backend(val, &text, &fd) : keyval_backend(val, &text, &fd);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		r = qu_argv_set(argv, (size_t)i, "object", text);
		free(text);
		if (r < 0)
			return r;
		drop_fd(fds, nfds, fd);
		changed++;
	}
	return changed;
}
