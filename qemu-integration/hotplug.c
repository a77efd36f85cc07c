#include "qemu-integration/hotplug.h"
#include "qemu-integration/option.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define refuse(p, ...) qu_refusals_add(&(p)->refusals, __VA_ARGS__)

/* The id of a -device option ("" for none), copied into id. */
static void device_id(const char *val, char *id, size_t len)
{
	json_object *o = qu_option_parse("device", val);
	const char *v = o ? qu_option_get(o, "id") : NULL;
	snprintf(id, len, "%s", v ? v : "");
	json_object_put(o);
}

static int has_peripheral(const struct qu_vm *vm, const char *id)
{
	for (size_t i = 0; i < vm->nperipherals; i++)
		if (!strcmp(vm->peripherals[i], id))
			return 1;
	return 0;
}

static int on_command_line(const struct qu_vm *vm, const char *id)
{
	char seen[QU_MAX_DEVICE_ID + 1];
	for (size_t i = 0; i < vm->argv.n; i++) {
		if (!vm->argv.a[i].opt || strcmp(vm->argv.a[i].opt, "device") || !vm->argv.a[i].val)
			continue;
		device_id(vm->argv.a[i].val, seen, sizeof(seen));
		if (!strcmp(seen, id))
			return 1;
	}
	return 0;
}

int qu_hotplug_rewrite(const struct qu_vm *vm, struct qu_rewrite *p)
{
	char id[QU_MAX_DEVICE_ID + 1];
	if (!vm->peripherals_known)
		return 0;
	for (size_t i = 0; i < vm->nperipherals; i++)
		if (!on_command_line(vm, vm->peripherals[i]))
			refuse(p, "device '%s' was added while the VM ran (device_add): the new QEMU would start "
			       "without it and could not take the VM's state; unplug it (device_del) before the "
			       "upgrade and plug it in again after, or restart the VM with it on its command line",
			       vm->peripherals[i]);
	for (size_t i = 0; i < p->argv.n;) {
		const char *opt = p->argv.a[i].opt, *val = p->argv.a[i].val;
		if (opt && val && !strcmp(opt, "device")) {
			device_id(val, id, sizeof(id));
			if (id[0] && !has_peripheral(vm, id)) {
				qu_info("device '%s' was unplugged while the VM ran: left out of the new command line", id);
				qu_argv_remove(&p->argv, i);
				continue;
			}
		}
		i++;
	}
	return 0;
}
