#!/usr/bin/env bash
# make demo: start a small VM (QEMU from the system, TCG, a guest that checks its own
# memory), upgrade it live to the same binary, print the report, show the guest is fine.
set -u
qu_bin=${1:?usage: demo.sh PATH_TO_QEMU_UPGRADE}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/vm.sh"

echo "== starting a 512 MiB VM (memfd RAM, share=on) and booting its memory-checking guest"
VM_MEM=512M vm_start demo || exit 1
vm_wait_ready || exit 1
vm_memcheck_progress 60 || exit 1
echo "   QEMU PID $VM_PID, guest says: $(vm_memcheck_status)"
echo "== qemu-upgrade --pid $VM_PID --new-binary $QEMU"
"$qu_bin" --pid "$VM_PID" --new-binary "$QEMU"
rc=$?
[ "$rc" = 0 ] || { echo "demo: qemu-upgrade failed (exit $rc)"; exit "$rc"; }
new=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$new"
VM_PID=$new
echo "== after the upgrade"
vm_memcheck_progress 60 || exit 1
echo "   QEMU PID $VM_PID, run state $(vm_runstate), guest says: $(vm_memcheck_status)"
[ "$(vm_memcheck_errors)" = 0 ] || { echo "demo: the guest reports memory corruption"; exit 1; }
echo "== demo done: the VM is stopped and its files removed"
