#!/usr/bin/env bash
# Devices plugged in or out while the VM ran (libvirt's attach-device and detach-device).
# Migration carries device state, not devices: a new QEMU started from the old command line
# lacks a device added by device_add and has one the guest unplugged, and the new QEMU then
# fails to load the state ("Unknown savevm section"), late, after the guest was paused. Now: a
# device added at run time is refused before anything is touched, by name; a device the guest
# unplugged is left out of the new command line, as libvirt leaves it out of a migration's
# destination.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 9
peripherals() { vm_qmp "$VM_QMP" '{"execute":"qom-list","arguments":{"path":"/machine/peripheral"}}' |
	jq -r '.return[] | select(.type | startswith("child<")) | .name' | sort | tr '\n' ' '; }
# Waits until QEMU's devices are $1 (the guest acknowledges an unplug in its own time).
wait_peripherals() {
	local i now
	for ((i = 0; i < 300; i++)); do
		now=$(peripherals)
		[ "$now" = "$1" ] && return 0
		sleep 0.1
	done
	echo "# devices are '$now', not '$1'"
	return 1
}

vm_start hotplug -device pcie-root-port,id=rp0,chassis=1 -device pcie-root-port,id=rp1,chassis=2 \
	-device virtio-rng-pci,id=rng0,bus=rp0 || exit 1
vm_wait_ready || exit 1
old=$VM_PID
vm_qmp "$VM_QMP" '{"execute":"device_add","arguments":{"driver":"virtio-rng-pci","id":"hot0","bus":"rp1"}}' >/dev/null
wait_peripherals "hot0 rng0 rp0 rp1 "
tap_ok $? "a device is added at run time (device_add hot0)"
vm_upgrade
rc=$?
tap_diag "exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && grep -q "device 'hot0' was added while the VM ran (device_add).*unplug it (device_del)" "$VM_DIR/err" &&
	[ "$VM_PID" = "$old" ] && [ "$(vm_qmp "$VM_QMP" '{"execute":"query-status"}' | jq -r .return.status)" = running ]
tap_ok $? "refused before anything is touched, the device named with what to do; the VM runs on"

vm_qmp "$VM_QMP" '{"execute":"device_del","arguments":{"id":"hot0"}}' >/dev/null
vm_qmp "$VM_QMP" '{"execute":"device_del","arguments":{"id":"rng0"}}' >/dev/null
wait_peripherals "rp0 rp1 "
tap_ok $? "the guest lets both go (device_del hot0, and rng0 of the command line)"
vm_upgrade
rc=$?
tap_diag "exit $rc: $REPORT $(cat "$VM_DIR/err")"
[ "$rc" = 0 ] && [ "$(json_get "$REPORT" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
tap_ok $? "upgraded once the device added at run time is gone"
cmdline=$(tr '\0' '\n' <"/proc/$VM_PID/cmdline")
! grep -q 'id=rng0' <<<"$cmdline" && grep -q 'id=rp1' <<<"$cmdline"
tap_ok $? "the unplugged device is left out of the new command line, the others stay"
tap_is "$(peripherals)" "rp0 rp1 " "the new QEMU has the devices the old one had"
vm_upgrade
tap_diag "second upgrade: $REPORT"
tap_is "$(json_get "$REPORT" result)" upgraded "a second upgrade works too"
vm_memcheck_progress 60
tap_ok $? "the guest makes progress"
tap_is "$(vm_memcheck_errors)" 0 "the guest reports no corruption"
tap_done
