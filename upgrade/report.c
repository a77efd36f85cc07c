#include "upgrade/report.h"
#include "upgrade/fdpass/kinds.h"
#include "upgrade/plan.h"
#include "upgrade/stream.h"
#include "qemu-integration/vm.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

void qu_report_from_plan(struct qu_report *rep, const struct qu_vm *vm, const struct qu_plan *plan)
{
	rep->old_pid = vm->pid;
	/* 0.0.0: not known (a dry run without the monitor, upgrade/inspect-held.h). */
	if (vm->ver[0] || vm->ver[1] || vm->ver[2])
		snprintf(rep->old_version, sizeof(rep->old_version), "%d.%d.%d", vm->ver[0], vm->ver[1], vm->ver[2]);
	else
		snprintf(rep->old_version, sizeof(rep->old_version), "unknown");
	snprintf(rep->machine, sizeof(rep->machine), "%s", vm->machine);
	if (!plan)
		return;
	snprintf(rep->strategy, sizeof(rep->strategy), "%s", qu_strategy_name(plan->strategy));
	snprintf(rep->new_version, sizeof(rep->new_version), "%d.%d.%d", plan->target.ver[0],
		 plan->target.ver[1], plan->target.ver[2]);
	rep->ram_shared_bytes = plan->ram_shared_bytes;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

void qu_report_print_text(const struct qu_report *rep, const struct qu_vm *vm,
			  const struct qu_plan *plan, FILE *f)
{
	fprintf(f, "result:        %s\n", rep->result);
	if (rep->old_version[0])
		fprintf(f, "VM:            PID %d, QEMU %s, machine %s\n", (int)rep->old_pid, rep->old_version, rep->machine);
	else
		fprintf(f, "VM:            PID %d (not inspected)\n", (int)rep->old_pid);
	if (plan && plan->target.path[0])
		fprintf(f, "new binary:    %s (QEMU %s)\n", plan->target.path, rep->new_version);
	fprintf(f, "strategy:      %s\n", rep->strategy);
	if (rep->remote[0])
		fprintf(f, "remote host:   %s (through its agent; migration and disk copy %s)\n", rep->remote,
			plan && plan->no_tls ? "over plain TCP (--no-tls)" : "over TLS");
	/* Every blocker on its own line: all of them must go before the upgrade can run. */
	if (plan && plan->refusals.n) {
		unsigned n = qu_refusals_count(&plan->refusals);
		fprintf(f, "refused:       %u blocker%s, each to resolve before the upgrade:\n", n, n == 1 ? "" : "s");
		for (unsigned i = 0; i < plan->refusals.n; i++)
			fprintf(f, "  - %s\n", plan->refusals.why[i]);
		if (plan->refusals.more)
			fprintf(f, "  - (%u more, not listed: resolve these first)\n", plan->refusals.more);
	}
	if (plan && !plan->refusals.n && plan->warning[0])
		fprintf(f, "WARNING:       %s\n", plan->warning);
	if (plan && !plan->refusals.n && plan->pid_note[0])
		fprintf(f, "PID:           %s\n", plan->pid_note);
	if (rep->tap_watch[0])
		fprintf(f, "down scripts:  %s\n", rep->tap_watch);
	if (!strcmp(rep->result, "planned") && plan) {
		fprintf(f, "guest RAM:     %.1f MiB handed over in place, %.1f MiB to copy\n",
			mib(plan->ram_shared_bytes), mib(plan->ram_copy_bytes));
		if (plan->ram_copy_bytes) {
			fprintf(f, "memory needed: about %.0f MiB for the copy; %.0f MiB free for it (%s)\n",
				mib((uint64_t)plan->memory_needed), mib((uint64_t)(plan->memory_room > 0 ? plan->memory_room : 0)),
				qu_strategy_postcopy(plan->strategy) ? "postcopy frees each page on the old side once sent"
					       : "a second copy of what the guest uses, plus a margin");
			fprintf(f, "expected pause: %s\n", qu_strategy_postcopy(plan->strategy) ? "milliseconds; then the guest runs while its pages follow"
					 : plan->stop_first ? "as long as the copy (the guest is stopped while it is made)"
					 : "up to the downtime limit (--max-downtime, default 300 ms)");
		} else {
			if (qu_strategy_cpr_exec(plan->strategy))
				fprintf(f, "memory needed: none beyond the process's own (one process throughout; guest RAM\n"
					   "               stays in place)\n");
			else if (vm)
				fprintf(f, "memory needed: about %.0f MiB while both QEMUs run (the old one's private memory;\n"
					   "               guest RAM is shared, not copied)\n",
					mib((uint64_t)(vm->anon_bytes > 0 ? vm->anon_bytes : 0)));
			if (qu_strategy_cpr_exec(plan->strategy))
				fprintf(f, "expected pause: tens to hundreds of milliseconds (the new QEMU starts inside it;\n"
					   "               67-270 ms measured under TCG on a loaded host)\n");
			else
				fprintf(f, "expected pause: a few milliseconds (only device state moves, ~200 KiB)\n");
		}
		for (size_t i = 0; rep->remote[0] && plan->disks && i < plan->disks->n; i++) {
			const struct qu_disk *d = &plan->disks->d[i];
			fprintf(f, "disk %-8s %s (%s, %.0f MiB): %s\n", d->device, d->file, d->format, mib(d->size),
				(plan->top_disks & (1u << i))	   ? "its top image copied onto the same backing files there (NBD mirror, sync=top)"
				: (plan->collapse_disks & (1u << i)) ? "copied whole into one standalone image there (the backing chain collapsed)"
				: (plan->copy_disks & (1u << i))     ? "copied into a new image there (NBD mirror)"
								     : "must be at the same path there (shared or read-only)");
		}
		if (qu_strategy_cpr(plan->strategy))
			fprintf(f, "cpr-transfer:  the old QEMU passes its RAM descriptors itself over @%s, the device\n"
				   "               state follows over @%s (abstract UNIX sockets in the VM's namespace)\n",
				plan->cpr_channel, plan->main_channel);
		fprintf(f, "%s\n", qu_strategy_cpr_exec(plan->strategy)
				   ? "descriptors the new image keeps at their numbers (the tool holds copies for a rollback):"
				   : "descriptors carried to the new QEMU:");
		for (size_t i = 0; i < plan->nfds; i++)
			fprintf(f, "  fd %d -> %d  %-9s %s\n", plan->fds[i].old_fd, plan->fds[i].target,
				qu_fd_kind_name(plan->fds[i].kind), plan->fds[i].name);
		fprintf(f, "new command line:\n ");
		char **argv = qu_argv_flatten(&plan->argv);
		for (char **a = argv; a && *a; a++)
			fprintf(f, " %s", *a);
		fprintf(f, "\n");
		qu_strv_free(argv);
		if (qu_strategy_cpr_exec(plan->strategy)) {
			fprintf(f, "if the new image fails after the exec, the old binary starts again, a new process:\n ");
			argv = qu_argv_flatten(&plan->back_argv);
			for (char **a = argv; a && *a; a++)
				fprintf(f, " %s", *a);
			fprintf(f, "\n");
			qu_strv_free(argv);
		}
	}
	if (!strcmp(rep->result, "upgraded")) {
		fprintf(f, "new PID:       %d%s\n", (int)rep->new_pid, rep->remote[0] ? " (on the remote host)" : "");
		if (rep->remote[0] && plan && plan->copy_disks)
			fprintf(f, "disks copied:  %llu bytes (%.1f MiB) written there by the mirrors%s\n", rep->disk_copied_bytes,
				mib(rep->disk_copied_bytes), rep->verified ? "; --verify: both hosts' sums agree" : "");
		if (rep->remote[0])
			fprintf(f, "announce:      %s\n", rep->announced ? "the guest's MAC addresses were announced there"
				: "FAILED: the network may still send the guest's frames to this host");
		fprintf(f, "downtime:      %.0f ms (QEMU), guest paused %.1f ms (old QEMU's STOP to new QEMU's RESUME)\n",
			rep->downtime_ms, rep->pause_ms);
		fprintf(f, "total time:    %.1f ms (the new QEMU ran the guest after %.1f ms; the rest is the old\n"
			   "               QEMU's retirement)\n", rep->total_ms, rep->commit_ms);
		fprintf(f, "RAM copied:    %llu bytes (%.1f MiB handed over in place); %llu bytes on the channel\n",
			(unsigned long long)rep->ram_copied_bytes, mib(rep->ram_shared_bytes),
			(unsigned long long)rep->transferred_bytes);
		fprintf(f, "extra memory:  %.1f MiB (the new QEMU's private memory while both ran)\n",
			mib((uint64_t)(rep->extra_memory_bytes > 0 ? rep->extra_memory_bytes : 0)));
		if (rep->memory_wait_ms > 0.5)
			fprintf(f, "memory wait:   %.1f s for other copies to free the memory this one needed\n",
				rep->memory_wait_ms / 1000.0);
	}
	if (rep->libvirt.is) {
		fprintf(f, "libvirt:       %s\n", rep->libvirt.action);
		if (rep->libvirt.stopped || rep->libvirt.rewritten || rep->libvirt.restarted)
			fprintf(f, "               done: %s%s%s\n", rep->libvirt.stopped ? "daemon stopped; " : "",
				rep->libvirt.rewritten ? "status file names the new QEMU; " : "",
				rep->libvirt.restarted ? "daemon started again" : "");
		if (rep->libvirt.error[0])
			fprintf(f, "               WARNING: %s\n", rep->libvirt.error);
	}
	if (rep->unchecked[0])
		fprintf(f, "not checked:   %s\n", rep->unchecked);
	/* A refusal's error only repeats the list above. */
	if (rep->error[0] && !(plan && plan->refusals.n && !strcmp(rep->result, "refused")))
		fprintf(f, "error:         %s\n", rep->error);
	if (rep->rolled_back[0])
		fprintf(f, "rolled back:   %s\n", rep->rolled_back);
	(void)vm;
}

/* --remote: each disk, and how it moves (in the plan and in the result). */
static void add_disks(json_object *o, const struct qu_report *rep, const struct qu_plan *plan)
{
	if (rep->remote[0] && plan->disks) {
		json_object *disks = json_object_new_array();
		for (size_t i = 0; i < plan->disks->n; i++) {
			json_object *d = json_object_new_object();
			json_object_object_add(d, "device", json_object_new_string(plan->disks->d[i].device));
			json_object_object_add(d, "file", json_object_new_string(plan->disks->d[i].file));
			json_object_object_add(d, "format", json_object_new_string(plan->disks->d[i].format));
			json_object_object_add(d, "size", json_object_new_int64((int64_t)plan->disks->d[i].size));
			json_object_object_add(d, "copied", json_object_new_boolean(!!(plan->copy_disks & (1u << i))));
			if (plan->copy_disks & (1u << i))
				json_object_object_add(d, "copy", json_object_new_string((plan->top_disks & (1u << i)) ? "top"
							: (plan->collapse_disks & (1u << i)) ? "collapsed" : "full"));
			if (plan->disks->d[i].backing && plan->disks->d[i].nchain > 0)
				json_object_object_add(d, "backing", json_object_new_string(plan->disks->d[i].chain[0].file));
			json_object_array_add(disks, d);
		}
		json_object_object_add(o, "disks", disks);
	}
}

char *qu_report_json(const struct qu_report *rep, const struct qu_vm *vm, const struct qu_plan *plan)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "result", json_object_new_string(rep->result));
	json_object_object_add(o, "strategy", json_object_new_string(rep->strategy));
	if (rep->remote[0])
		json_object_object_add(o, "remote", json_object_new_string(rep->remote));
	if (rep->remote[0] && !strcmp(rep->result, "upgraded"))
		json_object_object_add(o, "announced", json_object_new_boolean(rep->announced));
	if (rep->remote[0] && !strcmp(rep->result, "upgraded"))
		json_object_object_add(o, "tls", json_object_new_boolean(rep->tls));
	else if (rep->remote[0] && plan)
		json_object_object_add(o, "tls", json_object_new_boolean(!plan->no_tls));
	if (rep->remote[0] && !strcmp(rep->result, "upgraded") && plan && plan->copy_disks) {
		json_object_object_add(o, "disk_copied_bytes", json_object_new_int64((int64_t)rep->disk_copied_bytes));
		/* What kept the copy exact at the switch: mirrors made write-blocking before the pause
		 * (8.2+), or the guest stopped in pre-switchover while they completed. */
		json_object_object_add(o, "disk_cutover", json_object_new_string(plan->write_blocking ? "write-blocking"
													: "stopped"));
		if (plan->verify)
			json_object_object_add(o, "verified", json_object_new_boolean(rep->verified));
	}
	json_object_object_add(o, "old_pid", json_object_new_int(rep->old_pid));
	json_object_object_add(o, "new_pid", rep->new_pid ? json_object_new_int(rep->new_pid) : NULL);
	json_object_object_add(o, "old_version", json_object_new_string(rep->old_version));
	json_object_object_add(o, "new_version", json_object_new_string(rep->new_version));
	json_object_object_add(o, "machine", json_object_new_string(rep->machine));
	json_object_object_add(o, "downtime_ms", json_object_new_double(rep->downtime_ms));
	json_object_object_add(o, "pause_ms", json_object_new_double(rep->pause_ms));
	json_object_object_add(o, "total_ms", json_object_new_double(rep->total_ms));
	json_object_object_add(o, "commit_ms", json_object_new_double(rep->commit_ms));
	json_object_object_add(o, "ram_copied_bytes", json_object_new_int64((int64_t)rep->ram_copied_bytes));
	json_object_object_add(o, "ram_shared_bytes", json_object_new_int64((int64_t)rep->ram_shared_bytes));
	json_object_object_add(o, "transferred_bytes", json_object_new_int64((int64_t)rep->transferred_bytes));
	json_object_object_add(o, "extra_memory_bytes", json_object_new_int64(rep->extra_memory_bytes));
	json_object_object_add(o, "memory_wait_ms", json_object_new_double(rep->memory_wait_ms));
	if (plan && plan->refusals.n) {
		/* "refusal": every reason in one string, as before there was a list. */
		char *all = qu_refusals_join(&plan->refusals, "; ");
		json_object *list = json_object_new_array();
		json_object_object_add(o, "refusal", json_object_new_string(all ? all : plan->refusals.why[0]));
		free(all);
		for (unsigned i = 0; i < plan->refusals.n; i++)
			json_object_array_add(list, json_object_new_string(plan->refusals.why[i]));
		json_object_object_add(o, "refusals", list);
		if (plan->refusals.more)
			json_object_object_add(o, "refusals_not_listed", json_object_new_int((int)plan->refusals.more));
	}
	if (plan && !plan->refusals.n && plan->warning[0])
		json_object_object_add(o, "warning", json_object_new_string(plan->warning));
	if (plan && !plan->refusals.n && plan->pid_note[0]) {
		json_object_object_add(o, "pid_kept", json_object_new_boolean(qu_strategy_cpr_exec(plan->strategy)));
		json_object_object_add(o, "pid_note", json_object_new_string(plan->pid_note));
	}
	if (rep->tap_watch[0])
		json_object_object_add(o, "down_scripts", json_object_new_string(rep->tap_watch));
	if (rep->error[0])
		json_object_object_add(o, "error", json_object_new_string(rep->error));
	if (rep->unchecked[0])
		json_object_object_add(o, "unchecked", json_object_new_string(rep->unchecked));
	if (rep->rolled_back[0])
		json_object_object_add(o, "rolled_back", json_object_new_string(rep->rolled_back));
	if (plan && (!strcmp(rep->result, "planned") || !strcmp(rep->result, "upgraded")))
		add_disks(o, rep, plan);
	if (plan && !strcmp(rep->result, "planned")) {
		json_object *fds = json_object_new_array(), *argv = json_object_new_array();
		for (size_t i = 0; i < plan->nfds; i++) {
			json_object *d = json_object_new_object();
			json_object_object_add(d, "old_fd", json_object_new_int(plan->fds[i].old_fd));
			json_object_object_add(d, "new_fd", json_object_new_int(plan->fds[i].target));
			json_object_object_add(d, "kind", json_object_new_string(qu_fd_kind_name(plan->fds[i].kind)));
			json_object_object_add(d, "what", json_object_new_string(plan->fds[i].name));
			json_object_array_add(fds, d);
		}
		char **words = qu_argv_flatten(&plan->argv);
		for (char **a = words; a && *a; a++)
			json_object_array_add(argv, json_object_new_string(*a));
		qu_strv_free(words);
		json_object_object_add(o, "descriptors", fds);
		if (plan->ram_copy_bytes) {
			json_object_object_add(o, "memory_needed_bytes", json_object_new_int64(plan->memory_needed));
			json_object_object_add(o, "memory_room_bytes", json_object_new_int64(plan->memory_room));
		} else if (vm) {
			json_object_object_add(o, "memory_needed_bytes", json_object_new_int64(vm->anon_bytes));
		}
		json_object_object_add(o, "ram_to_copy_bytes", json_object_new_int64((int64_t)plan->ram_copy_bytes));
		json_object_object_add(o, "new_argv", argv);
	}
	if (rep->libvirt.is) {
		const struct qu_report_libvirt *l = &rep->libvirt;
		json_object *lv = json_object_new_object();
		json_object_object_add(lv, "domain", json_object_new_string(l->domain));
		json_object_object_add(lv, "status_file", json_object_new_string(l->status));
		json_object_object_add(lv, "daemon", l->daemon[0] ? json_object_new_string(l->daemon) : NULL);
		json_object_object_add(lv, "daemon_pid", l->daemon_pid ? json_object_new_int(l->daemon_pid) : NULL);
		json_object_object_add(lv, "daemon_new_pid", l->daemon_new_pid ? json_object_new_int(l->daemon_new_pid) : NULL);
		json_object_object_add(lv, "stopped", json_object_new_boolean(l->stopped));
		json_object_object_add(lv, "pid_rewritten", json_object_new_boolean(l->rewritten));
		json_object_object_add(lv, "restarted", json_object_new_boolean(l->restarted));
		json_object_object_add(lv, "action", json_object_new_string(l->action));
		json_object_object_add(lv, "error", l->error[0] ? json_object_new_string(l->error) : NULL);
		json_object_object_add(o, "libvirt", lv);
	}
	(void)vm;
	char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}
