/* The VM's devices as COLO sees them: the NICs whose output colo-compare would hold (one
 * virtio-net-pci on a tap without vhost or a vnet header: what was measured), and the devices
 * whose state lives outside what QEMU migrates, which no checkpoint can copy. */
#include "qemu-integration/option.h"
#include "qemu-integration/qmp.h"
#include "remote/standby/plan.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define refuse(p, ...) qu_refusals_add(&(p)->refusals, __VA_ARGS__)

/* Device types whose state is not (all) in QEMU's migration stream, by name prefix. */
static const struct {
	const char *prefix, *why;
} unprotectable[] = {
	{ "vfio", "a passed-through host device: its state is in the hardware, which no checkpoint copies" },
	{ "vhost-user", "its backend is another process: COLO does not checkpoint it" },
	{ "vhost-vsock", "in-kernel vsock: its state is in the host kernel, which no checkpoint copies" },
	{ "vhost-scsi", "in-kernel SCSI target: its requests bypass the replicated disk" },
	{ "vhost-vdpa", "a vDPA device: its state is in the hardware" },
	{ "ivshmem", "memory shared with another process is not checkpointed" },
	{ "usb-host", "a host USB device cannot exist on both hosts" },
	{ "usb-redir", "a redirected USB device cannot exist on both hosts" },
	{ "virtio-pmem", "persistent memory is not replicated" },
	{ "nvdimm", "persistent memory is not replicated" },
	{ "pci-testdev", "not a device to protect" },
};

static const char *unprotectable_why(const char *type)
{
	for (size_t i = 0; i < sizeof(unprotectable) / sizeof(unprotectable[0]); i++)
		if (!strncmp(type, unprotectable[i].prefix, strlen(unprotectable[i].prefix)))
			return unprotectable[i].why;
	return NULL;
}

/* See plan.h. */
int qu_standby_qom_string(struct qu_qmp *q, const char *path, const char *prop, uint64_t deadline_us, char *buf,
		      size_t len)
{
	json_object *args = json_object_new_object(), *ret = NULL;
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string(prop));
	int r = qu_qmp_execute(q, "qom-get", args, -1, deadline_us, &ret);
	if (r < 0)
		return r;
	int ok = json_object_is_type(ret, json_type_string);
	qu_copy_printable(buf, len, ok ? json_object_get_string(ret) : "");
	json_object_put(ret);
	return ok ? 0 : -EPROTO;
}

static const struct qu_tap *tap_named(const struct qu_vm *vm, const char *id)
{
	for (size_t i = 0; i < vm->ntaps; i++)
		if (!strcmp(vm->taps[i].id, id))
			return &vm->taps[i];
	return NULL;
}

/* Whether the -netdev option says vnet_hdr=off: the filters then see plain frames (with a
 * vnet header they need vnet_hdr_support on every filter, which was not measured). */
static int vnet_hdr_off(const struct qu_vm *vm, const struct qu_tap *t)
{
	if (t->vnet_hdr >= 0) /* the descriptor says (a VM a tool re-created has fd= only) */
		return !t->vnet_hdr;
	if (t->arg < 0 || (size_t)t->arg >= vm->argv.n)
		return 0;
	json_object *o = qu_option_parse("netdev", vm->argv.a[t->arg].val);
	const char *v = qu_option_get(o, "vnet_hdr");
	int off = v && (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "n"));
	json_object_put(o);
	return off;
}

static void judge_nic(const struct qu_vm *vm, struct qu_standby_plan *p, const char *name, const char *type,
		      const char *netdev)
{
	if (strcmp(type, "virtio-net-pci"))
		refuse(p, "NIC %s is a %s: only virtio-net-pci was measured under COLO (docs/standby-research.md); "
			  "give the VM a virtio-net-pci NIC", name, type);
	const struct qu_tap *t = tap_named(vm, netdev);
	if (!t) {
		refuse(p, "NIC %s's backend '%s' is not a -netdev tap on the command line: COLO's filters were measured "
			  "on a tap only; start the VM with -netdev tap,id=%s,...,vhost=off,vnet_hdr=off", name, netdev, netdev);
	} else {
		if (t->vhost)
			refuse(p, "tap '%s' (NIC %s) uses vhost-net: the host kernel moves its packets past COLO's "
				  "filters; start the VM with vhost=off", netdev, name);
		if (!vnet_hdr_off(vm, t))
			refuse(p, "tap '%s' (NIC %s) is not vnet_hdr=off: COLO's filters were measured on frames without a "
				  "vnet header only; start the VM with vnet_hdr=off on that -netdev", netdev, name);
		if (t->nfds > 1)
			refuse(p, "tap '%s' (NIC %s) has %d queues: COLO was measured on a single-queue tap", netdev, name,
			       t->nfds);
		if (!t->ifname[0])
			refuse(p, "tap '%s' (NIC %s): its interface name was not found (no tap descriptor in QEMU); the "
				  "secondary needs a tap of the same name", netdev, name);
	}
	if (p->nnics == QU_STANDBY_MAX_NICS)
		return;
	struct qu_standby_nic *n = &p->nics[p->nnics++];
	snprintf(n->device, sizeof(n->device), "%s", name);
	snprintf(n->type, sizeof(n->type), "%s", type);
	snprintf(n->netdev, sizeof(n->netdev), "%s", netdev);
	snprintf(n->ifname, sizeof(n->ifname), "%s", t ? t->ifname : "");
}

/* The devices of one QOM container (/machine/peripheral: those with an id; -anon: without). */
static int scan(const struct qu_vm *vm, struct qu_qmp *q, const char *container, uint64_t deadline_us,
		struct qu_standby_plan *p, size_t *nics)
{
	json_object *args = json_object_new_object(), *list = NULL;
	json_object_object_add(args, "path", json_object_new_string(container));
	int r = qu_qmp_execute(q, "qom-list", args, -1, deadline_us, &list);
	if (r < 0)
		return r;
	if (!json_object_is_type(list, json_type_array) || json_object_array_length(list) > QU_MAX_PERIPHERALS) {
		refuse(p, "QEMU's list of devices (qom-list %s) is not a list of at most %d: cannot tell what the VM has",
		       container, QU_MAX_PERIPHERALS);
		json_object_put(list);
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *t = qu_json_member_str(e, "type");
		size_t tl = strlen(t);
		if (strncmp(t, "child<", 6) || tl < 8 || t[tl - 1] != '>')
			continue; /* "type" and other properties of the container */
		char name[QU_MAX_DEVICE_ID], type[64], path[256], netdev[64];
		qu_copy_printable(name, sizeof(name), qu_json_member_str(e, "name"));
		snprintf(type, sizeof(type), "%.*s", (int)(tl - 7), t + 6);
		const char *why = unprotectable_why(type);
		if (why)
			refuse(p, "device %s (%s) cannot be protected: %s; remove it (device_del) to protect the VM", name,
			       type, why);
		snprintf(path, sizeof(path), "%s/%s", container, name);
		if ((r = qu_standby_qom_string(q, path, "netdev", deadline_us, netdev, sizeof(netdev))) < 0) {
			if (r != -EREMOTEIO && r != -EPROTO)
				break; /* the monitor itself failed */
			if (r == -EPROTO)
				refuse(p, "device %s (%s): QEMU's answer for its netdev is not a string: cannot tell "
					  "whether it is a NIC", name, type);
			qu_err_clear(); /* -EREMOTEIO: no netdev property, not a NIC */
			r = 0;
			continue;
		}
		if (!netdev[0])
			continue; /* a NIC with no backend sends nothing */
		(*nics)++;
		judge_nic(vm, p, name, type, netdev);
	}
	json_object_put(list);
	return r;
}

int qu_standby_devices(const struct qu_vm *vm, struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p)
{
	size_t nics = 0;
	int r;
	if ((r = scan(vm, q, "/machine/peripheral", deadline_us, p, &nics)) < 0 ||
	    (r = scan(vm, q, "/machine/peripheral-anon", deadline_us, p, &nics)) < 0)
		return r;
	if (nics > 1)
		refuse(p, "the VM has %zu NICs: COLO was measured with one (docs/standby-research.md); protect a VM "
			  "with one NIC", nics);
	return 0;
}
