/* Tap network backends: which descriptors of the old QEMU are the tap's queues. */
#include "qemu-integration/netdev.h"
#include "qemu-integration/option.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/fdpass/tapsteer.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "qemu-integration/vm.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Whether the old QEMU's tap queue fd carries a virtio-net header, read from the descriptor
 * itself (TUNGETIFF on a copy taken through the pinned pidfd): with fd= the command line does
 * not say, and a QEMU given fd= follows the descriptor. -1 when it cannot be read. */
static int tun_vnet_hdr(const struct qu_vm *vm, int fd)
{
	if (vm->pin.pidfd <= 0)
		return -1;
	int copy = qu_pidfd_getfd(vm->pin.pidfd, fd);
	if (copy < 0)
		return -1;
	int r = qu_tap_vnet_hdr(copy);
	close(copy);
	return r < 0 ? -1 : r;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* QEMU opens a multiqueue tap's queues in order, so ascending descriptor numbers are the
 * queues in order. */
static int taps_by_name(const struct qu_fdtab *tab, const char *ifname, int *fds, int max)
{
	char iff[32];
	int n = 0;
	for (size_t i = 0; i < tab->n; i++) {
		if (strcmp(tab->e[i].link, "/dev/net/tun"))
			continue;
		/* fdinfo only for tun descriptors: the one thing the table does not hold. */
		tun_iff(tab->pid, tab->e[i].fd, iff, sizeof(iff));
		if (!strcmp(iff, ifname) && n < max)
			fds[n++] = tab->e[i].fd;
	}
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	return n;
}

int qu_netdev_fd_list(const char *text, int *out, int max)
{
	int n = 0;
	for (const char *p = text;; p++) {
		const char *start = p;
		long v = 0;
		while (*p >= '0' && *p <= '9' && p - start < 8)
			v = v * 10 + (*p++ - '0');
		if (p == start || v >= (1 << 20) || n == max || (*p && *p != ':'))
			return -EINVAL;
		out[n++] = (int)v;
		if (!*p)
			return n;
	}
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
		/* QEMU takes fd= or fds=, never both; a name or a list longer than this tool
		 * carries leaves nfds 0, and the tap is refused rather than half carried. */
		int n = fd && fds ? -EINVAL : qu_netdev_fd_list(fd ? fd : fds, t->old_fds, fd ? 1 : QU_MAX_QUEUES);
		t->nfds = n > 0 ? n : 0;
		if (t->nfds > 0)
			tun_iff(vm->pid, t->old_fds[0], t->ifname, sizeof(t->ifname));
	} else if (ifname) {
		snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
		t->nfds = taps_by_name(&vm->fds, ifname, t->old_fds, QU_MAX_QUEUES);
		/* QEMU runs a downscript (default /etc/qemu-ifdown) for taps it opened itself. */
		t->downscript = !downscript || (strcmp(downscript, "no") && *downscript);
	}
	if (t->nfds <= 0)
		t->nfds = 0; /* plan refuses it: no descriptor found */
	t->vnet_hdr = t->nfds ? tun_vnet_hdr(vm, t->old_fds[0]) : -1;
	return 0;
}

int qu_find_taps(struct qu_vm *vm)
{
	vm->ntaps = 0;
	for (long i = -1; (i = qu_argv_find(&vm->argv, "netdev", (size_t)(i + 1))) >= 0;) {
		/* A value that is not an object cannot have started the old QEMU either. */
		json_object *o = qu_option_parse("netdev", vm->argv.a[i].val);
		const char *type = qu_option_get(o, "type");
		int r = 0;
		if (type && !strcmp(type, "tap")) {
			int vhost = qu_option_true(o, "vhost") || qu_option_true(o, "vhostforce") ||
				    qu_option_get(o, "vhostfd") || qu_option_get(o, "vhostfds");
			r = add_tap(vm, i, qu_option_get(o, "id"), qu_option_get(o, "ifname"), qu_option_get(o, "fd"),
				    qu_option_get(o, "fds"), qu_option_get(o, "downscript"), vhost);
		}
		json_object_put(o);
		if (r < 0)
			return r;
	}
	return 0;
}
