#!/usr/bin/env bash
# Firmware and ROM sizes: QEMU migrates its BIOS and option ROMs as RAM blocks, and a new
# QEMU whose firmware file changed size rejects the stream. A package upgrade that replaced
# the VM's BIOS file with a bigger one (renamed over, as dpkg does) makes the upgrade stop
# before the old QEMU is paused, with the block and both sizes named; the VM runs on,
# untouched. With a file of the same size it goes through.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 5
bios_src=/usr/share/seabios/bios-256k.bin
[ -r "$bios_src" ] || { echo "1..0 # SKIP no SeaBIOS image at $bios_src"; exit 0; }
fw=$(mktemp -d "${TMPDIR:-/tmp}/qu-firmware.XXXXXX")
vm_defer "rm -rf $fw"
cp "$bios_src" "$fw/bios.bin"

vm_start firmware -bios "$fw/bios.bin" || exit 1
vm_wait_ready 120 || exit 1
old=$VM_PID
# The "new release": twice the size (zeros below the image, which stays at the top of 4 GiB).
{ head -c "$(stat -c %s "$bios_src")" /dev/zero; cat "$bios_src"; } >"$fw/bios.bin.new" && mv "$fw/bios.bin.new" "$fw/bios.bin"
err=$("$QU_BIN" --pid "$old" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "bigger BIOS: exit $rc: $err"
[ "$rc" = 1 ] && grep -q "RAM block 'pc.bios' is 256 KiB in the running VM but 512 KiB in the new QEMU" <<<"$err" &&
	grep -q "different sizes" <<<"$err"
tap_ok $? "a BIOS of another size: stopped with the block and both sizes named, rolled back"
[ "$(qemu_pids_for "$VM_DIR")" = "$old" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the old QEMU alone runs the guest"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress, clean"

cp "$bios_src" "$fw/bios.bin.new" && mv "$fw/bios.bin.new" "$fw/bios.bin"
vm_upgrade
report=$REPORT
tap_diag "same size: $report $(cat "$VM_DIR/err")"
[ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
tap_ok $? "a BIOS of the same size: upgraded"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest is clean on the new QEMU"
tap_done
