/* standby's plan: the facts inspect read, judged against what COLO was measured to do
 * (docs/standby-research.md). Every blocker is kept, so that the operator sees them all at
 * once; nothing here changes the VM (query commands only) or anything on the other host. */
#include "remote/standby/plan.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/qmp.h"
#include "remote/client.h"
#include "remote/standby/versions.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define refuse(p, ...) qu_refusals_add(&(p)->refusals, __VA_ARGS__)

/* QOM types COLO's network side is made of (net/colo-compare.c, net/filter-mirror.c,
 * net/filter-rewriter.c) and the iothread colo-compare runs in. */
static const char *const colo_objects[] = { "colo-compare", "filter-mirror", "filter-redirector", "filter-rewriter",
					    "iothread" };

static void check_objects(struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p)
{
	json_object *types = NULL;
	if (qu_qmp_query_list(q, "qom-list-types", deadline_us, &types) < 0) {
		refuse(p, "QEMU does not list its object types (qom-list-types: %s): cannot tell whether it has COLO's "
			  "filters", qu_err_msg());
		qu_err_clear();
		return;
	}
	for (size_t k = 0; k < sizeof(colo_objects) / sizeof(colo_objects[0]); k++) {
		int found = 0;
		for (size_t i = 0; !found && i < json_object_array_length(types); i++)
			found = !strcmp(qu_json_member_str(json_object_array_get_idx(types, i), "name"), colo_objects[k]);
		if (!found)
			refuse(p, "this QEMU build has no object type '%s' (COLO's network filters): use a QEMU built with "
				  "COLO (Debian's is)", colo_objects[k]);
	}
	json_object_put(types);
}

/* COLO on 11.1 needs x-colo and return-path (x-colo alone: "Capability 'x-colo' requires
 * capability 'return-path'"). */
static void check_capabilities(struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p)
{
	static const char *const needed[] = { "x-colo", "return-path", "events" };
	json_object *caps = NULL;
	if (qu_qmp_query_list(q, "query-migrate-capabilities", deadline_us, &caps) < 0) {
		refuse(p, "QEMU does not list its migration capabilities: %s", qu_err_msg());
		qu_err_clear();
		return;
	}
	for (size_t k = 0; k < sizeof(needed) / sizeof(needed[0]); k++) {
		int found = 0;
		for (size_t i = 0; !found && i < json_object_array_length(caps); i++)
			found = !strcmp(qu_json_member_str(json_object_array_get_idx(caps, i), "capability"), needed[k]);
		if (!found)
			refuse(p, "this QEMU has no migration capability '%s'%s", needed[k],
			       !strcmp(needed[k], "return-path") ? ": COLO on QEMU 11.1 needs it (x-colo requires return-path)"
								 : ": COLO needs it");
	}
	json_object_put(caps);
}

static void check_colo_status(struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p)
{
	json_object *st = NULL;
	if (qu_qmp_execute(q, "query-colo-status", NULL, -1, deadline_us, &st) < 0 || !st) {
		refuse(p, "QEMU does not answer query-colo-status (%s): it has no COLO", qu_err_msg());
		qu_err_clear();
		json_object_put(st);
		return;
	}
	const char *mode = qu_json_member_str(st, "mode"), *last = qu_json_member_str(st, "last-mode");
	if (strcmp(mode, "none"))
		refuse(p, "the VM is already in COLO (mode %s): run `qemu-upgrade standby status --pid %d`, or "
			  "`standby stop` first", mode, (int)p->pid);
	/* A QEMU that took over as a secondary is no sound primary on 11.1: protected again
	 * (failback), its checkpoints left the new secondary's memory mixed, and the guest
	 * corrupt after the next takeover (docs/standby.md, "Failback"). */
	else if (!strcmp(last, "secondary") && p->renew)
		p->renew_first = 1;
	else if (!strcmp(last, "secondary"))
		refuse(p, "this QEMU took over the guest as a COLO secondary (query-colo-status: last-mode secondary); "
			  "protected again from such a process, the guest's memory was found corrupt after the next "
			  "takeover (QEMU 11.1.3, docs/standby.md, \"Failback\"): the guest stays here unprotected, "
			  "untouched; protect it again once it runs in a QEMU that never was a secondary: "
			  "`standby start --renew` moves it into a new one here first, as `qemu-upgrade --pid %d "
			  "--allow-copy` does (the guest paused tens of milliseconds)", (int)p->pid);
	json_object_put(st);
}

static void check_ram(const struct qu_vm *vm, struct qu_standby_plan *p)
{
	if (vm->nram > 1) {
		char ids[256] = "";
		for (size_t i = 0; i < vm->nram; i++) {
			size_t at = strlen(ids);
			snprintf(ids + at, sizeof(ids) - at, "%s%s", i ? ", " : "", vm->ram[i].id);
		}
		refuse(p, "the VM has %zu memory backends (%s): COLO was measured with one, the guest's RAM", vm->nram, ids);
	}
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		if (r->hugetlb || r->page_size)
			refuse(p, "guest RAM '%s' is on huge pages: not measured under COLO; the secondary would need "
				  "the same pool", r->id);
		p->ram_bytes += r->size;
	}
	if (vm->nram) {
		snprintf(p->ram_id, sizeof(p->ram_id), "%s", vm->ram[0].id);
		snprintf(p->ram_type, sizeof(p->ram_type), "%s", vm->ram[0].qom_type);
		p->ram_explicit = vm->ram[0].arg >= 0;
	}
}

int qu_standby_plan_local(const struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us,
			  struct qu_standby_plan *p)
{
	int r;
	p->pid = vm->pid;
	memcpy(p->ver, vm->ver, sizeof(p->ver));
	snprintf(p->machine, sizeof(p->machine), "%s", vm->machine);
	snprintf(p->exe, sizeof(p->exe), "%s", vm->exe_path);
	p->kvm = vm->kvm;
	p->remote_mem_available = -1;
	/* The version first: on the versions that fail, nothing else matters. */
	const char *why = qu_standby_version_refusal(vm->ver);
	if (why)
		refuse(p, "%s", why);
	if (strcmp(vm->runstate, "running"))
		refuse(p, "the VM is %s: standby protects a running VM; resume it first (QMP cont)", vm->runstate);
	if (strcmp(vm->migration, "none") && strcmp(vm->migration, "completed") && strcmp(vm->migration, "failed") &&
	    strcmp(vm->migration, "cancelled"))
		refuse(p, "a migration of this VM is under way (status %s): wait for it to end", vm->migration);
	if (vm->blockers[0])
		refuse(p, "QEMU reports that this VM cannot migrate: %s", vm->blockers);
	if (vm->block_jobs)
		refuse(p, "the VM has %d block job(s) running: wait for them to end (query-block-jobs)", vm->block_jobs);
	if (strncmp(vm->machine, "pc-q35-", 7))
		refuse(p, "machine %s: COLO was measured on q35 only (on 7.2, -machine pc corrupted the secondary); "
			  "start the VM with -machine q35", vm->machine);
	check_ram(vm, p);
	if (!why) {
		/* Only a version COLO works on is asked what it offers: the others are refused anyway. */
		check_colo_status(q, deadline_us, p);
		check_capabilities(q, deadline_us, p);
		check_objects(q, deadline_us, p);
	}
	if ((r = qu_standby_devices(vm, q, deadline_us, p)) < 0 || (r = qu_standby_disks(q, deadline_us, p)) < 0)
		return r;
	return 0;
}

void qu_standby_plan_remote(struct qu_standby_plan *p, const char *pki_dir, uint64_t deadline_us)
{
	struct qu_remote *r = NULL;
	struct qu_binary b;
	int has_machine = 0;
	if (qu_remote_connect(p->host, pki_dir, deadline_us, &r) < 0) {
		refuse(p, "cannot reach the agent on %s: %s", p->host, qu_err_msg());
		qu_err_clear();
		return;
	}
	memset(&b, 0, sizeof(b));
	if (qu_remote_probe(r, p->exe, p->machine, deadline_us, &b, &has_machine) < 0) {
		refuse(p, "the agent on %s cannot run the VM's QEMU binary %s there: %s; the secondary runs the same "
			  "binary at the same path", p->host, p->exe, qu_err_msg());
		qu_err_clear();
		qu_remote_close(r);
		return;
	}
	p->remote_probed = 1;
	memcpy(p->remote_ver, b.ver, sizeof(p->remote_ver));
	p->remote_mem_available = r->mem_available;
	if (memcmp(b.ver, p->ver, sizeof(b.ver)))
		refuse(p, "%s on %s is QEMU %d.%d.%d, the VM runs %d.%d.%d: COLO needs the same QEMU on both hosts; "
			  "install %d.%d.%d there", p->exe, p->host, b.ver[0], b.ver[1], b.ver[2], p->ver[0], p->ver[1],
		       p->ver[2], p->ver[0], p->ver[1], p->ver[2]);
	if (!has_machine)
		refuse(p, "%s on %s has no machine type %s", p->exe, p->host, p->machine);
	if (!r->standby)
		refuse(p, "the agent on %s: %s", p->host, r->standby_refused);
	/* The secondary keeps a second copy of guest RAM (its RAM cache): about twice the guest. */
	if (r->mem_available >= 0 && (unsigned long long)r->mem_available < 2 * p->ram_bytes)
		refuse(p, "%s has %lld MiB available; a secondary needs about twice the guest's RAM (%llu MiB)", p->host,
		       r->mem_available >> 20, (unsigned long long)(2 * p->ram_bytes) >> 20);
	qu_remote_close(r);
}
