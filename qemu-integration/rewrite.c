#include "qemu-integration/rewrite.h"
#include "qemu-integration/hotplug.h"
#include "qemu-integration/fdsets.h"
#include "qemu-integration/netdev.h"
#include "qemu-integration/refuse.h"
#include "qemu-integration/option.h"
#include "qemu-integration/opts.h"
#include "upgrade/kv.h"
#include "upgrade/launcher.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <json-c/json.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* cpr-exec: a descriptor the process already holds stays where it is, at its own number (the
 * exec keeps every descriptor that is not close-on-exec; the plan checks that flag). */
static int keep(struct qu_rewrite *p, int old_fd, unsigned kind, const char *name)
{
	if (p->nfds == QU_MAX_CARRIED)
		return qu_err(-E2BIG, "more than %d descriptors to keep", QU_MAX_CARRIED);
	struct qu_carried *c = &p->fds[p->nfds++];
	*c = (struct qu_carried){ .old_fd = old_fd, .target = old_fd, .kind = kind };
	snprintf(c->name, sizeof(c->name), "%s", name);
	return old_fd;
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
	/* cpr-exec: the image keeps the backends as they are (CPR preserves their descriptors);
	 * they are listed, at their own numbers, for a rollback that needs them in a new process. */
	for (size_t k = 0; k < vm->nram && qu_strategy_cpr_exec(p->strategy); k++) {
		const struct qu_ram *ram = &vm->ram[k];
		char name[128];
		if (ram->arg < 0 || ram->old_fd < 0)
			continue; /* refused by the plan */
		snprintf(name, sizeof(name), "guest RAM '%s' (%s)", ram->id, ram->qom_type);
		if (keep(p, ram->old_fd, QU_FD_RAM, name) < 0)
			return -E2BIG;
		snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "size=%llu\n", (unsigned long long)ram->size);
	}
	if (qu_strategy_cpr_exec(p->strategy))
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

/* cpr-exec: a listening socket QEMU bound by path is close-on-exec; the new image binds the
 * path anew (clients see a refusal or a reset while the exec runs, and connect again). One
 * QEMU inherited (fd=N) survives the exec and stays at its number. */
static int listener_by_fd(const struct qu_argv *argv, const struct qu_listener *l)
{
	struct qu_opts o;
	if (l->legacy || qu_opts_parse(argv->a[l->arg].val, "backend", &o) < 0)
		return 0;
	int fd = qu_opts_get(&o, "fd") != NULL;
	qu_opts_free(&o);
	return fd;
}

static int rewrite_listeners(const struct qu_vm *vm, struct qu_rewrite *p)
{
	for (size_t k = 0; k < vm->nlis; k++) {
		const struct qu_listener *l = &vm->lis[k];
		char name[192], mon[128];
		struct qu_opts o;
		int exec = qu_strategy_cpr_exec(p->strategy);
		if (exec && !listener_by_fd(&p->argv, l))
			continue;
		snprintf(name, sizeof(name), "listening socket %s (chardev '%s')", l->path, l->chardev);
		int t = exec ? keep(p, l->old_fd, QU_FD_LISTENER, name) : carry(p, l->old_fd, QU_FD_LISTENER, name);
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
		int exec = qu_strategy_cpr_exec(p->strategy);
		if (t->nfds == 0 || (exec && t->vhost))
			continue; /* refused below, or by the plan (vhost with cpr-exec) */
		for (int q = 0; q < t->nfds; q++) {
			snprintf(name, sizeof(name), "tap '%s' queue %d (%s)", t->id, q, t->ifname[0] ? t->ifname : "?");
			/* cpr-exec: the very descriptor, at its number in this process (a tap cannot
			 * be opened twice: ifname= would fail with EBUSY in the new image). */
			int target = exec ? keep(p, t->old_fds[q], QU_FD_TAP, name) : carry(p, t->old_fds[q], QU_FD_TAP, name);
			if (target < 0)
				return target;
			/* Another host opens the tap by name: with the header the source's queues have,
			 * or the guest's device state would not match (COLO's filters need none). */
			snprintf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "ifname=%s\nqueues=%d\n", t->ifname, t->nfds);
			if (t->vnet_hdr >= 0)
				qu_kv_addf(p->fds[p->nfds - 1].spec, sizeof(p->fds[0].spec), "vnet_hdr", "%d", t->vnet_hdr);
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
		if (qu_fdset_member(vm, &vm->argv, val, &m)) {
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

/* Options a newer QEMU no longer takes, written the way every version since 5.2 takes them:
 * -no-acpi (libvirt 9.0 writes it for a domain without <acpi/>; gone since QEMU 9.0) is
 * -machine acpi=off, the same machine property. */
static int replace_removed_options(struct qu_rewrite *p)
{
	long i = qu_argv_find(&p->argv, "no-acpi", 0);
	if (i < 0)
		return 0;
	while (i >= 0) {
		qu_argv_remove(&p->argv, (size_t)i);
		i = qu_argv_find(&p->argv, "no-acpi", 0);
	}
	return qu_argv_add(&p->argv, "machine", "acpi=off");
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

/* The -object of the backend named id in argv, or -1. */
static long backend_index(const struct qu_argv *argv, const char *id)
{
	for (long i = -1; (i = qu_argv_find(argv, "object", (size_t)(i + 1))) >= 0;) {
		json_object *o = argv->a[i].val ? qu_option_parse("object", argv->a[i].val) : NULL;
		const char *oid = o ? qu_option_get(o, "id") : NULL;
		int hit = oid && !strcmp(oid, id);
		json_object_put(o);
		if (hit)
			return i;
	}
	return -1;
}

/* cpr-exec's way back once the exec happened and the new image failed: the old binary in a
 * new process, on our copies of the kept descriptors placed at the same numbers, loads the
 * state the old image saved (docs/cpr-exec-research.md, 6-outside-rollback.sh). The exec's
 * command line, but each RAM backend a file on the kept memfd (a fresh QEMU would make new,
 * empty memory for a memfd backend), and argv[0] the old one's. */
static int exec_rollback_argv(const struct qu_vm *vm, struct qu_rewrite *p)
{
	int r = qu_argv_from_array(1, (char *const[]){ vm->argv.prog }, &p->back_argv);
	for (size_t i = 0; r == 0 && i < p->argv.n; i++)
		r = qu_argv_add(&p->back_argv, p->argv.a[i].opt, p->argv.a[i].val);
	for (size_t k = 0; r == 0 && k < vm->nram; k++) {
		const struct qu_ram *ram = &vm->ram[k];
		long i = ram->old_fd >= 0 ? backend_index(&p->back_argv, ram->id) : -1;
		char path[32];
		if (i < 0)
			continue; /* refused by the plan */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", ram->old_fd);
		r = rewrite_backend(&p->back_argv, (size_t)i, path);
	}
	return r;
}

int qu_rewrite(const struct qu_vm *vm, struct qu_rewrite *p)
{
	int r;
	qu_argv_free(&p->argv);
	qu_argv_free(&p->back_argv);
	if ((r = qu_argv_from_array(1, (char *const[]){ p->target.path }, &p->argv)) < 0)
		return r;
	for (size_t i = 0; i < vm->argv.n; i++)
		if ((r = qu_argv_add(&p->argv, vm->argv.a[i].opt, vm->argv.a[i].val)) < 0)
			return r;
	/* Indexes in vm refer to vm->argv; rewrite those options in place before anything moves. */
	/* cpr-exec: ptys and descriptor sets are refused by the plan (upgrade/keeppid.c). */
	int exec = qu_strategy_cpr_exec(p->strategy);
	if ((r = rewrite_ram(vm, p)) < 0 || (r = rewrite_listeners(vm, p)) < 0 || (r = rewrite_taps(vm, p)) < 0 ||
	    (!exec && (r = rewrite_ptys(vm, p)) < 0) || (!exec && (r = rewrite_fdsets(vm, p)) < 0))
		return r;
	if ((r = drop_options(p)) < 0 || (r = qu_hotplug_rewrite(vm, p)) < 0 || (r = replace_removed_options(p)) < 0)
		return r;
	qu_refuse_uncarried(vm, p);
	if ((r = pin_machine(vm, p)) < 0 || (r = append_files(p)) < 0 || (r = reconnect_clients(p)) < 0)
		return r;
	/* cpr-exec: the image waits for the tool's migrate-incoming of the saved state (a failed
	 * load then leaves it alive, and says why), and resumes the guest by itself as the old one
	 * ran it: no -S, and no private monitor (the tool reaches it at the VM's QMP path). */
	if (exec)
		return qu_argv_add(&p->argv, "incoming", "defer") ?: exec_rollback_argv(vm, p);
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
