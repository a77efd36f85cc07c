/* Devices plugged in or out while the VM ran. The new QEMU starts from the old command line,
 * and migration carries the state of devices, not the devices: the new QEMU must have exactly
 * the devices the old one has now (QEMU: "make sure that your current VM setup matches your
 * saved VM setup, including any hotplugged devices"). */
#ifndef QU_HOTPLUG_H
#define QU_HOTPLUG_H

#include "qemu-integration/rewrite.h"

/* A -device whose id QEMU no longer has (the guest unplugged it) leaves the new command line,
 * as libvirt leaves it out of a migration's destination; a device with an id that no -device
 * names (device_add at run time) is refused with what to do: its properties are not known here
 * to create it again. Devices without an id cannot be told apart and are not judged; nothing
 * is judged when QEMU's list of devices is unknown (vm->peripherals_known). */
int qu_hotplug_rewrite(const struct qu_vm *vm, struct qu_rewrite *p);

#endif
