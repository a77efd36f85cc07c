/* Pty character devices. Stock QEMU cannot take an existing pty master over (a new QEMU
 * makes a new /dev/pts), and one given to it as a tty device spins its main loop while
 * nobody holds the other end. So a pty's master stays with a small relay process
 * (upgrade/ptyrelay.c) and QEMU gets a connected socket to it instead: the guest keeps its
 * /dev/pts/N, and later upgrades carry that socket like any descriptor. */
#include "qemu-integration/ptys.h"
#include "qemu-integration/opts.h"
#include "qemu-integration/qmp.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "qemu-integration/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The master descriptor of /dev/pts/N in pid: a /dev/ptmx descriptor whose fdinfo says
 * tty-index N. */
static int master_fd(const struct qu_fdtab *tab, const char *pts)
{
	char path[96], *info = NULL;
	int found = -1;
	const char *num = strrchr(pts, '/');
	if (!num)
		return -1;
	for (size_t i = 0; found < 0 && i < tab->n; i++) {
		int fd = tab->e[i].fd;
		if (!strstr(tab->e[i].link, "ptmx"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)tab->pid, fd);
		if (qu_read_file(path, &info, NULL) == 0) {
			char *t = strstr(info, "tty-index:");
			if (t && atoi(t + 10) == atoi(num + 1))
				found = fd;
			free(info);
			info = NULL;
		}
	}
	return found;
}

static int add_pty(struct qu_vm *vm, const struct qu_pty *p)
{
	if (vm->nptys == QU_MAX_PTYS)
		return qu_err(-E2BIG, "more than %d pty character devices", QU_MAX_PTYS);
	vm->ptys[vm->nptys++] = *p;
	return 0;
}

/* A member QMP answered, as a string: "" for a JSON null (a hostile QEMU may send one). */
static const char *str_of(json_object *o)
{
	const char *s = json_object_get_string(o);
	return s ? s : "";
}

int qu_find_ptys(struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us)
{
	int serial = 0, monitor = 0, r = 0;
	vm->nptys = 0;
	for (size_t i = 0; i < vm->argv.n && r == 0; i++) {
		const char *opt = vm->argv.a[i].opt, *val = vm->argv.a[i].val;
		struct qu_pty p = { .arg = (long)i, .old_fd = -1 };
		if (!opt || !val)
			continue;
		if (!strcmp(opt, "serial")) {
			if (!strcmp(val, "pty")) {
				p.serial = 1;
				snprintf(p.chardev, sizeof(p.chardev), "serial%d", serial);
				r = add_pty(vm, &p);
			}
			serial += strcmp(val, "none") != 0; /* QEMU does not number "none" */
			continue;
		}
		if (!strcmp(opt, "monitor")) {
			/* QEMU labels it compat_monitorN, N counting -qmp options too: matched below
			 * by order among the pty ones. */
			if (!strcmp(val, "pty")) {
				p.monitor = ++monitor;
				r = add_pty(vm, &p);
			}
			continue;
		}
		if (strcmp(opt, "chardev") || val[0] == '{')
			continue;
		struct qu_opts o;
		if (qu_opts_parse(val, "backend", &o) < 0)
			return -ENOMEM;
		const char *b = qu_opts_get(&o, "backend"), *id = qu_opts_get(&o, "id"), *fd = qu_opts_get(&o, "fd");
		if (b && id && !strcmp(b, "pty")) {
			snprintf(p.chardev, sizeof(p.chardev), "%s", id);
			r = add_pty(vm, &p);
		} else if (b && id && fd && !strcmp(b, "socket") && !qu_opts_get_bool(&o, "server") &&
			   !qu_opts_get(&o, "tls-creds") && !qu_opts_get_bool(&o, "telnet") &&
			   !qu_opts_get_bool(&o, "tn3270") && !qu_opts_get_bool(&o, "websocket")) {
			/* A connected socket (a pty relay's, or one passed in): carried as it is, once it
			 * is known to be a socket. Protocols on top (TLS, telnet) keep state in QEMU. */
			const char *link = qu_fdtab_link(&vm->fds, atoi(fd));
			if (link && !strncmp(link, "socket:", 7)) {
				snprintf(p.chardev, sizeof(p.chardev), "%s", id);
				p.relayed = 1;
				p.old_fd = atoi(fd);
				r = add_pty(vm, &p);
			}
		}
		qu_opts_free(&o);
	}
	if (r < 0 || vm->nptys == 0)
		return r;
	/* Which /dev/pts each one has: query-chardev's "pty:/dev/pts/N". */
	json_object *list = NULL;
	if ((r = qu_qmp_query_list(q, "query-chardev", deadline_us, &list)) < 0)
		return r;
	/* -monitor pty: the n-th one is the n-th compat_monitor chardev on a pty, by number. */
	for (size_t k = 0; k < vm->nptys; k++) {
		struct qu_pty *p = &vm->ptys[k];
		int best = -1, seen = 0, last = -1;
		while (p->monitor && seen < p->monitor) {
			best = -1;
			for (size_t i = 0; i < json_object_array_length(list); i++) {
				json_object *c = json_object_array_get_idx(list, i), *label, *file;
				int num;
				if (json_object_object_get_ex(c, "label", &label) && json_object_object_get_ex(c, "filename", &file) &&
				    sscanf(str_of(label), "compat_monitor%d", &num) == 1 &&
				    !strncmp(str_of(file), "pty:", 4) && num > last && (best < 0 || num < best))
					best = num;
			}
			if (best < 0)
				break;
			last = best;
			seen++;
		}
		if (p->monitor && best >= 0)
			snprintf(p->chardev, sizeof(p->chardev), "compat_monitor%d", best);
	}
	for (size_t k = 0; k < vm->nptys; k++) {
		struct qu_pty *p = &vm->ptys[k];
		for (size_t i = 0; !p->relayed && i < json_object_array_length(list); i++) {
			json_object *c = json_object_array_get_idx(list, i), *label, *file;
			if (json_object_object_get_ex(c, "label", &label) && json_object_object_get_ex(c, "filename", &file) &&
			    !strcmp(str_of(label), p->chardev) && !strncmp(str_of(file), "pty:", 4))
				qu_copy_printable(p->pts, sizeof(p->pts), str_of(file) + 4);
		}
		if (!p->relayed && p->pts[0])
			p->old_fd = master_fd(&vm->fds, p->pts);
		if (!p->relayed && p->old_fd < 0)
			qu_debug("pty chardev '%s' (%s): no master descriptor found", p->chardev, p->pts[0] ? p->pts : "?");
	}
	json_object_put(list);
	return 0;
}
