/* plan: choose a strategy and refuse, before anything is touched, what cannot be carried. */
#include "upgrade/plan.h"
#include "upgrade/argv0.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/kinds.h"
#include "qemu-integration/opts.h"
#include "remote/client.h"
#include "remote/standby/secondary.h"
#include "upgrade/io.h"
#include "upgrade/keeppid.h"
#include "upgrade/log.h"
#include "upgrade/testhooks.h"
#include "upgrade/memory.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/stream.h"
#include "upgrade/systemd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* What a copy needs beyond the guest's pages: the new QEMU's own memory, buffers. */
#define COPY_MARGIN (256LL << 20)
/* What a postcopy needs at its peak: the new QEMU's own memory (35-60 MiB) and the pages in
 * flight; measured 70 MiB for a 512 MiB guest (bench/RESULTS.md). */
#define POSTCOPY_MARGIN (128LL << 20)

void qu_plan_free(struct qu_plan *p)
{
	qu_argv_free(&p->argv);
	qu_argv_free(&p->back_argv);
}

static int version_at_least(const int v[3], int major, int minor)
{
	return v[0] > major || (v[0] == major && v[1] >= minor);
}

static const char *const active_migration[] = {
	"setup", "active", "pre-switchover", "device", "postcopy-active", "postcopy-paused",
	"postcopy-recover", "postcopy-recover-setup", "cancelling", "wait-unplug", "colo", NULL,
};

/* Whether the new QEMU, running as the VM's user, may use userfaultfd (postcopy's
 * destination needs it): root may; others only where the sysctl allows it. */
static int userfaultfd_allowed(const struct qu_vm *vm, char *why, size_t len)
{
	char *text = NULL;
	int unprivileged = 0;
	if (vm->ctx.uid == 0)
		return 1;
	if (qu_read_file("/proc/sys/vm/unprivileged_userfaultfd", &text, NULL) == 0) {
		unprivileged = atoi(text) == 1;
		free(text);
	}
	if (!unprivileged)
		snprintf(why, len, "the VM runs as uid %u and vm.unprivileged_userfaultfd is 0, so its new QEMU "
			 "cannot receive RAM by postcopy (set the sysctl to 1, or give the copy the memory)",
			 (unsigned)vm->ctx.uid);
	return unprivileged;
}

/* Postcopy with release-ram: the guest runs on the new QEMU after a pause of milliseconds
 * while its pages follow, and the old QEMU frees each page once sent, so the host holds
 * little more than one copy. The price: from the switch on, the guest lives in two
 * processes, and losing either loses the guest. */
static void plan_postcopy(const struct qu_vm *vm, struct qu_plan *p, const char *room_where)
{
	char why[256] = "";
	if (!userfaultfd_allowed(vm, why, sizeof(why))) {
		qu_refusals_add(&p->refusals, "%s%s", p->low_memory ? "--low-memory: " : "", why);
		return;
	}
	p->memory_needed = POSTCOPY_MARGIN;
	if (p->memory_room >= 0 && p->memory_room < p->memory_needed) {
		qu_refusals_add(&p->refusals, "not even a low-memory copy fits: it needs about %lld MiB "
			 "(the new QEMU and pages in flight) and %s leaves %lld MiB; free memory first",
			 p->memory_needed >> 20, room_where, p->memory_room >> 20);
		return;
	}
	/* Under TCG before 9.0 the old QEMU is stopped before the copy starts (a live phase would
	 * lose writes); the switch then comes at once and the pause stays short. */
	p->stop_first = !vm->kvm && !version_at_least(vm->ver, 9, 0);
	snprintf(p->warning, sizeof(p->warning), "low-memory copy (postcopy): the guest runs on the new QEMU "
		 "while its RAM is still being moved; if either QEMU dies before the copy ends, the guest is "
		 "lost (no rollback past the switch)");
	p->strategy = QU_STRATEGY_POSTCOPY;
}

static const char *hugetlb_what(const struct qu_ram *ram)
{
	if (!strcmp(ram->qom_type, "memory-backend-memfd"))
		return "memory-backend-memfd,hugetlb=on";
	return ram->arg < 0 ? "-mem-path on hugetlbfs" : "mem-path on hugetlbfs";
}

/* What makes such RAM hand over instead: shared, and (from 8.1 on) a named file. */
static const char *hugetlb_fix(const struct qu_vm *vm, const struct qu_ram *ram)
{
	if (ram->arg < 0)
		return "start the VM with -object memory-backend-file,id=ID,size=S,mem-path=DIR,share=on "
		       "-machine memory-backend=ID instead of -mem-path, so that its file is handed over and "
		       "nothing is copied";
	if (!strcmp(ram->qom_type, "memory-backend-memfd") && (!ram->share || version_at_least(vm->ver, 8, 1)))
		return "start the VM with memory-backend-file,mem-path=DIR,share=on (DIR on hugetlbfs) instead, "
		       "so that its file is handed over and nothing is copied";
	if (!ram->share)
		return "make the backend share=on, so that its file is handed over and nothing is copied";
	return "hand its file over instead (see the other reasons)";
}

/* Whether the huge pages for a hugetlb block's copy are there: they come from the host's
 * pool of that size, not from MemAvailable. -1 with a refusal if not. */
static int huge_pages_missing(const struct qu_vm *vm, const struct qu_ram *ram, struct qu_plan *p)
{
	unsigned long long kib = ram->page_size >> 10, need = (ram->size + ram->page_size - 1) / ram->page_size;
	long long have = qu_memory_free_hugepages(ram->page_size);
	if (p->low_memory) {
		qu_refusals_add(&p->refusals, "--low-memory: guest RAM '%s' is on %llu KiB huge pages (%s); a "
				"postcopy into huge pages is not built yet: copy it with --allow-copy (it needs %llu free "
				"%llu KiB pages), or %s", ram->id, kib, hugetlb_what(ram), need, kib, hugetlb_fix(vm, ram));
		return -1;
	}
	if (have >= 0 && (unsigned long long)have >= need)
		return 0;
	if (have < 0)
		qu_refusals_add(&p->refusals, "guest RAM '%s' is on %llu KiB huge pages (%s), and this host has no "
				"pool of %llu KiB pages to copy it into (a copy never moves it onto normal pages): %s",
				ram->id, kib, hugetlb_what(ram), kib, hugetlb_fix(vm, ram));
	else
		qu_refusals_add(&p->refusals, "guest RAM '%s' is on %llu KiB huge pages (%s): its copy needs %llu free "
				"%llu KiB pages and the host has %lld (a copy never moves it onto normal pages): add "
				"pages to the pool (/sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages), or %s",
				ram->id, kib, hugetlb_what(ram), need, kib, have, kib, hugetlb_fix(vm, ram));
	return -1;
}

/* Every RAM block is copied, into a shared memfd made for the new QEMU. The machine's own RAM
 * from -m can move into a backend only if it is the only one (it becomes -machine
 * memory-backend=...). -1 with a refusal for each block that cannot be recreated; the bytes
 * count every block, so that the memory needed is still right. */
static int copy_all_ram(const struct qu_vm *vm, struct qu_plan *p)
{
	int r = 0;
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *ram = &vm->ram[i];
		p->ram_copy_bytes += ram->size;
		/* A guest set up on huge pages must not silently leave them (its owner reserved them
		 * for a reason: TLB reach, pinning): here it is copied into a hugetlb memfd of the
		 * same page size; the agent on another host makes normal memfds. */
		if (ram->page_size && p->remote) {
			qu_refusals_add(&p->refusals, "guest RAM '%s' is on %llu KiB huge pages (%s), and the copy "
					"to another host would move it onto normal 4 KiB pages: not built yet", ram->id,
					(unsigned long long)(ram->page_size >> 10), hugetlb_what(ram));
			r = -1;
			continue;
		}
		if (ram->page_size) {
			p->ram_huge_bytes += ram->size;
			if (huge_pages_missing(vm, ram, p) < 0) {
				r = -1;
				continue;
			}
		}
		if (ram->arg < 0 && vm->nram > 1) {
			qu_refusals_add(&p->refusals, "memory backend '%s' is not on the command line and is not "
					"the machine's only RAM: it cannot be recreated", ram->id);
			r = -1;
			continue;
		}
		p->convert_mask |= 1u << i;
	}
	return r;
}

/* RAM that cannot be handed over is copied once, into a shared memfd the tool makes, so
 * that every later upgrade is zero-copy. Precopy when the host can hold a second copy of
 * what the guest uses; postcopy with release-ram (--low-memory) when it cannot, or when
 * asked. */
static void plan_copy(const struct qu_vm *vm, struct qu_plan *p)
{
	/* A block that cannot be recreated cannot be copied at all: --allow-copy or the memory
	 * for the copy would not help, so saying more would mislead. */
	if (copy_all_ram(vm, p) < 0)
		return;
	if (!p->allow_copy) {
		char why[256];
		const struct qu_ram *r = &vm->ram[0];
		if (!strcmp(r->qom_type, "memory-backend-memfd") && r->share)
			snprintf(why, sizeof(why), "QEMU %d.%d sends memfd guest RAM ('%s') even with x-ignore-shared%s",
				 vm->ver[0], vm->ver[1], r->id, vm->ver[0] >= 10 && !vm->aux_ram_share ?
				 "; a VM started with -machine aux-ram-share=on would use cpr-transfer instead" : "");
		else if (r->arg < 0)
			snprintf(why, sizeof(why), "plain -m: private memory");
		else
			snprintf(why, sizeof(why), "'%s' is %s with share=off", r->id, r->qom_type);
		qu_refusals_add(&p->refusals, "guest RAM (%llu MiB) cannot be handed over (%s) and would "
			 "have to be copied with QEMU's precopy: pass --allow-copy to do that (the guest pauses "
			 "for up to --max-downtime, the host needs a second copy of its memory; afterwards the "
			 "RAM is shared and later upgrades copy nothing), or --low-memory to copy it with "
			 "postcopy in bounded memory",
			 (unsigned long long)(p->ram_copy_bytes >> 20), why);
		return;
	}
	char where[PATH_MAX + 64];
	p->memory_room = qu_memory_room(&vm->ctx, where, sizeof(where));
	if (p->low_memory) {
		plan_postcopy(vm, p, where);
		return;
	}
	/* Huge pages come from their own pool (checked in copy_all_ram), not from MemAvailable. */
	p->memory_needed = (vm->anon_bytes > 0 ? vm->anon_bytes : (long long)(p->ram_copy_bytes - p->ram_huge_bytes)) +
			   COPY_MARGIN;
	if (p->memory_room >= 0 && p->memory_room < p->memory_needed) {
		long long precopy_needed = p->memory_needed;
		if (p->ram_huge_bytes) {
			qu_refusals_add(&p->refusals, "a precopy needs about %lld MiB and %s leaves %lld MiB, and a "
					"postcopy into huge pages is not built yet: free memory first", precopy_needed >> 20,
					where, p->memory_room >> 20);
			return;
		}
		unsigned before = qu_refusals_count(&p->refusals);
		plan_postcopy(vm, p, where);
		if (qu_refusals_count(&p->refusals) != before)
			return;
		snprintf(p->warning + strlen(p->warning), sizeof(p->warning) - strlen(p->warning),
			 "; chosen because a precopy needs about %lld MiB and %s leaves %lld MiB",
			 precopy_needed >> 20, where, p->memory_room >> 20);
		return;
	}
	/* Under TCG, QEMU before 9.0 loses guest writes between dirty-bitmap syncs while the guest
	 * runs (fixed upstream by 03bfc2188f, "physmem: Fix migration dirty bitmap coherency with
	 * TCG memory access"): the copy is then made with the guest stopped, a pause as long as
	 * the copy. QEMU_UPGRADE_ALLOW_TCG_COPY forces the live copy (tests of non-convergence). */
	p->stop_first = !vm->kvm && !version_at_least(vm->ver, 9, 0) && !qu_test_env("QEMU_UPGRADE_ALLOW_TCG_COPY");
	p->strategy = p->stop_first ? QU_STRATEGY_STOP_COPY : QU_STRATEGY_COPY;
}

/* cpr-transfer (QEMU >= 10.0 on both sides): the old QEMU hands its RAM descriptors to the
 * new one itself, so memfd RAM that 8.1+ would send even with x-ignore-shared stays in place.
 * It needs every RAM block shareable, the machine's small ones too: -machine
 * aux-ram-share=on, which can only be set when the VM starts. */
static int cpr_possible(const struct qu_vm *vm, const struct qu_plan *p)
{
	int memfd = 0;
	if (vm->ver[0] < 10 || p->target.ver[0] < 10 || !vm->aux_ram_share || vm->nram == 0)
		return 0;
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		if (!r->share || r->arg < 0 || (strcmp(r->qom_type, "memory-backend-memfd") &&
						strcmp(r->qom_type, "memory-backend-file")))
			return 0;
		memfd |= !strcmp(r->qom_type, "memory-backend-memfd");
	}
	/* With only shared files the handover with x-ignore-shared needs nothing new. */
	return memfd;
}

static void plan_cpr(const struct qu_vm *vm, struct qu_plan *p)
{
	unsigned rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (size_t i = 0; i < vm->nram; i++)
		p->ram_shared_bytes += vm->ram[i].size;
	/* Abstract names: no file to clean up, and no permission to get wrong; random, since
	 * anyone in the namespace could bind them. */
	snprintf(p->cpr_channel, sizeof(p->cpr_channel), "qemu-upgrade-%d-%08x-cpr", (int)vm->pid, rnd);
	snprintf(p->main_channel, sizeof(p->main_channel), "qemu-upgrade-%d-%08x-main", (int)vm->pid, rnd);
	p->strategy = QU_STRATEGY_CPR;
}

static void check_ram(const struct qu_vm *vm, struct qu_plan *p)
{
	if (cpr_possible(vm, p)) {
		plan_cpr(vm, p);
		return;
	}
	int all_shared = vm->nram > 0;
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		int memfd = !strcmp(r->qom_type, "memory-backend-memfd");
		int file = !strcmp(r->qom_type, "memory-backend-file");
		/* Since 8.1 x-ignore-shared skips only RAM backed by a named file: memfd RAM would be
		 * sent and land in the very pages the guest is running on (field notes). */
		if (!r->share || (!memfd && !file) || (memfd && version_at_least(vm->ver, 8, 1)))
			all_shared = 0;
	}
	if (!all_shared) {
		plan_copy(vm, p);
		return;
	}
	int recreated = 1;
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		if (r->arg < 0) {
			qu_refusals_add(&p->refusals, "memory backend '%s' is not on the command line (added "
					"with object-add?), so the new QEMU could not recreate it", r->id);
			recreated = 0;
		}
		p->ram_shared_bytes += r->size;
	}
	if (recreated)
		p->strategy = QU_STRATEGY_SHARED;
}

/* cpr-exec, asked for with --keep-pid: the only strategy that keeps the PID, and nothing
 * else is chosen in its place (an operator who asks for the PID to stay has a manager that
 * watches it). Every blocker is told. */
static void plan_keep_pid(const struct qu_vm *vm, struct qu_plan *p)
{
	if (qu_keep_pid_blockers(vm, p->target.ver, &p->refusals))
		return;
	for (size_t i = 0; i < vm->nram; i++)
		p->ram_shared_bytes += vm->ram[i].size;
	p->strategy = QU_STRATEGY_CPR_EXEC;
	snprintf(p->pid_note, sizeof(p->pid_note), "kept: the old QEMU execs the new binary in its own process "
		 "(cpr-exec, --keep-pid); the guest pauses while the new QEMU starts");
}

/* Without --keep-pid the PID changes; the report says whether --keep-pid could keep it, and
 * why cpr-exec is not the default: its pause holds the new QEMU's whole start-up (tens to
 * hundreds of milliseconds against a few), the new binary runs only once the old image is
 * gone, and past the exec a rollback needs a new process anyway. */
static void note_pid(const struct qu_vm *vm, struct qu_plan *p)
{
	struct qu_refusals *why = calloc(1, sizeof(*why));
	if (!why)
		return;
	if (qu_keep_pid_blockers(vm, p->target.ver, why) == 0)
		snprintf(p->pid_note, sizeof(p->pid_note), "changes (a new process); --keep-pid would keep it by "
			 "cpr-exec, at the price of a longer pause");
	else
		snprintf(p->pid_note, sizeof(p->pid_note), "changes (a new process); it cannot be kept: %s%s",
			 why->why[0] + strlen("--keep-pid: "), qu_refusals_count(why) > 1 ? " (and more: see --keep-pid)" : "");
	free(why);
}

/* What cpr-exec relies on in the live process: every descriptor the new command line names
 * by number (taps, inherited listening sockets) must survive the exec, i.e. not be
 * close-on-exec. QEMU leaves the taps it opened itself open across exec (a leak, not a
 * promise: checked here on every upgrade, per descriptor). */
static void check_kept_fds(const struct qu_vm *vm, struct qu_plan *p)
{
	for (size_t i = 0; i < p->nfds; i++) {
		const struct qu_carried *c = &p->fds[i];
		/* RAM: CPR itself clears close-on-exec on it just before the exec. */
		int named = c->kind == QU_FD_TAP || c->kind == QU_FD_LISTENER;
		int r = named && c->old_fd >= 0 ? qu_fd_cloexec(vm->pid, c->old_fd) : 0;
		if (r == 1)
			qu_refusals_add(&p->refusals, "--keep-pid: %s is close-on-exec in QEMU PID %d, so it would not "
					"reach the new image; upgrade without --keep-pid", c->name, (int)vm->pid);
		else if (r < 0)
			qu_refusals_add(&p->refusals, "--keep-pid: cannot read the flags of %s in QEMU PID %d: %s",
					c->name, (int)vm->pid, strerror(-r));
	}
}

/* A backing file of d that the command line names (a -blockdev of its own, as libvirt
 * writes), or NULL: QEMU would open it whatever the image's header says. */
static const char *argv_names_chain(const struct qu_vm *vm, const struct qu_disk *d)
{
	for (int k = 0; k < d->nchain; k++)
		for (size_t a = 0; a < vm->argv.n; a++)
			if (vm->argv.a[a].val && strstr(vm->argv.a[a].val, d->chain[k].file))
				return d->chain[k].file;
	return NULL;
}

/* The disks on another host: copied (mirrored into images the agent creates: whole, or the
 * top of a backing chain alone), or already there (shared storage, or read-only media the
 * operator put there). */
static void plan_remote_disks(const struct qu_vm *vm, struct qu_plan *p)
{
	const char *named;
	const char *host = p->remote ? p->remote->host : "the other host";
	for (size_t i = 0; p->disks && i < p->disks->n; i++) {
		const struct qu_disk *d = &p->disks->d[i];
		if (d->readonly || d->removable || p->shared_storage)
			continue; /* must be at the same path there: QEMU says so at its start if not */
		if (!p->copy_storage && !p->copy_storage_inc) {
			qu_refusals_add(&p->refusals, "the VM has disk '%s' (%s): pass --copy-storage to copy its "
					"disks to %s (--copy-storage-inc: only the top of a backing chain), or "
					"--shared-storage if %s sees the same files", d->device, d->file, host, host);
		} else if (d->file[0] != '/' || !d->size || !d->device[0]) {
			qu_refusals_add(&p->refusals, "disk '%s' (%s) cannot be copied: --copy-storage copies "
					"image files opened by path; copy it to %s yourself and pass --shared-storage",
					d->device, d->file, host);
		} else if (d->backing && d->nchain < 0) {
			qu_refusals_add(&p->refusals, "disk '%s' (%s) has a backing chain QEMU does not describe, or "
					"one deeper than %d files: copy it to %s yourself and pass --shared-storage",
					d->device, d->file, QU_MAX_BACKING, host);
		} else if (d->backing && p->copy_storage_inc) {
			p->copy_disks |= 1u << i;
			p->top_disks |= 1u << i;
		} else if (d->backing && (named = argv_names_chain(vm, d))) {
			qu_refusals_add(&p->refusals, "disk '%s' (%s) has backing file %s, which the VM's command line "
					"names itself: --copy-storage would make one standalone image of the chain on %s, "
					"which that command line cannot open; pass --copy-storage-inc with the backing "
					"files present at the same paths on %s", d->device, d->file, named, host, host);
		} else {
			p->copy_disks |= 1u << i;
			if (d->backing)
				p->collapse_disks |= 1u << i;
		}
	}
	p->pause_switchover = p->copy_disks != 0;
	/* Before the pause, the mirrors become write-blocking where the old QEMU can switch them
	 * (block-job-change, 8.2): each guest write then waits for the other host. */
	p->write_blocking = version_at_least(vm->ver, 8, 2);
}

/* --copy-storage-inc: each backing file of a disk whose top moves must be on the other host,
 * at the same path, the same file: both hosts describe it at once (as the VM's user, no link
 * followed) and every difference is a refusal, all disks at once. */
static int plan_remote_chains(const struct qu_vm *vm, struct qu_plan *p, uint64_t deadline_us)
{
	struct qu_ident who;
	qu_ident_of(&vm->ctx, &who);
	for (size_t i = 0; p->disks && i < p->disks->n; i++) {
		const struct qu_disk *d = &p->disks->d[i];
		if (!(p->top_disks & (1u << i)))
			continue;
		for (int k = 0; k < d->nchain; k++) {
			struct qu_file_fact mine, theirs;
			char why[QU_REFUSAL_LEN / 2], diff[256];
			int r = qu_remote_chain_ask(p->remote, d->chain[k].file, (unsigned)who.uid, (unsigned)who.gid);
			int here = r < 0 ? r : qu_chain_fact(&who, d->chain[k].file, &mine);
			if (here < 0)
				snprintf(why, sizeof(why), "%s", qu_err_msg());
			if (r < 0 || (r = qu_remote_chain_answer(p->remote, deadline_us, &theirs, diff, sizeof(diff))) < 0)
				return r;
			if (here < 0) {
				qu_refusals_add(&p->refusals, "disk '%s': cannot read its backing chain here: %s", d->device, why);
				continue;
			}
			if (r == 1) {
				qu_refusals_add(&p->refusals, "disk '%s': backing file %s on %s: %s", d->device,
						d->chain[k].file, p->remote->host, diff);
				continue;
			}
			qu_chain_compare(&mine, &theirs, diff, sizeof(diff));
			if (diff[0])
				qu_refusals_add(&p->refusals, "disk '%s': backing file %s differs on %s: %s; "
						"--copy-storage-inc needs the same backing files there (or pass --copy-storage)",
						d->device, d->chain[k].file, p->remote->host, diff);
			if (k == 0)
				snprintf(p->base_sum[i], sizeof(p->base_sum[i]), "%s", mine.sum);
		}
	}
	return 0;
}

/* To another host every byte of RAM is copied, straight between the QEMUs over TCP, into a
 * shared memfd the agent makes (so that upgrades there are zero-copy). The source keeps its
 * memory until the switch; the destination needs a copy's worth. */
static void plan_remote(const struct qu_vm *vm, struct qu_plan *p)
{
	/* The checks below do not depend on each other: each blocker is told. */
	if (p->low_memory)
		qu_refusals_add(&p->refusals, "--low-memory with --remote is not built yet: the copy to "
				"another host is a precopy (this host's memory is not needed for it)");
	copy_all_ram(vm, p);
	p->memory_needed = (long long)p->ram_copy_bytes + COPY_MARGIN;
	p->memory_room = p->remote ? p->remote->mem_available : -1;
	if (p->memory_room >= 0 && p->memory_room < p->memory_needed)
		qu_refusals_add(&p->refusals, "%s has %lld MiB of memory available and the guest needs about "
				"%lld MiB there: free memory on %s first", p->remote->host, p->memory_room >> 20,
				p->memory_needed >> 20, p->remote->host);
	plan_remote_disks(vm, p);
	/* The same TCG hazard as a local copy (plan_copy). */
	p->stop_first = !vm->kvm && !version_at_least(vm->ver, 9, 0) && !qu_test_env("QEMU_UPGRADE_ALLOW_TCG_COPY");
	p->strategy = p->stop_first ? QU_STRATEGY_REMOTE_STOP : QU_STRATEGY_REMOTE;
}

/* A guest that took over as a COLO secondary runs on the disk graph the agent gave that
 * secondary, whose scratch images are descriptors only the old process holds: its new QEMU
 * gets the VM's own drive back (remote/standby/secondary.h). A takeover's commit still running
 * is refused by check_state (a block job). */
static int promote_colo_drives(struct qu_plan *p)
{
	int r = qu_colo_promote_drives(&p->argv);
	if (r == -EINVAL) {
		qu_refusals_add(&p->refusals, "%s", qu_err_msg());
		qu_err_clear();
		return 0;
	}
	if (r > 0)
		qu_info("the guest runs on a COLO secondary's disk graph (it took over): its new QEMU gets the "
			"quorum over the image back, as before its protection");
	return r < 0 ? r : 0;
}

/* What the agent cannot re-create on another host. */
static void refuse_remote_fds(const struct qu_vm *vm, struct qu_plan *p)
{
	if (vm->ctx.userns)
		qu_refusals_add(&p->refusals, "QEMU PID %d runs in a user namespace of this host, which cannot "
				"follow it to another host (its new QEMU would run with less confinement)", (int)vm->pid);
	for (size_t i = 0; i < p->nfds; i++) {
		const struct qu_carried *c = &p->fds[i];
		const struct qu_fd_kind_ops *k = qu_fd_kind(c->kind);
		if (!k || k->not_remote)
			qu_refusals_add(&p->refusals, "%s cannot follow the VM to another host: %s", c->name,
					k ? k->not_remote : "a descriptor of an unknown kind");
		else if (c->kind == QU_FD_STDIO && (!c->spec[0] || c->spec[strlen(c->spec) - 1] != '\n'))
			qu_refusals_add(&p->refusals, "%s: the path is too long to carry to another host (at most "
					"%zu bytes)", c->name, sizeof(c->spec) - 7);
		else if (c->kind == QU_FD_TAP && strstr(c->spec, "ifname=\n"))
			qu_refusals_add(&p->refusals, "%s: its interface name is unknown, so it cannot be opened on "
					"the other host", c->name);
	}
}

/* Names QMP answered go on the new command line (the machine type, the RAM blocks' ids):
 * a QEMU taken over by its guest, or whoever answers at its socket, must not be able to add
 * options there. The rewriter escapes them as well. */
static int check_qmp_names(const struct qu_vm *vm, struct qu_plan *p)
{
	int ok = 1;
	char shown[72]; /* inspect kept them printable already; shown no longer than this */
	if (!qu_qemu_name_ok(vm->machine)) {
		qu_copy_printable(shown, sizeof(shown), vm->machine);
		qu_refusals_add(&p->refusals, "QMP gave the machine type as '%s', which is not a name QEMU gives: "
				"not put on a command line (is the QMP socket really the VM's QEMU?)", shown);
		ok = 0;
	}
	for (size_t i = 0; i < vm->nram; i++) {
		if (qu_qemu_name_ok(vm->ram[i].id))
			continue;
		qu_copy_printable(shown, sizeof(shown), vm->ram[i].id);
		qu_refusals_add(&p->refusals, "QMP gave a memory backend's id as '%s', which is not a name QEMU "
				"gives: not put on a command line (is the QMP socket really the VM's QEMU?)", shown);
		ok = 0;
	}
	return ok;
}

static void check_state(const struct qu_vm *vm, struct qu_plan *p)
{
	for (const char *const *s = active_migration; *s; s++)
		if (!strcmp(vm->migration, *s))
			qu_refusals_add(&p->refusals, "a migration is already running (status '%s'); wait for it to "
					"end or cancel it with QMP migrate_cancel", vm->migration);
	if (vm->blockers[0])
		qu_refusals_add(&p->refusals, "QEMU reports that this VM cannot migrate: %s", vm->blockers);
	if (vm->block_jobs)
		qu_refusals_add(&p->refusals, "%d block job(s) running (query-block-jobs); wait for them to "
				"finish or cancel them first", vm->block_jobs);
	if (strcmp(vm->runstate, "running"))
		qu_refusals_add(&p->refusals, "the VM is not running (run state '%s'); qemu-upgrade upgrades "
				"running VMs: resume it with QMP 'cont' first", vm->runstate);
}

static int add_stdio(const struct qu_vm *vm, struct qu_plan *p)
{
	/* Logs go where the old QEMU's went; a daemonized QEMU's /dev/null becomes a pipe the
	 * tool reads, so that a new QEMU that fails to start can say why. */
	if (strcmp(vm->stdout_link, "/dev/null") && vm->stdout_link[0]) {
		struct qu_carried *c = &p->fds[p->nfds++];
		*c = (struct qu_carried){ .old_fd = 1, .target = 1, .kind = QU_FD_STDIO };
		snprintf(c->name, sizeof(c->name), "stdout (%.100s)", vm->stdout_link);
		snprintf(c->spec, sizeof(c->spec), "path=%.*s\n", (int)sizeof(c->spec) - 8, vm->stdout_link);
	}
	if (strcmp(vm->stderr_link, "/dev/null") && vm->stderr_link[0]) {
		struct qu_carried *c = &p->fds[p->nfds++];
		*c = (struct qu_carried){ .old_fd = 2, .target = 2, .kind = QU_FD_STDIO };
		snprintf(c->name, sizeof(c->name), "stderr (%.100s)", vm->stderr_link);
		snprintf(c->spec, sizeof(c->spec), "path=%.*s\n", (int)sizeof(c->spec) - 8, vm->stderr_link);
	} else {
		p->capture_stderr = 1;
	}
	return 0;
}

/* The new QEMU enters every namespace of the old one that is not ours (its network for user
 * networking and sockets by address, its mounts for paths, its user namespace for who it
 * is, ...), and gets its root and working directory: the same confinement. */
static int add_namespaces(const struct qu_vm *vm, struct qu_plan *p)
{
	static const char *const kinds[] = { "cgroup", "ipc", "uts", "net", "time", "pid", "mnt", "user", NULL };
	for (const char *const *k = kinds; *k; k++) {
		char theirs[64], ours[64], rel[16];
		snprintf(rel, sizeof(rel), "ns/%s", *k);
		if (qu_proc_readlink(vm->pid, rel, theirs, sizeof(theirs)) < 0 ||
		    qu_proc_readlink(getpid(), rel, ours, sizeof(ours)) < 0 || !strcmp(theirs, ours))
			continue;
		if (p->nfds == QU_MAX_CARRIED)
			return qu_err(-E2BIG, "more than %d descriptors to carry", QU_MAX_CARRIED);
		struct qu_carried *c = &p->fds[p->nfds++];
		*c = (struct qu_carried){ .old_fd = -1, .target = 0, .kind = QU_FD_NAMESPACE };
		snprintf(c->name, sizeof(c->name), "%s", *k);
	}
	for (int i = 0; i < 2 && p->nfds < QU_MAX_CARRIED; i++) {
		struct qu_carried *c = &p->fds[p->nfds++];
		*c = (struct qu_carried){ .old_fd = -1, .target = 0, .kind = QU_FD_DIRECTORY };
		snprintf(c->name, sizeof(c->name), "%s", i ? "cwd" : "root");
	}
	return 0;
}

/* Seccomp filters cannot be read from another process without stopping it (ptrace), nor
 * copied: QEMU's own -sandbox filter comes back by itself (it is on the command line), but
 * one that whatever started QEMU installed (systemd's SystemCallFilter=, a container runtime)
 * would be lost, so such a VM is refused. */
static void check_seccomp(const struct qu_vm *vm, struct qu_plan *p)
{
	const struct qu_context *c = &vm->ctx;
	int own = 0;
	for (long i = -1; (i = qu_argv_find(&vm->argv, "sandbox", (size_t)(i + 1))) >= 0;) {
		struct qu_opts o;
		if (qu_opts_parse(vm->argv.a[i].val, "enable", &o) == 0) {
			own = qu_opts_get_bool(&o, "enable");
			qu_opts_free(&o);
		}
	}
	if (c->seccomp == 1)
		qu_refusals_add(&p->refusals, "QEMU PID %d runs in seccomp strict mode, which no new process can "
				"be given", (int)vm->pid);
	else if (c->seccomp == 2 && c->seccomp_filters > own)
		qu_refusals_add(&p->refusals, "QEMU PID %d runs under %d seccomp filter(s) that %s: they cannot be "
				"read or carried, and the new QEMU must not run with less confinement; start the VM "
				"without them, or with QEMU's own -sandbox", (int)vm->pid, c->seccomp_filters - own,
				own ? "it did not install itself (besides its own -sandbox)" : "whatever started it "
				"installed (it has no -sandbox)");
}

/* Asked before anything is touched: whether the agent's policy allows the whole launch (the
 * program, the user, every file and socket it would make there). Each of its reasons is a
 * refusal, beside the plan's own. probe_why: the agent refused to probe the binary (its
 * admit answer says so again, among the rest). */
static int ask_agent(const struct qu_vm *vm, struct qu_plan *p, uint64_t deadline_us, const char *probe_why)
{
	const size_t len = 16384;
	char *why = p->argv.prog ? malloc(len) : NULL;
	int r = why ? qu_remote_send(vm, p, deadline_us, why, len) : -ENOMEM;
	if (r == 1) {
		for (char *save = NULL, *line = strtok_r(why, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			qu_refusals_add(&p->refusals, "the policy of the agent on %s: %s", p->remote->host, line);
		r = 0;
	} else if (r < 0 && probe_why[0]) {
		qu_refusals_add(&p->refusals, "%s", probe_why);
		r = 0;
	} else if (r == -EBADMSG && p->remote->agent_said) {
		r = qu_err(r, "%s (an agent that checks no policy: update qemu-upgrade on %s)", qu_err_msg(),
			   p->remote->host);
	}
	free(why);
	return r;
}

/* The new binary is probed as the VM's user. It may be that user's own build only when it
 * would run with no more than that user's privileges: no capabilities, not root. */
static int probe_here(const struct qu_vm *vm, const char *new_binary, uint64_t deadline_us, struct qu_plan *p)
{
	const struct qu_context *c = &vm->ctx;
	int r = qu_binary_probe(new_binary, c->uid ? c->uid : (uid_t)-1, c->uid, c->gid, deadline_us, &p->target);
	if (r == 0 && p->target.owner != 0 && (c->cap_prm || c->cap_eff || c->cap_amb))
		qu_refusals_add(&p->refusals, "the new binary %s belongs to uid %u, and the VM's QEMU holds "
				"capabilities (permitted %llx, ambient %llx): a program its user can change would get "
				"them; install QEMU as root", new_binary, (unsigned)p->target.owner, c->cap_prm,
				c->cap_amb);
	return r;
}

int qu_plan_make(const struct qu_vm *vm, const char *new_binary, uint64_t deadline_us,
		 struct qu_plan *p)
{
	int r, allow_copy = p->allow_copy, low_memory = p->low_memory, keep_pid = p->keep_pid, has_machine = 0;
	struct qu_remote *remote = p->remote;
	int copy_storage = p->copy_storage, shared_storage = p->shared_storage, no_tls = p->no_tls;
	int copy_storage_inc = p->copy_storage_inc, verify = p->verify;
	const struct qu_disks *disks = p->disks;
	memset(p, 0, sizeof(*p));
	p->allow_copy = allow_copy || low_memory;
	p->low_memory = low_memory;
	p->keep_pid = keep_pid;
	p->remote = remote;
	p->copy_storage = copy_storage;
	p->shared_storage = shared_storage;
	p->no_tls = no_tls;
	p->copy_storage_inc = copy_storage_inc;
	p->verify = verify;
	p->disks = disks;
	p->memory_room = -1;
	/* The new binary is probed where it will run. An agent whose policy does not allow it runs
	 * nothing: the plan goes on with the VM's own version in its place, so that every other
	 * blocker is found too, and the agent's admit says why. */
	char probe_why[QU_REFUSAL_LEN] = "";
	if (remote) {
		r = qu_remote_probe(remote, new_binary, vm->machine, deadline_us, &p->target, &has_machine);
		if (r == -EACCES && remote->agent_said) {
			snprintf(probe_why, sizeof(probe_why), "%s", qu_err_msg());
			memset(&p->target, 0, sizeof(p->target));
			snprintf(p->target.path, sizeof(p->target.path), "%s", new_binary);
			snprintf(p->target.version_line, sizeof(p->target.version_line), "not probed: %.64s refuses it",
				 remote->host);
			memcpy(p->target.ver, vm->ver, sizeof(p->target.ver));
			has_machine = 1;
			r = 0;
		}
	} else {
		r = probe_here(vm, new_binary, deadline_us, p);
	}
	if (r < 0)
		return r;
	/* Names QMP gave that no QEMU gives mean the socket may not be the VM's QEMU at all: the
	 * VM's state, RAM and machine came from it too, so nothing more is judged from them (the
	 * command line, from /proc, still is). Otherwise each check stands on its own and every
	 * blocker is told, so that fixing one does not reveal the next on the following try. */
	int qmp_trusted = check_qmp_names(vm, p);
	char why[QU_REFUSAL_LEN];
	check_seccomp(vm, p);
	if (qu_systemd_main_process(vm->pid, deadline_us, why, sizeof(why)))
		qu_refusals_add(&p->refusals, "%s", why);
	if (qmp_trusted) {
		check_state(vm, p);
		if (remote) {
			if (keep_pid)
				qu_refusals_add(&p->refusals, "--keep-pid: a VM moved to another host runs in a new "
						"process there; the PID can only be kept on this host");
			plan_remote(vm, p);
			if (p->top_disks && (r = plan_remote_chains(vm, p, deadline_us)) < 0)
				return r;
		} else if (keep_pid) {
			plan_keep_pid(vm, p);
		} else {
			check_ram(vm, p);
			note_pid(vm, p);
		}
	}
	r = remote ? has_machine : qu_binary_has_machine(&p->target, vm->machine, deadline_us);
	if (r < 0)
		return qu_err(r, "new binary %s: `-machine help` failed", new_binary);
	if (r == 0 && qmp_trusted)
		qu_refusals_add(&p->refusals, "the new binary (QEMU %d.%d.%d) does not offer machine type '%s' "
				"that the VM runs", p->target.ver[0], p->target.ver[1], p->target.ver[2], vm->machine);
	/* Proxmox starts its VMs with -id VMID, an option of its own QEMU build only. */
	if (!remote && qu_argv_find(&vm->argv, "id", 0) >= 0 && qu_binary_takes_option(&p->target, "id", deadline_us) == 0)
		qu_refusals_add(&p->refusals, "the VM runs with -id (an option of Proxmox's own QEMU build, "
				"pve-qemu-kvm) and the new binary %s does not take it: upgrade to a pve-qemu-kvm "
				"binary", new_binary);
	/* cpr-exec: the same process goes on, with its descriptors, namespaces and stdio; the
	 * namespaces and directories are held only for a rollback in a new process. */
	if (qu_strategy_cpr_exec(p->strategy)) {
		if ((r = qu_rewrite(vm, &p->rw)) < 0 || (r = promote_colo_drives(p)) < 0 || (r = add_namespaces(vm, p)) < 0)
			return r;
		check_kept_fds(vm, p);
		return 0;
	}
	if ((r = add_stdio(vm, p)) < 0 || (!remote && (r = add_namespaces(vm, p)) < 0) || (r = qu_rewrite(vm, &p->rw)) < 0 ||
	    (r = promote_colo_drives(p)) < 0)
		return r;
	if (remote) {
		refuse_remote_fds(vm, p);
		return ask_agent(vm, p, deadline_us, probe_why); /* the agent opens vhost-net there */
	}
	if ((r = qu_plan_argv0(vm, p)) < 0)
		return r;
	for (size_t i = 0; i < vm->ntaps; i++)
		if (vm->taps[i].vhost && access("/dev/vhost-net", R_OK | W_OK) < 0)
			qu_refusals_add(&p->refusals, "tap '%s' uses vhost-net, but /dev/vhost-net cannot be opened "
					"here (%s): load the vhost_net module", vm->taps[i].id, strerror(errno));
	return 0;
}
