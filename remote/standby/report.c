#include "remote/standby/report.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MIB(b) ((unsigned long long)(b) >> 20)

void qu_standby_plan_print(const struct qu_standby_plan *p, FILE *f)
{
	unsigned n = qu_refusals_count(&p->refusals);
	fprintf(f, "standby:       QEMU PID %d, %d.%d.%d, %s, %s\n", (int)p->pid, p->ver[0], p->ver[1], p->ver[2],
		p->machine, p->kvm ? "KVM (COLO was measured under TCG only: docs/standby-research.md)" : "TCG");
	if (p->renew_first)
		fprintf(f, "first:         this QEMU took over as a COLO secondary: the guest moves into a new QEMU "
			   "process here (--renew: an in-place upgrade to %s, its RAM copied once), which is protected\n",
			p->exe);
	fprintf(f, "secondary:     on %s, the same binary %s", p->host, p->exe);
	if (p->remote_probed)
		fprintf(f, " (%d.%d.%d there)", p->remote_ver[0], p->remote_ver[1], p->remote_ver[2]);
	if (p->ram_explicit)
		fprintf(f, ", waiting for the migration; its RAM private (memory-backend-ram id=%s, %llu MiB)", p->ram_id,
			MIB(p->ram_bytes));
	else
		fprintf(f, ", waiting for the migration; its RAM plain -m %llu MiB, as here", MIB(p->ram_bytes));
	fprintf(f, ": that host needs about %llu MiB (the secondary keeps a second copy)", MIB(2 * p->ram_bytes));
	if (p->remote_mem_available >= 0)
		fprintf(f, " (%lld MiB available)", p->remote_mem_available >> 20);
	fprintf(f, "\ncheckpoints:   every %u ms (x-checkpoint-delay), capabilities x-colo, return-path, events on both "
		   "sides\n", p->interval_ms);
	for (size_t i = 0; i < p->nnics; i++)
		fprintf(f, "nic %s:  %s on tap %s (netdev %s): filter-mirror, 2 filter-redirector, colo-compare here; 2 "
			   "filter-redirector and filter-rewriter there; only while protected\n",
			p->nics[i].device, p->nics[i].type, p->nics[i].ifname, p->nics[i].netdev);
	if (!p->nnics)
		fprintf(f, "nics:          none\n");
	for (size_t i = 0; i < p->ndisks; i++)
		fprintf(f, "disk %s: quorum over %s (%s, %llu MiB%s): a copy there, replication child (NBD to it) added "
			   "to the quorum\n",
			p->disks[i].device, p->disks[i].file, p->disks[i].format, MIB(p->disks[i].size),
			p->disks[i].taken_over ? ", through the replication node of a takeover, kept as its first child" : "");
	if (!p->ndisks)
		fprintf(f, "disks:         none\n");
	fprintf(f, "failover:      a supervisor here heartbeats to the agent there; this QEMU dead: the secondary "
		   "takes over (x-colo-lost-heartbeat) and announces; the link lost: this QEMU is killed before the "
		   "secondary's longer timeout\n");
	if (!n) {
		fprintf(f, "result:        planned\n");
		return;
	}
	fprintf(f, "refused:       %u blocker%s, each to resolve before the VM can be protected:\n", n, n == 1 ? "" : "s");
	for (unsigned i = 0; i < p->refusals.n; i++)
		fprintf(f, "  - %s\n", p->refusals.why[i]);
	if (p->refusals.more)
		fprintf(f, "  - (%u more)\n", p->refusals.more);
}

static json_object *str(const char *s)
{
	return json_object_new_string(s);
}

char *qu_standby_plan_json(const struct qu_standby_plan *p)
{
	json_object *o = json_object_new_object(), *a;
	char ver[48];
	json_object_object_add(o, "result", str(qu_refusals_count(&p->refusals) ? "refused" : "planned"));
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "renew_first", json_object_new_boolean(p->renew_first));
	json_object_object_add(o, "host", str(p->host));
	snprintf(ver, sizeof(ver), "%d.%d.%d", p->ver[0], p->ver[1], p->ver[2]);
	json_object_object_add(o, "qemu_version", str(ver));
	if (p->remote_probed) {
		snprintf(ver, sizeof(ver), "%d.%d.%d", p->remote_ver[0], p->remote_ver[1], p->remote_ver[2]);
		json_object_object_add(o, "remote_qemu_version", str(ver));
	}
	json_object_object_add(o, "binary", str(p->exe));
	json_object_object_add(o, "machine", str(p->machine));
	json_object_object_add(o, "accelerator", str(p->kvm ? "kvm" : "tcg"));
	json_object_object_add(o, "interval_ms", json_object_new_int64(p->interval_ms));
	json_object_object_add(o, "ram_id", str(p->ram_id));
	json_object_object_add(o, "ram_bytes", json_object_new_uint64(p->ram_bytes));
	json_object_object_add(o, "secondary_memory_bytes", json_object_new_uint64(2 * p->ram_bytes));
	if (p->remote_mem_available >= 0)
		json_object_object_add(o, "remote_mem_available_bytes", json_object_new_int64(p->remote_mem_available));
	a = json_object_new_array();
	for (size_t i = 0; i < p->nnics; i++) {
		json_object *n = json_object_new_object();
		json_object_object_add(n, "device", str(p->nics[i].device));
		json_object_object_add(n, "type", str(p->nics[i].type));
		json_object_object_add(n, "netdev", str(p->nics[i].netdev));
		json_object_object_add(n, "ifname", str(p->nics[i].ifname));
		json_object_array_add(a, n);
	}
	json_object_object_add(o, "nics", a);
	a = json_object_new_array();
	for (size_t i = 0; i < p->ndisks; i++) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "device", str(p->disks[i].device));
		json_object_object_add(d, "file", str(p->disks[i].file));
		json_object_object_add(d, "format", str(p->disks[i].format));
		json_object_object_add(d, "size", json_object_new_uint64(p->disks[i].size));
		json_object_object_add(d, "taken_over", json_object_new_boolean(p->disks[i].taken_over));
		json_object_array_add(a, d);
	}
	json_object_object_add(o, "disks", a);
	a = json_object_new_array();
	for (unsigned i = 0; i < p->refusals.n; i++)
		json_object_array_add(a, str(p->refusals.why[i]));
	json_object_object_add(o, "refusals", a);
	if (p->refusals.more)
		json_object_object_add(o, "refusals_not_listed", json_object_new_int(p->refusals.more));
	char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}
