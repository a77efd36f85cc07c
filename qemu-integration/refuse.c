/* What the new QEMU cannot be given: the rewriter's judgment of every option of the command
 * line it wrote (rewrite.c), in key=value and JSON alike (option.h), and of the descriptor sets
 * query-fdsets listed. */
#include "qemu-integration/refuse.h"
#include "qemu-integration/fdsets.h"
#include "qemu-integration/netdev.h"
#include "qemu-integration/option.h"
#include "qemu-integration/opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every reason is kept (qemu-integration/refusals.h): the operator sees all blockers at once. */
#define refuse(p, ...) qu_refusals_add(&(p)->refusals, __VA_ARGS__)

/* A chardev whose fd= is a socket this plan carries (a pty's relay, a connected socket, a
 * listener). */
static int carried_socket(const struct qu_rewrite *p, const char *fd)
{
	int n = qu_fd_number(fd);
	for (size_t i = 0; n >= 0 && i < p->nfds; i++)
		if ((p->fds[i].kind == QU_FD_PTY || p->fds[i].kind == QU_FD_SOCKET || p->fds[i].kind == QU_FD_LISTENER) &&
		    p->fds[i].target == n)
			return 1;
	return 0;
}

/* An -add-fd this plan rewrote: its fd= is a descriptor carried as a set's member. */
static int fdset_carried(const struct qu_rewrite *p, const char *val)
{
	struct qu_opts o;
	if (qu_opts_parse(val, NULL, &o) < 0)
		return 0;
	int fd = qu_fd_number(qu_opts_get(&o, "fd")), hit = 0;
	for (size_t i = 0; fd >= 0 && i < p->nfds; i++)
		hit |= p->fds[i].kind == QU_FD_FDSET && p->fds[i].target == fd;
	qu_opts_free(&o);
	return hit;
}

/* Whether every number of an fd=/fds=-style list is a descriptor this plan carries as kind. */
static int carried_list(const struct qu_rewrite *p, const char *text, unsigned kind)
{
	int fds[QU_MAX_QUEUES], n = qu_netdev_fd_list(text, fds, QU_MAX_QUEUES);
	for (int q = 0; q < n; q++) {
		size_t i = 0;
		while (i < p->nfds && !(p->fds[i].kind == kind && p->fds[i].target == fds[q]))
			i++;
		if (i == p->nfds)
			return 0;
	}
	return n > 0;
}

/* A tap the rewriter carried, whatever the form: its queues (fd= or fds=) and any vhost
 * descriptors are all ones this plan passes as such, and nothing names a device, a script or a
 * helper the new QEMU would open or run. Judged on the options, not the text, so that the
 * rewriter's own output in any form passes and a stranger's descriptor does not. */
static int tap_carried(const struct qu_rewrite *p, json_object *o)
{
	static const char *const opens[] = { "ifname", "script", "downscript", "helper", "br", NULL };
	const char *fd = qu_option_get(o, "fd"), *fds = qu_option_get(o, "fds");
	const char *vfd = qu_option_get(o, "vhostfd"), *vfds = qu_option_get(o, "vhostfds");
	for (const char *const *k = opens; *k; k++)
		if (qu_option_get(o, *k))
			return 0;
	if (!fd == !fds || !carried_list(p, fd ? fd : fds, QU_FD_TAP))
		return 0;
	return (!vfd || carried_list(p, vfd, QU_FD_VHOST)) && (!vfds || carried_list(p, vfds, QU_FD_VHOST));
}

/* Networking whose backend holds a device that cannot be opened twice (tap) or a peer
 * connection (vhost-user, a stream socket): the type may be implied, given as type=, or in
 * JSON (o: the option read in either form). Returns 1 for a tap (judged whole here), else 0. */
static int refuse_net(struct qu_rewrite *p, const char *opt, const char *val, json_object *o)
{
	static const char *const refused[] = { "bridge", "vhost-user", "vhost-vdpa", "l2tpv3", "vde", "socket",
					       "stream", "dgram", "af-xdp", "passt", NULL };
	char type[64] = "";
	snprintf(type, sizeof(type), "%s", qu_option_get(o, "type") ? qu_option_get(o, "type") : "");
	for (const char *const *k = refused; *k; k++)
		if (!strcmp(type, *k))
			refuse(p, "-%s %s: %s networking cannot be carried yet (its device or connection "
			       "cannot be opened twice)", opt, val, type);
	int tap = !strcmp(type, "tap");
	if (tap && (strcmp(opt, "netdev") || !tap_carried(p, o)))
		refuse(p, "-%s %s: this tap cannot be carried (only -netdev tap, in key=value or JSON form, "
		       "whose descriptors are found: fd=, fds= or ifname=)", opt, val);
	return tap;
}

/* Options that hand QEMU a descriptor by number or by name, on any option: a device's
 * vhostfd=, an iommufd object's fd=, a chardev's or a netdev's fd=. */
static const char *const fd_keys[] = { "fd", "fds", "vhostfd", "vhostfds", NULL };

/* Whether every descriptor of an fd=/fds=-style value is a number ("5", "5:6"); a name is
 * one the old QEMU's monitor was given with getfd, kept in that QEMU alone. */
static int fd_numbers(const char *text)
{
	int fds[QU_MAX_QUEUES];
	return qu_netdev_fd_list(text, fds, QU_MAX_QUEUES) > 0 || qu_fd_number(text) >= 0;
}

/* Descriptors the option names that this plan does not carry (o: the option read in either
 * form; tap: a tap judged whole by refuse_net). */
static void refuse_descriptors(struct qu_rewrite *p, const char *opt, const char *val, json_object *o, int tap)
{
	/* Carried listeners, ptys and sockets have fd= this plan passes by now, and taps were
	 * judged whole above; any other descriptor is a stranger's. */
	if ((!strcmp(opt, "netdev") && tap) || (!strcmp(opt, "chardev") && carried_socket(p, qu_option_get(o, "fd"))))
		return;
	for (const char *const *k = fd_keys; *k; k++) {
		const char *v = qu_option_get(o, *k);
		if (!v)
			continue;
		if (!fd_numbers(v))
			refuse(p, "-%s %s: %s=%s names a descriptor the old QEMU's monitor was given (getfd), "
			       "which no other process can be given by name: pass it by number, or remove "
			       "the option", opt, val, *k, v);
		else
			refuse(p, "-%s %s: passed-in descriptors (%s=) cannot be carried yet", opt, val, *k);
	}
}

/* Character devices judged on their backend, in whatever form they were written. */
static void refuse_chardev(struct qu_rewrite *p, const char *val, json_object *o)
{
	static const char *const refused[] = { "stdio", "pipe", "serial", "tty", "parallel", "parport", "udp", NULL };
	const char *b = qu_option_get(o, "backend");
	if (!b)
		return;
	if (!strcmp(b, "pty"))
		refuse(p, "-chardev %s: its pty master was not found in the QEMU process (no /dev/ptmx "
		       "descriptor with the tty-index query-chardev names), so the pty cannot be kept", val);
	for (const char *const *k = refused; *k; k++)
		if (!strcmp(b, *k))
			refuse(p, "-chardev %s: %s character devices cannot be carried yet", val, b);
	if (!strcmp(b, "socket") && qu_option_get(o, "host"))
		refuse(p, "-chardev %s: TCP socket servers cannot be carried yet (only UNIX sockets)", val);
}

/* Anything else holding a descriptor or a device that cannot be opened twice is refused:
 * the reasons against option i. Options QEMU takes as JSON (-object, -device, -netdev,
 * -blockdev) are judged on the same parsed options as key=value ones. */
static void refuse_option(const struct qu_vm *vm, struct qu_rewrite *p, size_t i)
{
	const char *opt = p->argv.a[i].opt, *val = p->argv.a[i].val;
	if (opt && !strcmp(opt, "snapshot"))
		refuse(p, "-snapshot: its temporary disk overlay lives in the old QEMU and cannot be "
		       "carried; the guest's writes since the start would be lost");
	if (!opt || !val)
		return;
	if (!strcmp(opt, "runas") || !strcmp(opt, "chroot") ||
	    (!strcmp(opt, "run-with") && (strstr(val, "user=") || strstr(val, "chroot="))))
		refuse(p, "-%s %s: QEMU starts as root and drops its privileges itself; its new QEMU would "
		       "have to start as root, from an environment the VM's user may have changed: not "
		       "carried (start the VM as its user, in its root, as libvirt does)", opt, val);
	if (!strcmp(opt, "readconfig"))
		refuse(p, "-readconfig %s: devices and descriptors in configuration files are not "
		       "inspected yet, so they could not be carried", val);
	if (!strcmp(opt, "add-fd")) {
		int m;
		const char *why = fdset_carried(p, val) ? NULL : qu_fdset_member(vm, &p->argv, val, &m);
		if (why)
			refuse(p, "-add-fd %s: this descriptor cannot be carried: %s", val, why);
		return;
	}
	if ((!strcmp(opt, "serial") || !strcmp(opt, "parallel") || !strcmp(opt, "monitor") ||
	     !strcmp(opt, "qmp")) && (!strcmp(val, "stdio") || !strncmp(val, "mon:", 4) ||
				       !strcmp(val, "pty") || !strncmp(val, "tcp:", 4) ||
				       (strcmp(opt, "qmp") && strcmp(opt, "monitor") && !strncmp(val, "unix:", 5))))
		refuse(p, "-%s %s: this character device cannot be carried yet", opt, val);
	json_object *o = qu_option_parse(opt, val);
	if (!o) {
		/* Only a JSON option can fail to parse, and such a value cannot have started QEMU. */
		refuse(p, "-%s %s: this JSON value cannot be read, so what it holds cannot be judged", opt, val);
		return;
	}
	const char *driver = qu_option_get(o, "driver");
	if (!strcmp(opt, "device") && driver && !strncmp(driver, "vfio", 4))
		refuse(p, "-device %s: VFIO passthrough devices cannot be carried (the device "
		       "cannot be opened twice, and its state is not migrated)", val);
	int tap = (!strcmp(opt, "netdev") || !strcmp(opt, "nic") || !strcmp(opt, "net")) && refuse_net(p, opt, val, o);
	refuse_descriptors(p, opt, val, o, tap);
	if (!strcmp(opt, "chardev"))
		refuse_chardev(p, val, o);
	json_object_put(o);
}

/* Descriptor sets that query-fdsets did not list whole: not an option's fault, refused once. */
static void refuse_fdsets(const struct qu_vm *vm, struct qu_rewrite *p)
{
	if (vm->fdsets_truncated)
		refuse(p, "the old QEMU's descriptor sets (query-fdsets) have more than %d members, more than "
		       "can be carried: remove the members no device uses (QMP remove-fd) and try again",
		       QU_MAX_FDSET_FDS);
	if (vm->fdsets_invalid)
		refuse(p, "the old QEMU's monitor listed descriptor set members no QEMU has (query-fdsets: a "
		       "set above %d, a descriptor out of range, an opaque that is not a string of at most %zu "
		       "printable bytes): the sets cannot be carried as they are",
		       QU_MAX_FDSET_ID, sizeof(vm->fdset_fds[0].opaque) - 1);
}

/* One reason per option (the first found): whatever else is wrong with it, the operator
 * changes or removes that option once. Every option is looked at. */
void qu_refuse_uncarried(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t i = 0; i < p->argv.n; i++) {
		unsigned before = qu_refusals_count(&p->refusals);
		refuse_option(vm, p, i);
		qu_refusals_keep(&p->refusals, before + 1);
	}
	refuse_fdsets(vm, p);
}
