/* plan: choose a strategy and refuse, before anything is touched, what cannot be carried. */
#include "upgrade/plan.h"
#include "upgrade/log.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STRATEGY_SHARED "shared-ram-handover"

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
static void check_ram(const struct qu_vm *vm, struct qu_plan *p)
{
	if (vm->nram == 0) {
		snprintf(p->refusal, sizeof(p->refusal), "guest RAM is not in a memory backend; copying it is "
			 "not supported yet: start VMs with -object memory-backend-memfd,id=mem0,size=SIZE,"
			 "share=on -machine memory-backend=mem0");
		return;
	}
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		int memfd = !strcmp(r->qom_type, "memory-backend-memfd");
		int file = !strcmp(r->qom_type, "memory-backend-file");
		if (!r->share || (!memfd && !file)) {
			snprintf(p->refusal, sizeof(p->refusal), "guest RAM '%s' (%s, share=%s) is not shared "
				 "memory, so it would have to be copied, which is not supported yet; start VMs "
				 "with a memory-backend-memfd or -file with share=on", r->id, r->qom_type,
				 r->share ? "on" : "off");
			return;
		}
		if (r->arg < 0) {
			snprintf(p->refusal, sizeof(p->refusal), "memory backend '%s' is not on the command "
				 "line (added with object-add?), so the new QEMU could not recreate it", r->id);
			return;
		}
		/* Since 8.1 x-ignore-shared skips only RAM backed by a named file: memfd RAM would be
		 * sent and land in the very pages the guest is running on (field notes). */
		if (memfd && version_at_least(vm->ver, 8, 1)) {
			snprintf(p->refusal, sizeof(p->refusal), "QEMU %d.%d sends memfd guest RAM ('%s') even "
				 "with x-ignore-shared, so it cannot be handed over in place; use "
				 "memory-backend-file with share=on (e.g. under /dev/shm)",
				 vm->ver[0], vm->ver[1], r->id);
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
	int r;
	memset(p, 0, sizeof(*p));
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
