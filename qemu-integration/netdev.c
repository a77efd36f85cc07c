/* Tap network backends: which descriptors of the old QEMU are the tap's queues. */
#include "qemu-integration/netdev.h"
#include "qemu-integration/opts.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "qemu-integration/vm.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The interface a tun/tap descriptor is attached to ("iff:\ttap0" in its fdinfo), or "". */
static void tun_iff(pid_t pid, int fd, char *buf, size_t len)
{
	char path[64], *text = NULL;
	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	if (qu_read_file(path, &text, NULL) < 0)
		return;
	char *iff = strstr(text, "\niff:\t");
	if (iff && sscanf(iff + 6, "%31s", buf) != 1)
		buf[0] = '\0';
	free(text);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* QEMU opens a multiqueue tap's queues in order, so ascending descriptor numbers are the
 * queues in order. */
static int taps_by_name(pid_t pid, const char *ifname, int *fds, int max)
{
	char path[64], iff[32];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	for (struct dirent *e; (e = readdir(d));) {
		int fd = atoi(e->d_name);
		char link[32];
		if (e->d_name[0] == '.' || qu_proc_fd_link(pid, fd, link, sizeof(link)) < 0 ||
		    strcmp(link, "/dev/net/tun"))
			continue;
		tun_iff(pid, fd, iff, sizeof(iff));
		if (!strcmp(iff, ifname) && n < max)
			fds[n++] = fd;
	}
	closedir(d);
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	return n;
}

/* fd=N or fds=N:M:... (also given as "fds" in JSON). */
static int numbered_fds(const char *fd, const char *fds, int *out, int max)
{
	int n = 0;
	if (fd)
		out[n++] = atoi(fd);
	for (const char *p = fds; p && *p && n < max; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL)
		out[n++] = atoi(p);
	return n;
}

static int add_tap(struct qu_vm *vm, long arg, const char *id, const char *ifname, const char *fd,
		   const char *fds, const char *downscript, int vhost)
{
	struct qu_tap *t;
	if (vm->ntaps == QU_MAX_NETDEVS)
		return qu_err(-E2BIG, "more than %d tap netdevs", QU_MAX_NETDEVS);
	t = &vm->taps[vm->ntaps++];
	memset(t, 0, sizeof(*t));
	t->arg = arg;
	snprintf(t->id, sizeof(t->id), "%s", id ? id : "");
	t->vhost = vhost;
	if (fd || fds) {
		t->nfds = numbered_fds(fd, fds, t->old_fds, QU_MAX_QUEUES);
		if (t->nfds > 0)
			tun_iff(vm->pid, t->old_fds[0], t->ifname, sizeof(t->ifname));
	} else if (ifname) {
		snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
		t->nfds = taps_by_name(vm->pid, ifname, t->old_fds, QU_MAX_QUEUES);
		/* QEMU runs a downscript (default /etc/qemu-ifdown) for taps it opened itself. */
		t->downscript = !downscript || (strcmp(downscript, "no") && *downscript);
	}
	if (t->nfds <= 0)
		t->nfds = 0; /* plan refuses it: no descriptor found */
	return 0;
}

/* QemuOpts booleans: on/yes/true/y (QEMU's qapi_bool_parse). */
static int opt_true(const char *v)
{
	return v && (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "y"));
}

int qu_find_taps(struct qu_vm *vm)
{
	vm->ntaps = 0;
	for (long i = -1; (i = qu_argv_find(&vm->argv, "netdev", (size_t)(i + 1))) >= 0;) {
		const char *val = vm->argv.a[i].val;
		int r = 0;
		if (val[0] == '{') {
			json_object *o = json_tokener_parse(val), *v;
			const char *k[6] = { "type", "id", "ifname", "fd", "fds", "downscript" };
			const char *s[6] = { NULL };
			for (int j = 0; o && j < 6; j++)
				if (json_object_object_get_ex(o, k[j], &v))
					s[j] = json_object_get_string(v);
			int vhost = o && ((json_object_object_get_ex(o, "vhost", &v) && json_object_get_boolean(v)) ||
					  (json_object_object_get_ex(o, "vhostforce", &v) && json_object_get_boolean(v)) ||
					  json_object_object_get_ex(o, "vhostfd", &v) || json_object_object_get_ex(o, "vhostfds", &v));
			if (s[0] && !strcmp(s[0], "tap"))
				r = add_tap(vm, i, s[1], s[2], s[3], s[4], s[5], vhost);
			json_object_put(o);
		} else {
			struct qu_opts o;
			if (qu_opts_parse(val, "type", &o) < 0)
				return -ENOMEM;
			const char *type = qu_opts_get(&o, "type");
			int vhost = opt_true(qu_opts_get(&o, "vhost")) || opt_true(qu_opts_get(&o, "vhostforce")) ||
				    qu_opts_get(&o, "vhostfd") || qu_opts_get(&o, "vhostfds");
			if (type && !strcmp(type, "tap"))
				r = add_tap(vm, i, qu_opts_get(&o, "id"), qu_opts_get(&o, "ifname"), qu_opts_get(&o, "fd"),
					    qu_opts_get(&o, "fds"), qu_opts_get(&o, "downscript"), vhost);
			qu_opts_free(&o);
		}
		if (r < 0)
			return r;
	}
	return 0;
}
