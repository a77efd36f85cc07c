/* plan: choose a strategy and refuse, before anything is touched, what cannot be carried. */
#include "upgrade/plan.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STRATEGY_SHARED "shared-ram-handover"
#define STRATEGY_COPY "precopy"
#define STRATEGY_STOP_COPY "stop-and-copy"

void qu_plan_free(struct qu_plan *p)
{
	qu_argv_free(&p->argv);
}

static int version_at_least(const int v[3], int major, int minor)
{
	return v[0] > major || (v[0] == major && v[1] >= minor);
}

static const char *const active_migration[] = {
	"setup", "active", "pre-switchover", "device", "postcopy-active", "postcopy-paused",
	"postcopy-recover", "postcopy-recover-setup", "cancelling", "wait-unplug", "colo", NULL,
};

/* The reasons a VM's guest RAM cannot be handed over in place, in the user's words. */
/* MemAvailable from /proc/meminfo, bytes; -1 unknown. */
static long long mem_available(void)
{
	char *text = NULL;
	long long kb = -1;
	if (qu_read_file("/proc/meminfo", &text, NULL) < 0)
		return -1;
	char *m = strstr(text, "MemAvailable:");
	if (m)
		sscanf(m + 13, "%lld", &kb);
	free(text);
	return kb < 0 ? -1 : kb * 1024;
}

/* RAM that cannot be handed over is copied once by QEMU's precopy, but only where that was
 * measured safe: RAM the machine made itself from -m, received into RAM made the same way.
 * Precopy into or out of an explicit backend corrupted 6 of 9 guests on QEMU 7.2 (field
 * notes), so those are refused until the cause is known. The host must hold a second copy of
 * what the guest has touched. */
static void plan_copy(const struct qu_vm *vm, struct qu_plan *p)
{
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		/* The machine's own RAM from -m can move into a backend only if it is the only one
		 * (it becomes -machine memory-backend=...). */
		if (r->arg < 0 && vm->nram > 1) {
			snprintf(p->refusal, sizeof(p->refusal), "memory backend '%s' is not on the command line "
				 "and is not the machine's only RAM: it cannot be recreated", r->id);
			return;
		}
		p->ram_copy_bytes += r->size;
		p->convert_mask |= 1u << i;
	}
	if (!p->allow_copy) {
		char why[160];
		const struct qu_ram *r = &vm->ram[0];
		if (!strcmp(r->qom_type, "memory-backend-memfd") && r->share)
			snprintf(why, sizeof(why), "QEMU %d.%d sends memfd guest RAM ('%s') even with x-ignore-shared",
				 vm->ver[0], vm->ver[1], r->id);
		else if (r->arg < 0)
			snprintf(why, sizeof(why), "plain -m: private memory");
		else
			snprintf(why, sizeof(why), "'%s' is %s with share=off", r->id, r->qom_type);
		snprintf(p->refusal, sizeof(p->refusal), "guest RAM (%llu MiB) cannot be handed over (%s) and would "
			 "have to be copied with QEMU's precopy: pass --allow-copy to do that (the guest pauses "
			 "for up to --max-downtime, the host needs a second copy of its memory; afterwards the "
			 "RAM is shared and later upgrades copy nothing)",
			 (unsigned long long)(p->ram_copy_bytes >> 20), why);
		return;
	}
	long long need = (vm->anon_bytes > 0 ? vm->anon_bytes : (long long)p->ram_copy_bytes) + (256LL << 20);
	long long have = mem_available();
	if (have >= 0 && have < need) {
		snprintf(p->refusal, sizeof(p->refusal), "copying this VM's RAM needs about %lld MiB of free "
			 "memory (a second copy of what the guest uses, plus a margin); MemAvailable is %lld MiB",
			 need >> 20, have >> 20);
		return;
	}
	p->ignore_shared = 0;
	/* Under TCG, QEMU before 9.0 loses guest writes between dirty-bitmap syncs while the guest
	 * runs (fixed upstream by 03bfc2188f, "physmem: Fix migration dirty bitmap coherency with
	 * TCG memory access"): the copy is then made with the guest stopped, a pause as long as
	 * the copy. QEMU_UPGRADE_ALLOW_TCG_COPY forces the live copy (tests of non-convergence). */
	p->stop_first = !vm->kvm && !version_at_least(vm->ver, 9, 0) && !getenv("QEMU_UPGRADE_ALLOW_TCG_COPY");
	snprintf(p->strategy, sizeof(p->strategy), p->stop_first ? STRATEGY_STOP_COPY : STRATEGY_COPY);
}

static void check_ram(const struct qu_vm *vm, struct qu_plan *p)
{
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
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		if (r->arg < 0) {
			snprintf(p->refusal, sizeof(p->refusal), "memory backend '%s' is not on the command "
				 "line (added with object-add?), so the new QEMU could not recreate it", r->id);
			return;
		}
		p->ram_shared_bytes += r->size;
	}
	p->ignore_shared = 1;
	snprintf(p->strategy, sizeof(p->strategy), STRATEGY_SHARED);
}

static void check_state(const struct qu_vm *vm, struct qu_plan *p)
{
	for (const char *const *s = active_migration; *s; s++)
		if (!strcmp(vm->migration, *s))
			snprintf(p->refusal, sizeof(p->refusal), "a migration is already running (status '%s'); "
				 "wait for it to end or cancel it with QMP migrate_cancel", vm->migration);
	if (!p->refusal[0] && vm->blockers[0])
		snprintf(p->refusal, sizeof(p->refusal), "QEMU reports that this VM cannot migrate: %s",
			 vm->blockers);
	if (!p->refusal[0] && vm->block_jobs)
		snprintf(p->refusal, sizeof(p->refusal), "%d block job(s) running (query-block-jobs); wait "
			 "for them to finish or cancel them first", vm->block_jobs);
	if (!p->refusal[0] && strcmp(vm->runstate, "running"))
		snprintf(p->refusal, sizeof(p->refusal), "the VM is not running (run state '%s'); "
			 "qemu-upgrade upgrades running VMs: resume it with QMP 'cont' first", vm->runstate);
}

static int add_stdio(const struct qu_vm *vm, struct qu_plan *p)
{
	/* Logs go where the old QEMU's went; a daemonized QEMU's /dev/null becomes a pipe the
	 * tool reads, so that a new QEMU that fails to start can say why. */
	if (strcmp(vm->stdout_link, "/dev/null") && vm->stdout_link[0]) {
		struct qu_carried *c = &p->fds[p->nfds++];
		*c = (struct qu_carried){ .old_fd = 1, .target = 1, .kind = QU_FD_STDIO };
		snprintf(c->name, sizeof(c->name), "stdout (%.100s)", vm->stdout_link);
	}
	if (strcmp(vm->stderr_link, "/dev/null") && vm->stderr_link[0]) {
		struct qu_carried *c = &p->fds[p->nfds++];
		*c = (struct qu_carried){ .old_fd = 2, .target = 2, .kind = QU_FD_STDIO };
		snprintf(c->name, sizeof(c->name), "stderr (%.100s)", vm->stderr_link);
	} else {
		p->capture_stderr = 1;
	}
	return 0;
}

/* The new QEMU enters the old one's network namespace (its user networking, its sockets by
 * address), when that is not ours. */
static int add_namespaces(const struct qu_vm *vm, struct qu_plan *p)
{
	char theirs[64], ours[64];
	if (qu_proc_readlink(vm->pid, "ns/net", theirs, sizeof(theirs)) < 0 ||
	    qu_proc_readlink(getpid(), "ns/net", ours, sizeof(ours)) < 0 || !strcmp(theirs, ours))
		return 0;
	struct qu_carried *c = &p->fds[p->nfds++];
	*c = (struct qu_carried){ .old_fd = -1, .target = 0, .kind = QU_FD_NAMESPACE };
	snprintf(c->name, sizeof(c->name), "net");
	return 0;
}

int qu_plan_make(const struct qu_vm *vm, const char *new_binary, uint64_t deadline_us,
		 struct qu_plan *p)
{
	int r, allow_copy = p->allow_copy;
	memset(p, 0, sizeof(*p));
	p->allow_copy = allow_copy;
	snprintf(p->strategy, sizeof(p->strategy), "none");
	if ((r = qu_binary_probe(new_binary, vm->env, deadline_us, &p->target)) < 0)
		return r;
	check_state(vm, p);
	if (!p->refusal[0])
		check_ram(vm, p);
	r = qu_binary_has_machine(&p->target, vm->env, vm->machine, deadline_us);
	if (r < 0)
		return qu_err(r, "new binary %s: `-machine help` failed", new_binary);
	if (r == 0 && !p->refusal[0])
		snprintf(p->refusal, sizeof(p->refusal), "the new binary (QEMU %d.%d.%d) does not offer "
			 "machine type '%s' that the VM runs", p->target.ver[0], p->target.ver[1],
			 p->target.ver[2], vm->machine);
	if ((r = add_stdio(vm, p)) < 0 || (r = add_namespaces(vm, p)) < 0 || (r = qu_rewrite(vm, p)) < 0)
		return r;
	return 0;
}
