/* inspect, for a dry run, of a VM whose monitor another program holds (libvirt's daemon: a
 * QEMU monitor takes one client). What QMP would say is read instead from what QEMU was told
 * (its command line), what the kernel shows (/proc/PID) and what libvirt recorded (its status
 * file); what none of them can tell is listed, never guessed. Changes nothing. */
#include "upgrade/inspect-held.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/option.h"
#include "qemu-integration/opts.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/inspect.h"
#include "upgrade/log.h"
#include "upgrade/pageflip/ram.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void note(char *buf, size_t len, const char *what)
{
	size_t l = strlen(buf);
	snprintf(buf + l, len - l, "%s%s", l ? "; " : "", what);
}

/* A size as QEMU's options write it: digits, an optional k/M/G/T suffix (powers of 1024);
 * without a suffix, unit bytes each. 0 when it does not read as one. */
static uint64_t parse_size(const char *s, uint64_t unit)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': unit = 1ull << 10; break;
	case 'M': case 'm': unit = 1ull << 20; break;
	case 'G': case 'g': unit = 1ull << 30; break;
	case 'T': case 't': unit = 1ull << 40; break;
	default: return 0;
	}
	uint64_t bytes;
	/* The command line is the VM owner's: a size that overflows is no size, not a small one. */
	if ((*end && end[1]) || __builtin_mul_overflow((uint64_t)v, unit, &bytes))
		return 0;
	return bytes;
}

/* The concrete machine type, KVM and aux-ram-share from -machine (-M), -accel, -enable-kvm. */
static void machine_from_argv(struct qu_vm *vm)
{
	for (size_t i = 0; i < vm->argv.n; i++) {
		const char *opt = vm->argv.a[i].opt, *val = vm->argv.a[i].val;
		struct qu_opts o;
		if (!opt || !val || (strcmp(opt, "machine") && strcmp(opt, "M")) || qu_opts_parse(val, "type", &o) < 0)
			continue;
		const char *type = qu_opts_get(&o, "type");
		if (type && qu_qemu_name_ok(type))
			snprintf(vm->machine, sizeof(vm->machine), "%s", type);
		if (qu_opts_get(&o, "aux-ram-share"))
			vm->aux_ram_share = qu_opts_get_bool(&o, "aux-ram-share");
		qu_opts_free(&o);
	}
}

/* The guest runs under KVM when QEMU holds a KVM VM descriptor: the kernel's word, whatever
 * the command line asked for (-accel kvm:tcg falls back). */
static int holds_kvm_vm(const struct qu_fdtab *fds)
{
	for (size_t i = 0; i < fds->n; i++)
		if (!strcmp(fds->e[i].link, "anon_inode:kvm-vm"))
			return 1;
	return 0;
}

/* The memory backends from the -object options (both forms), or the implicit one of -m. */
static int ram_from_argv(struct qu_vm *vm)
{
	for (long i = -1; (i = qu_argv_find(&vm->argv, "object", (size_t)(i + 1))) >= 0;) {
		json_object *o = qu_option_parse("object", vm->argv.a[i].val);
		const char *type = qu_option_get(o, "qom-type"), *id = qu_option_get(o, "id");
		if (type && id && !strncmp(type, "memory-backend-", 15)) {
			if (vm->nram == QU_MAX_RAM) {
				json_object_put(o);
				return qu_err(-E2BIG, "more than %d memory backends", QU_MAX_RAM);
			}
			struct qu_ram *ram = &vm->ram[vm->nram++];
			memset(ram, 0, sizeof(*ram));
			ram->old_fd = -1;
			ram->arg = i;
			qu_copy_printable(ram->id, sizeof(ram->id), id);
			qu_copy_printable(ram->qom_type, sizeof(ram->qom_type), type);
			ram->size = parse_size(qu_option_get(o, "size"), 1);
			ram->share = qu_option_true(o, "share");
			if (!strcmp(type, "memory-backend-file"))
				qu_copy_printable(ram->backing, sizeof(ram->backing), qu_option_get(o, "mem-path") ?: "");
			ram->hugetlb = !strcmp(type, "memory-backend-memfd") && qu_option_true(o, "hugetlb");
			ram->hugetlb_size = parse_size(qu_option_get(o, "hugetlbsize"), 1);
		}
		json_object_put(o);
	}
	long m = qu_argv_find(&vm->argv, "m", 0);
	if (vm->nram == 0 && m >= 0) {
		/* QEMU (>= 5.0) makes plain -m a memory-backend-ram of the machine's default id. */
		struct qu_opts o;
		struct qu_ram *ram = &vm->ram[vm->nram++];
		memset(ram, 0, sizeof(*ram));
		ram->old_fd = -1;
		ram->arg = -1;
		snprintf(ram->id, sizeof(ram->id), "%s", "pc.ram");
		snprintf(ram->qom_type, sizeof(ram->qom_type), "%s", "memory-backend-ram");
		if (qu_opts_parse(vm->argv.a[m].val, "size", &o) == 0) {
			ram->size = parse_size(qu_opts_get(&o, "size"), 1ull << 20);
			qu_opts_free(&o);
		}
	}
	return 0;
}

/* -add-fd sets as the command line gave them; their members' numbers in QEMU (dups of the
 * fd= given) are QMP's to tell. */
static void fdsets_from_argv(struct qu_vm *vm)
{
	for (long i = -1; (i = qu_argv_find(&vm->argv, "add-fd", (size_t)(i + 1))) >= 0;) {
		struct qu_opts o;
		if (qu_opts_parse(vm->argv.a[i].val, NULL, &o) < 0)
			continue;
		int set = qu_fd_number(qu_opts_get(&o, "set"));
		const char *opaque = qu_opts_get(&o, "opaque");
		if (set >= 0 && vm->nfdset_fds < QU_MAX_FDSET_FDS) {
			struct qu_fdset_fd *e = &vm->fdset_fds[vm->nfdset_fds++];
			*e = (struct qu_fdset_fd){ .set = set, .old_fd = -1, .has_opaque = opaque != NULL };
			qu_copy_printable(e->opaque, sizeof(e->opaque), opaque ? opaque : "");
		} else if (set >= 0) {
			vm->fdsets_truncated = 1;
		}
		qu_opts_free(&o);
	}
}

/* The old QEMU's version: its binary asked, when the file at its path is still the one it
 * runs (a package upgrade replaces it). */
static int version_from_binary(struct qu_vm *vm, uint64_t deadline_us)
{
	struct stat now, running;
	char proc[64];
	struct qu_binary b;
	snprintf(proc, sizeof(proc), "/proc/%d/exe", (int)vm->pid);
	if (vm->exe_deleted || stat(proc, &running) < 0 || stat(vm->exe_path, &now) < 0 || now.st_dev != running.st_dev ||
	    now.st_ino != running.st_ino)
		return 0;
	const struct qu_context *c = &vm->ctx;
	if (qu_binary_probe(vm->exe_path, c->uid ? c->uid : (uid_t)-1, c->uid, c->gid, deadline_us, &b) < 0) {
		qu_err_clear();
		return 0;
	}
	memcpy(vm->ver, b.ver, sizeof(vm->ver));
	return 1;
}

int qu_inspect_held(pid_t pid, const struct qu_libvirt *lv, const char *holder, uint64_t deadline_us, struct qu_vm *vm,
		    char *unchecked, size_t len)
{
	int r = qu_inspect_proc(pid, NULL, vm);
	unchecked[0] = '\0';
	if (r < 0)
		return r;
	if (!version_from_binary(vm, deadline_us))
		note(unchecked, len, "the old QEMU's version (its binary on disk is no longer the one it runs), and "
				     "so which strategy applies");
	machine_from_argv(vm);
	if (!vm->machine[0] || !strchr(vm->machine, '-'))
		note(unchecked, len, "the concrete machine type (the command line names none, or an alias)");
	vm->kvm = holds_kvm_vm(&vm->fds);
	if ((r = ram_from_argv(vm)) < 0 || (r = qu_ram_find_fds(vm)) < 0)
		return qu_pin_check(&vm->pin) ?: r;
	fdsets_from_argv(vm);
	if (vm->nfdset_fds)
		note(unchecked, len, "which descriptors of QEMU's are the -add-fd sets' members, and members added "
				     "at run time (query-fdsets)");
	/* libvirt's record: its state, and jobs it runs on the domain. */
	snprintf(vm->runstate, sizeof(vm->runstate), "%s", lv && lv->state[0] ? lv->state : "unknown");
	if (!lv || !lv->state[0])
		note(unchecked, len, "the run state (query-status)");
	snprintf(vm->migration, sizeof(vm->migration), "%s", "none");
	note(unchecked, len, "a migration started through the monitor, and what QEMU says blocks one "
			     "(query-migrate)");
	if (lv && lv->blockjobs >= 0)
		vm->block_jobs = lv->blockjobs;
	else
		note(unchecked, len, "block jobs (query-block-jobs)");
	vm->peripherals_known = 0;
	note(unchecked, len, "devices plugged or unplugged at run time (qom-list)");
	for (long i = -1; (i = qu_argv_find(&vm->argv, "chardev", (size_t)(i + 1))) >= 0;)
		if (!strncmp(vm->argv.a[i].val, "pty", 3) && (vm->argv.a[i].val[3] == ',' || !vm->argv.a[i].val[3])) {
			note(unchecked, len, "the pseudo-terminals of pty chardevs (query-chardev)");
			break;
		}
	size_t l = strlen(unchecked);
	if (l)
		snprintf(unchecked + l, len - l, ": %s holds the monitor that tells these", holder);
	return qu_pin_check(&vm->pin);
}
