/* Where a QEMU command line puts its monitors and other listening UNIX sockets. */
#include "qemu-integration/monitors.h"
#include "qemu-integration/opts.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/log.h"
#include "qemu-integration/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "-mon chardev=ID,mode=control" names ID as a QMP monitor; pretty=on is remembered. */
static int mon_is_control(const struct qu_argv *argv, const char *chardev, int *pretty)
{
	for (long i = -1; (i = qu_argv_find(argv, "mon", (size_t)(i + 1))) >= 0;) {
		struct qu_opts o;
		if (qu_opts_parse(argv->a[i].val, "chardev", &o) < 0)
			return -ENOMEM;
		const char *c = qu_opts_get(&o, "chardev"), *mode = qu_opts_get(&o, "mode");
		int hit = c && !strcmp(c, chardev) && mode && !strcmp(mode, "control");
		if (hit && pretty)
			*pretty = qu_opts_get_bool(&o, "pretty");
		qu_opts_free(&o);
		if (hit)
			return 1;
	}
	return 0;
}

static int add_listener(struct qu_vm *vm, const struct qu_listener *l)
{
	if (vm->nlis == QU_MAX_LISTENERS)
		return qu_err(-E2BIG, "more than %d listening chardev sockets", QU_MAX_LISTENERS);
	vm->lis[vm->nlis++] = *l;
	return 0;
}

static int chardev_listener(struct qu_vm *vm, long i)
{
	struct qu_opts o;
	struct qu_listener l = { .arg = i, .old_fd = -1 };
	int r = 0;
	if (qu_opts_parse(vm->argv.a[i].val, "backend", &o) < 0)
		return -ENOMEM;
	const char *backend = qu_opts_get(&o, "backend"), *id = qu_opts_get(&o, "id");
	const char *path = qu_opts_get(&o, "path"), *fd = qu_opts_get(&o, "fd");
	if (!backend || strcmp(backend, "socket") || !id || !strcmp(id, QU_CTL_CHARDEV) ||
	    !qu_opts_get_bool(&o, "server"))
		goto out;
	snprintf(l.chardev, sizeof(l.chardev), "%s", id);
	if (path) {
		snprintf(l.path, sizeof(l.path), "%s", path);
	} else if (qu_fd_number(fd) >= 0) {
		/* Handed over by an earlier upgrade (or by a manager, as libvirt passes its
		 * monitor): the path is in the socket table. A name (getfd) is no number to find;
		 * the rewriter refuses it. */
		const char *link = qu_fdtab_link(&vm->fds, qu_fd_number(fd));
		unsigned long ino;
		l.old_fd = qu_fd_number(fd);
		if (link && sscanf(link, "socket:[%lu]", &ino) == 1)
			qu_proc_unix_path(vm->pid, ino, l.path, sizeof(l.path), NULL);
	} else {
		goto out; /* a TCP server, or fd= by name: not a UNIX socket we can carry here */
	}
	r = mon_is_control(&vm->argv, id, &l.pretty);
	if (r >= 0) {
		l.control = r;
		r = add_listener(vm, &l);
	}
out:
	qu_opts_free(&o);
	return r;
}

/* -qmp / -qmp-pretty / -monitor with QEMU's legacy "unix:PATH,server=on,wait=off" syntax. */
static int legacy_listener(struct qu_vm *vm, long i)
{
	const char *opt = vm->argv.a[i].opt;
	struct qu_opts o;
	int r = 0;
	if (qu_opts_parse(vm->argv.a[i].val, "spec", &o) < 0)
		return -ENOMEM;
	const char *spec = qu_opts_get(&o, "spec");
	if (spec && !strncmp(spec, "unix:", 5) && qu_opts_get_bool(&o, "server")) {
		struct qu_listener l = { .arg = i, .legacy = 1, .old_fd = -1 };
		snprintf(l.chardev, sizeof(l.chardev), "qemu-upgrade-mon%ld", i);
		snprintf(l.path, sizeof(l.path), "%s", spec + 5);
		l.control = strcmp(opt, "monitor") != 0;
		l.pretty = !strcmp(opt, "qmp-pretty");
		if (!strcmp(opt, "monitor") && strstr(vm->argv.a[i].val, "mode=control"))
			l.control = 1;
		r = add_listener(vm, &l);
	}
	qu_opts_free(&o);
	return r;
}

int qu_find_listeners(struct qu_vm *vm)
{
	vm->nlis = 0;
	for (size_t i = 0; i < vm->argv.n; i++) {
		const char *opt = vm->argv.a[i].opt;
		int r = 0;
		if (!opt)
			continue;
		if (!strcmp(opt, "chardev"))
			r = chardev_listener(vm, (long)i);
		else if (!strcmp(opt, "qmp") || !strcmp(opt, "qmp-pretty") || !strcmp(opt, "monitor"))
			r = legacy_listener(vm, (long)i);
		if (r < 0)
			return r;
	}
	return 0;
}

int qu_find_rebound(struct qu_vm *vm)
{
	vm->nrebound = 0;
	for (size_t i = 0; i < vm->argv.n && vm->nrebound < QU_MAX_REBOUND; i++) {
		const char *opt = vm->argv.a[i].opt, *val = vm->argv.a[i].val;
		struct qu_opts o;
		if (!opt || !val || strcmp(opt, "vnc") || qu_opts_parse(val, "vnc", &o) < 0)
			continue;
		const char *display = qu_opts_get(&o, "vnc");
		if (display && !strncmp(display, "unix:", 5) && display[5] && strlen(display + 5) < QU_SUN_PATH_MAX)
			snprintf(vm->rebound[vm->nrebound++], QU_SUN_PATH_MAX, "%s", display + 5);
		qu_opts_free(&o);
	}
	return 0;
}

int qu_find_qmp_path(const struct qu_vm *vm, char *path, size_t len)
{
	for (size_t i = 0; i < vm->nlis; i++) {
		if (vm->lis[i].control && vm->lis[i].path[0]) {
			snprintf(path, len, "%s", vm->lis[i].path);
			return 0;
		}
	}
	return -ENOENT;
}
