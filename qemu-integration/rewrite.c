#include "qemu-integration/rewrite.h"
#include "qemu-integration/netdev.h"
#include "qemu-integration/option.h"
#include "qemu-integration/opts.h"
#include "upgrade/launcher.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <json-c/json.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every reason is kept (qemu-integration/refusals.h): the operator sees all blockers at once. */
#define refuse(p, ...) qu_refusals_add(&(p)->refusals, __VA_ARGS__)

static int carry(struct qu_rewrite *p, int old_fd, unsigned kind, const char *name)
{
	if (p->nfds == QU_MAX_CARRIED)
		return qu_err(-E2BIG, "more than %d descriptors to carry", QU_MAX_CARRIED);
	int target = QU_FD_FIRST_CARRIED;
	for (size_t i = 0; i < p->nfds; i++)
		if (p->fds[i].target >= target)
			target = p->fds[i].target + 1;
	struct qu_carried *c = &p->fds[p->nfds++];
	c->old_fd = old_fd;
	c->target = target;
	c->kind = kind;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return target;
}

static int set_opts_arg(struct qu_argv *argv, size_t i, const char *opt, struct qu_opts *o)
{
	char *text = qu_opts_format(o);
	if (!text)
		return -ENOMEM;
	int r = qu_argv_set(argv, i, opt, text);
	free(text);
	return r;
}

static int set_option_arg(struct qu_argv *argv, size_t i, const char *opt, const struct qu_option *o)
{
	char *text = qu_option_format(o);
	if (!text)
		return -ENOMEM;
	int r = qu_argv_set(argv, i, opt, text);
	free(text);
	return r;
}

/* Option i of argv opened for editing in its own form; a JSON value that is not an object
 * cannot have started the old QEMU, and is said so. */
static int open_option(const struct qu_argv *argv, size_t i, struct qu_option *o)
{
	int r = qu_option_open(argv->a[i].opt, argv->a[i].val, o);
	if (r == -EINVAL)
		return qu_err(r, "cannot parse -%s %s", argv->a[i].opt, argv->a[i].val);
	return r;
}

/* Which of QEMU's options take JSON (7.2 and 10.0 alike, measured): -object, -device, -netdev
 * and -blockdev, as libvirt writes them. -chardev, -machine, -mon and -add-fd do not: 7.2 and
 * 10.0 read "-chardev {...}" as key=value (a bare key '{"backend"...' and its garbage), and
 * "-machine {...}" as a machine type named '{...}' (unsupported). libvirt writes them as
 * key=value too (qemuChardevBuildCommandline: its JSON -chardev capability is set only by its
 * own tests, since QEMU takes none). So the rewrites of those options below (file
 * chardevs' append=, client sockets' reconnect=, the machine type, listeners, ptys) have no
 * JSON twin to write; QMP's chardev-add JSON is a nested form of its own, not a command line.
 * The rewrites that meet JSON (memory backends, taps) are written once, on a qu_option. */

/* Properties of memfd/file backends that must not reach the new QEMU: the memfd-only ones,
 * preallocation (the memory is there already) and discard-data (it would drop guest RAM when
 * the new QEMU exits). */
static const char *const dropped_backend_props[] = {
	"hugetlb", "hugetlbsize", "seal", "prealloc", "prealloc-threads", "discard-data", "mem-path",
	"share", "qom-type", NULL,
};

static int rewrite_backend(struct qu_argv *argv, size_t i, const char *mem_path)
{
	struct qu_option o;
	int r = open_option(argv, i, &o);
	if (r < 0)
		return r;
	for (const char *const *k = dropped_backend_props; *k; k++)
		if (strcmp(*k, "qom-type"))
			qu_option_del(&o, *k);
	r = qu_option_set(&o, "qom-type", "memory-backend-file");
	/* key=value: the type goes first without its key, as QEMU's own examples write it. */
	if (r == 0 && !o.json && !o.kv.implied)
		o.kv.implied = !strcmp(o.kv.v[0].key, "qom-type");
	r = r ?: qu_option_set_bool(&o, "share", 1);
	r = r ?: qu_option_set(&o, "mem-path", mem_path);
	r = r ?: set_option_arg(argv, i, "object", &o);
	qu_option_close(&o);
	return r;
}

static int convert_ram(const struct qu_ram *ram, struct qu_rewrite *p);

static int rewrite_ram(const struct qu_vm *vm, struct qu_rewrite *p)
{
	/* cpr-transfer: the new QEMU looks its RAM descriptors up by backend id in what the old
	 * one sends; the backends must stay exactly as they are. */
	if (qu_strategy_cpr(p->strategy))
		return 0;
	for (size_t k = 0; k < vm->nram; k++) {
		const struct qu_ram *ram = &vm->ram[k];
		char name[128], path[32];
		if (p->convert_mask & (1u << k)) {
			int r = convert_ram(ram, p);
			if (r < 0)
				return r;
			continue;
		}
		if (ram->arg < 0 || ram->old_fd < 0)
			continue; /* plan refused these already */
		snprintf(name, sizeof(name), "guest RAM '%s' (%s)", ram->id, ram->qom_type);
		int t = carry(p, ram->old_fd, QU_FD_RAM, name);
		if (t < 0)
			return t;
		snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "size=%llu\n", (unsigned long long)ram->size);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", t);
		int r = rewrite_backend(&p->argv, (size_t)ram->arg, path);
		if (r < 0)
			return r;
	}
	return 0;
}

static int rewrite_listeners(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t k = 0; k < vm->nlis; k++) {
		const struct qu_listener *l = &vm->lis[k];
		char name[192], mon[128];
		struct qu_opts o;
		snprintf(name, sizeof(name), "listening socket %s (chardev '%s')", l->path, l->chardev);
		int t = carry(p, l->old_fd, QU_FD_LISTENER, name);
		if (t < 0)
			return t;
		snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "path=%s\n", l->path);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", t);
		if (l->legacy) {
			if (qu_opts_parse("socket", "backend", &o) < 0)
				return -ENOMEM;
			qu_opts_set(&o, "id", l->chardev);
		} else if (qu_opts_parse(p->argv.a[l->arg].val, "backend", &o) < 0) {
			return -ENOMEM;
		}
		qu_opts_del(&o, "path");
		int r = qu_opts_set(&o, "fd", fd);
		if (r == 0)
			r = qu_opts_set(&o, "server", "on");
		/* A listening fd with wait=on would make the new QEMU block for a client at start. */
		if (r == 0)
			r = qu_opts_set(&o, "wait", "off");
		if (r == 0)
			r = set_opts_arg(&p->argv, (size_t)l->arg, "chardev", &o);
		qu_opts_free(&o);
		if (r == 0 && l->legacy) {
			snprintf(mon, sizeof(mon), "chardev=%s,mode=%s%s", l->chardev,
				 l->control ? "control" : "readline", l->pretty ? ",pretty=on" : "");
			r = qu_argv_add(&p->argv, "mon", mon);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* RAM that is copied arrives, in the new QEMU, in a shared memfd the tool creates (old_fd
 * -1: made, not taken), as a file backend with the same block name: from then on the VM's
 * RAM can be handed over. The machine's own RAM (-m, no backend) becomes an explicit backend
 * (several -machine options merge in QEMU). */
static int convert_ram(const struct qu_ram *ram, struct qu_rewrite *p)
{
	char name[128], path[32], size[32];
	if (ram->page_size)
		snprintf(name, sizeof(name), "guest RAM '%s' (copied into a new shared memfd on %llu KiB huge pages)",
			 ram->id, (unsigned long long)(ram->page_size >> 10));
	else
		snprintf(name, sizeof(name), "guest RAM '%s' (copied into a new shared memfd)", ram->id);
	int t = carry(p, -1, QU_FD_RAM, name);
	if (t < 0)
		return t;
	p->fds[p->nfds - 1].size = ram->size;
	/* The same page size as before: QEMU maps a file on hugetlbfs with its page size. */
	p->fds[p->nfds - 1].page_size = ram->page_size;
	snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "size=%llu\n", (unsigned long long)ram->size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", t);
	if (ram->arg >= 0)
		return rewrite_backend(&p->argv, (size_t)ram->arg, path);
	/* QEMU refuses -mem-path beside -machine memory-backend=; the copy's page size comes
	 * from the memfd it gets instead. */
	for (long i; (i = qu_argv_find(&p->argv, "mem-path", 0)) >= 0;)
		qu_argv_remove(&p->argv, (size_t)i);
	/* The block's name came from QMP: escaped like every value. */
	snprintf(size, sizeof(size), "%llu", (unsigned long long)ram->size);
	char *obj = qu_opts_from(1, (const char *const[]){ "qom-type", "memory-backend-file", "id", ram->id, "size", size,
						    "share", "on", "mem-path", path, NULL });
	char *mach = qu_opts_from(0, (const char *const[]){ "memory-backend", ram->id, NULL });
	int r = obj && mach ? qu_argv_add(&p->argv, "object", obj) : -ENOMEM;
	r = r ?: qu_argv_add(&p->argv, "machine", mach);
	free(obj);
	free(mach);
	return r;
}

/* A client socket chardev (QEMU connects to a server: a log collector, an agent) cannot keep
 * the old QEMU's connection; the new QEMU connects anew, and retries until the server takes
 * it (reconnect; since QEMU 9.2 spelled reconnect-ms). -chardev has no JSON form (above). */
static int reconnect_clients(struct qu_rewrite *p)
{
	int ms = p->target.ver[0] > 9 || (p->target.ver[0] == 9 && p->target.ver[1] >= 2);
	for (size_t i = 0; i < p->argv.n; i++) {
		struct qu_opts o;
		if (!p->argv.a[i].opt || strcmp(p->argv.a[i].opt, "chardev"))
			continue;
		if (qu_opts_parse(p->argv.a[i].val, "backend", &o) < 0)
			return -ENOMEM;
		const char *b = qu_opts_get(&o, "backend");
		int r = 0;
		if (b && !strcmp(b, "socket") && !qu_opts_get_bool(&o, "server") && !qu_opts_get(&o, "fd") &&
		    !qu_opts_get(&o, "reconnect") && !qu_opts_get(&o, "reconnect-ms")) {
			r = qu_opts_set(&o, ms ? "reconnect-ms" : "reconnect", ms ? "1000" : "1");
			if (r == 0)
				r = set_opts_arg(&p->argv, i, "chardev", &o);
		}
		qu_opts_free(&o);
		if (r < 0)
			return r;
	}
	return 0;
}

/* -netdev tap,id=n0,ifname=tap0,... -> -netdev tap,id=n0,fd=N (fds=N:M:... for several
 * queues), in the form it was written: QemuOpts ("tap,..." or "type=tap,...", as Proxmox
 * writes it) or JSON (as libvirt writes it). The new QEMU gets the old one's queues; scripts
 * never run again. A vhost descriptor of the old QEMU cannot be reused (its owner is that
 * process), and a QEMU that runs unprivileged cannot open /dev/vhost-net itself: the tool
 * opens one per queue and passes it as vhostfd=/vhostfds=, as libvirt does. QEMU refuses
 * every dropped key beside fd= (vnet_hdr= too: it reads the header from the descriptor). */
static const char *const dropped_tap_props[] = { "ifname", "script", "downscript", "helper", "br",
						 "fd", "fds", "queues", "vhostfd", "vhostfds", "vhost",
						 "vhostforce", "vnet_hdr", NULL };

/* QEMU's JSON -netdev takes these as strings only ("fd":25 stops it), so strings are written
 * (qu_option_set writes strings in both forms). */
static int rewrite_tap(struct qu_argv *argv, size_t i, const char *const set[4])
{
	struct qu_option o;
	int r = open_option(argv, i, &o);
	if (r < 0)
		return r;
	for (const char *const *d = dropped_tap_props; *d; d++)
		qu_option_del(&o, *d);
	for (int k = 0; k < 4 && r == 0; k += 2)
		if (set[k])
			r = qu_option_set(&o, set[k], set[k + 1]);
	r = r ?: set_option_arg(argv, i, "netdev", &o);
	qu_option_close(&o);
	return r;
}

static int rewrite_taps(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t k = 0; k < vm->ntaps; k++) {
		const struct qu_tap *t = &vm->taps[k];
		char fds[QU_MAX_QUEUES * 8] = "", vhostfds[QU_MAX_QUEUES * 8] = "", name[128];
		if (t->nfds == 0)
			continue; /* refused below */
		for (int q = 0; q < t->nfds; q++) {
			snprintf(name, sizeof(name), "tap '%s' queue %d (%s)", t->id, q, t->ifname[0] ? t->ifname : "?");
			int target = carry(p, t->old_fds[q], QU_FD_TAP, name);
			if (target < 0)
				return target;
			snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "ifname=%s\nqueues=%d\n", t->ifname, t->nfds);
			snprintf(fds + strlen(fds), sizeof(fds) - strlen(fds), "%s%d", q ? ":" : "", target);
			if (!t->vhost)
				continue;
			snprintf(name, sizeof(name), "vhost-net for tap '%s' queue %d", t->id, q);
			if ((target = carry(p, -1, QU_FD_VHOST, name)) < 0)
				return target;
			snprintf(vhostfds + strlen(vhostfds), sizeof(vhostfds) - strlen(vhostfds), "%s%d", q ? ":" : "", target);
		}
		const char *const set[4] = { t->nfds == 1 ? "fd" : "fds", fds,
					     t->vhost ? (t->nfds == 1 ? "vhostfd" : "vhostfds") : NULL, vhostfds };
		int r = rewrite_tap(&p->argv, (size_t)t->arg, set);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Pty chardevs: -chardev pty,id=X -> -chardev socket,id=X,fd=T, where T is a connected
 * socket to the relay that takes the pty master over (kind pty); -serial pty -> -serial
 * chardev:qemu-upgrade-ptyK and -monitor pty -> -mon chardev=qemu-upgrade-ptyK, with that
 * chardev. A socket an earlier upgrade made is carried as
 * it is (kind socket). */
static int rewrite_ptys(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t k = 0; k < vm->nptys; k++) {
		const struct qu_pty *t = &vm->ptys[k];
		char name[128], val[160];
		if (t->old_fd < 0)
			continue; /* refused below */
		if (t->relayed)
			snprintf(name, sizeof(name), "connected socket of chardev '%s'", t->chardev);
		else
			snprintf(name, sizeof(name), "pty %s of chardev '%s' (its master moves to a relay)", t->pts, t->chardev);
		int target = carry(p, t->old_fd, t->relayed ? QU_FD_SOCKET : QU_FD_PTY, name);
		if (target < 0)
			return target;
		int r;
		if (t->serial || t->monitor) {
			char id[64];
			snprintf(id, sizeof(id), "qemu-upgrade-pty%zu", k);
			if (t->serial)
				snprintf(val, sizeof(val), "chardev:%s", id);
			else
				snprintf(val, sizeof(val), "chardev=%s,mode=readline", id);
			r = qu_argv_set(&p->argv, (size_t)t->arg, t->serial ? "serial" : "mon", val);
			snprintf(val, sizeof(val), "socket,id=%s,fd=%d", id, target);
			r = r ?: qu_argv_add(&p->argv, "chardev", val);
		} else {
			/* The chardev's other options (logfile=, mux=, ...) stay; a pty's path= (a
			 * symlink QEMU made to the pty) is the old QEMU's and stays behind with it. */
			struct qu_opts o;
			char fdnum[16];
			if (qu_opts_parse(p->argv.a[t->arg].val, "backend", &o) < 0)
				return -ENOMEM;
			snprintf(fdnum, sizeof(fdnum), "%d", target);
			qu_opts_del(&o, "path");
			r = qu_opts_set(&o, "backend", "socket");
			r = r ?: qu_opts_set(&o, "fd", fdnum);
			r = r ?: set_opts_arg(&p->argv, (size_t)t->arg, "chardev", &o);
			qu_opts_free(&o);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* A descriptor number as QEMU's options write it: plain decimal; -1 for anything else (a name
 * the monitor was given with getfd, a sign, a space, a number too long to be a descriptor). */
static int decimal(const char *s)
{
	if (!s || !*s || strlen(s) > 6 || strspn(s, "0123456789") != strlen(s))
		return -1;
	return atoi(s);
}

/* A chardev whose fd= is a socket this plan carries (a pty's relay, a connected socket, a
 * listener). */
static int carried_socket(const struct qu_rewrite *p, const char *fd)
{
	int n = decimal(fd);
	for (size_t i = 0; n >= 0 && i < p->nfds; i++)
		if ((p->fds[i].kind == QU_FD_PTY || p->fds[i].kind == QU_FD_SOCKET || p->fds[i].kind == QU_FD_LISTENER) &&
		    p->fds[i].target == n)
			return 1;
	return 0;
}

/* -add-fd set=N,fd=M[,opaque=X]: QEMU dups M into set N and closes M, so what is carried is
 * the set's member as query-fdsets lists it (same set, same opaque), passed at a new number T:
 * -add-fd set=N,fd=T[,opaque=X]. /dev/fdset/N keeps naming the same set. NULL when the option
 * names exactly one member (*member: its index in vm->fdset_fds), else why it cannot be
 * carried. */
static const char *fdset_member(const struct qu_vm *vm, const struct qu_argv *argv, const char *val, int *member)
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
	int set = decimal(qu_opts_get(&o, "set")), fd = decimal(qu_opts_get(&o, "fd"));
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
		if (decimal(qu_opts_get(&x, "set")) == set && !xo == !opaque && (!xo || !strcmp(xo, opaque)))
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

static int carry_member(struct qu_rewrite *p, const struct qu_fdset_fd *e, const char *how)
{
	char name[192];
	snprintf(name, sizeof(name), "descriptor set %d member (fd %d in the old QEMU%s%.100s%s)", e->set, e->old_fd,
		 e->has_opaque ? ", opaque " : "", e->has_opaque ? e->opaque : "", how);
	int t = carry(p, e->old_fd, QU_FD_FDSET, name);
	if (t >= 0)
		snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "set=%d\n", e->set);
	return t;
}

/* Members QMP add-fd put in a set at run time (libvirt: hot-plugged disks, some chardevs) are
 * on no command line: each gets an -add-fd of its own, so that /dev/fdset/N names the same
 * descriptors in the new QEMU (what opened them there, a hot-plugged device, is the
 * manager's to plug again). claimed[k]: member k is an -add-fd option's. */
static int add_runtime_members(const struct qu_vm *vm, struct qu_rewrite *p, const char *claimed)
{
	for (size_t k = 0; k < vm->nfdset_fds; k++) {
		const struct qu_fdset_fd *e = &vm->fdset_fds[k];
		char set[16], fd[16];
		if (claimed[k])
			continue;
		int t = carry_member(p, e, ", added at run time");
		if (t < 0)
			return t;
		snprintf(set, sizeof(set), "%d", e->set);
		snprintf(fd, sizeof(fd), "%d", t);
		/* The opaque came from QMP: escaped like every value (inspect let through only
		 * printable ones short enough to be kept whole). */
		char *text = qu_opts_from(0, (const char *const[]){ "set", set, "fd", fd,
								     e->has_opaque ? "opaque" : NULL, e->opaque, NULL });
		int r = text ? qu_argv_add(&p->argv, "add-fd", text) : -ENOMEM;
		free(text);
		if (r < 0)
			return r;
	}
	return 0;
}

static int rewrite_fdsets(const struct qu_vm *vm, struct qu_rewrite *p)
{
	char claimed[QU_MAX_FDSET_FDS] = { 0 };
	int unmatched = 0;
	size_t n = p->argv.n;
	for (size_t i = 0; i < n; i++) {
		const char *opt = p->argv.a[i].opt, *val = p->argv.a[i].val;
		int m = -1;
		if (!opt || strcmp(opt, "add-fd") || !val)
			continue;
		if (fdset_member(vm, &vm->argv, val, &m)) {
			unmatched = 1; /* refused below */
			continue;
		}
		const struct qu_fdset_fd *e = &vm->fdset_fds[m];
		char num[16];
		claimed[m] = 1;
		int t = carry_member(p, e, "");
		if (t < 0)
			return t;
		struct qu_opts o;
		if (qu_opts_parse(val, NULL, &o) < 0)
			return -ENOMEM;
		snprintf(num, sizeof(num), "%d", t);
		int r = qu_opts_set(&o, "fd", num) ?: set_opts_arg(&p->argv, i, "add-fd", &o);
		qu_opts_free(&o);
		if (r < 0)
			return r;
	}
	/* Sets that query-fdsets could not list whole are refused (refuse_fdsets), and a member
	 * an -add-fd option could not be matched to may be that option's: refused too. */
	if (vm->fdsets_truncated || vm->fdsets_invalid || unmatched)
		return 0;
	return add_runtime_members(vm, p, claimed);
}

/* An -add-fd this plan rewrote: its fd= is a descriptor carried as a set's member. */
static int fdset_carried(const struct qu_rewrite *p, const char *val)
{
	struct qu_opts o;
	if (qu_opts_parse(val, NULL, &o) < 0)
		return 0;
	int fd = decimal(qu_opts_get(&o, "fd")), hit = 0;
	for (size_t i = 0; fd >= 0 && i < p->nfds; i++)
		hit |= p->fds[i].kind == QU_FD_FDSET && p->fds[i].target == fd;
	qu_opts_free(&o);
	return hit;
}

/* Drops options that belong to a fresh start or to the previous upgrade's private monitor. */
static int drop_options(struct qu_rewrite *p)
{
	for (size_t i = 0; i < p->argv.n;) {
		const char *opt = p->argv.a[i].opt, *val = p->argv.a[i].val;
		int drop = 0;
		if (opt && (!strcmp(opt, "incoming") || !strcmp(opt, "daemonize") || !strcmp(opt, "S")))
			drop = 1;
		if (opt && val && (!strcmp(opt, "chardev") || !strcmp(opt, "mon"))) {
			struct qu_opts o;
			if (qu_opts_parse(val, !strcmp(opt, "mon") ? "chardev" : "backend", &o) < 0)
				return -ENOMEM;
			const char *id = qu_opts_get(&o, !strcmp(opt, "mon") ? "chardev" : "id");
			drop = id && !strcmp(id, QU_CTL_CHARDEV);
			qu_opts_free(&o);
		}
		if (drop)
			qu_argv_remove(&p->argv, i);
		else
			i++;
	}
	return 0;
}

/* -machine q35 -> -machine pc-q35-7.2: the alias may point elsewhere in the new binary.
 * -machine has no JSON form (see the note on JSON above). */
static int pin_machine(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t i = 0; i < p->argv.n; i++) {
		const char *opt = p->argv.a[i].opt;
		struct qu_opts o;
		if (!opt || (strcmp(opt, "machine") && strcmp(opt, "M")))
			continue;
		if (qu_opts_parse(p->argv.a[i].val, "type", &o) < 0)
			return -ENOMEM;
		int r = 0, has_type = qu_opts_get(&o, "type") != NULL;
		if (has_type) {
			r = qu_opts_set(&o, "type", vm->machine);
			if (r == 0)
				r = set_opts_arg(&p->argv, i, "machine", &o);
		}
		qu_opts_free(&o);
		if (r < 0 || has_type)
			return r;
	}
	char *text = qu_opts_from(1, (const char *const[]){ "type", vm->machine, NULL });
	int r = text ? qu_argv_add(&p->argv, "machine", text) : -ENOMEM;
	free(text);
	return r;
}

/* File chardevs must append: the new QEMU would otherwise truncate the guest's log. */
static int append_files(struct qu_rewrite *p)
{
	for (size_t i = 0; i < p->argv.n; i++) {
		const char *opt = p->argv.a[i].opt, *val = p->argv.a[i].val;
		struct qu_opts o;
		char spec[PATH_MAX + 128], id[48];
		int r = 0;
		if (!opt || !val)
			continue;
		if (!strcmp(opt, "chardev")) {
			if (qu_opts_parse(val, "backend", &o) < 0)
				return -ENOMEM;
			const char *b = qu_opts_get(&o, "backend");
			if (b && !strcmp(b, "file"))
				r = qu_opts_set(&o, "append", "on") ?: set_opts_arg(&p->argv, i, "chardev", &o);
			qu_opts_free(&o);
		} else if ((!strcmp(opt, "serial") || !strcmp(opt, "parallel")) && !strncmp(val, "file:", 5)) {
			snprintf(id, sizeof(id), "qemu-upgrade-%s%zu", opt, i);
			if (qu_opts_parse("file", "backend", &o) < 0)
				return -ENOMEM;
			r = qu_opts_set(&o, "id", id) ?: qu_opts_set(&o, "path", val + 5) ?:
			    qu_opts_set(&o, "append", "on");
			char *text = r ? NULL : qu_opts_format(&o);
			qu_opts_free(&o);
			if (!r && !text)
				return -ENOMEM;
			if (!r) {
				r = qu_argv_add(&p->argv, "chardev", text);
				free(text);
				snprintf(spec, sizeof(spec), "chardev:%s", id);
				r = r ?: qu_argv_set(&p->argv, i, opt, spec);
			}
		}
		if (r < 0)
			return r;
	}
	return 0;
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
	return qu_netdev_fd_list(text, fds, QU_MAX_QUEUES) > 0 || decimal(text) >= 0;
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
		const char *why = fdset_carried(p, val) ? NULL : fdset_member(vm, &p->argv, val, &m);
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
static void refuse_uncarried(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t i = 0; i < p->argv.n; i++) {
		unsigned before = qu_refusals_count(&p->refusals);
		refuse_option(vm, p, i);
		qu_refusals_keep(&p->refusals, before + 1);
	}
}

int qu_rewrite(const struct qu_vm *vm, struct qu_rewrite *p)
{
	int r;
	qu_argv_free(&p->argv);
	if ((r = qu_argv_from_array(1, (char *const[]){ p->target.path }, &p->argv)) < 0)
		return r;
	for (size_t i = 0; i < vm->argv.n; i++)
		if ((r = qu_argv_add(&p->argv, vm->argv.a[i].opt, vm->argv.a[i].val)) < 0)
			return r;
	/* Indexes in vm refer to vm->argv; rewrite those options in place before anything moves. */
	if ((r = rewrite_ram(vm, p)) < 0 || (r = rewrite_listeners(vm, p)) < 0 ||
	    (r = rewrite_taps(vm, p)) < 0 || (r = rewrite_ptys(vm, p)) < 0 || (r = rewrite_fdsets(vm, p)) < 0)
		return r;
	if ((r = drop_options(p)) < 0)
		return r;
	refuse_uncarried(vm, p);
	refuse_fdsets(vm, p);
	if ((r = pin_machine(vm, p)) < 0 || (r = append_files(p)) < 0 || (r = reconnect_clients(p)) < 0)
		return r;
	char ctl[64];
	snprintf(ctl, sizeof(ctl), "socket,id=%s,fd=%d,server=on,wait=off", QU_CTL_CHARDEV, QU_FD_CTL);
	r = qu_argv_add(&p->argv, "chardev", ctl);
	r = r ?: qu_argv_add(&p->argv, "mon", "chardev=" QU_CTL_CHARDEV ",mode=control");
	r = r ?: qu_argv_add(&p->argv, "incoming", "defer");
	if (qu_strategy_cpr(p->strategy)) {
		char cpr[256];
		snprintf(cpr, sizeof(cpr), "{\"channel-type\":\"cpr\",\"addr\":{\"transport\":\"socket\","
			 "\"type\":\"unix\",\"path\":\"%s\",\"abstract\":true}}", p->cpr_channel);
		r = r ?: qu_argv_add(&p->argv, "incoming", cpr);
	}
	r = r ?: qu_argv_add(&p->argv, "S", NULL);
	return r;
}
