#!/usr/bin/env bash
# Across versions: a guest on QEMU 7.2 (bookworm) moves to 10.0 (bookworm-backports,
# unpacked beside it) and then 10.0 -> 10.0, zero-copy each time. A VM started on 10.0 with
# memfd RAM is refused: since 8.1 QEMU sends memfd RAM even with x-ignore-shared.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 17
vm_qemu10
q10=$Q10

vm_start q10 || exit 1
vm_wait_ready || exit 1
for hop in "7.2 -> 10.0" "10.0 -> 10.0"; do
	report=$("$QU_BIN" --pid "$VM_PID" --new-binary "$q10" --json --quiet)
	new=$(json_get "$report" new_pid)
	[[ $new =~ ^[0-9]+$ ]] && vm_track_pid "$new" && VM_PID=$new
	tap_diag "$hop: $report"
	tap_is "$(json_get "$report" result)" upgraded "$hop: upgraded"
	[ "$(json_get "$report" ram_copied_bytes)" -lt 1048576 ]
	tap_ok $? "$hop: no guest RAM copied"
	tap_is "$(readlink "/proc/$VM_PID/exe")" "$q10" "$hop: the VM runs on QEMU 10.0"
	vm_memcheck_progress 60
	tap_ok $? "$hop: the guest makes progress"
	tap_is "$(vm_memcheck_errors)" 0 "$hop: the guest reports no corruption"
done

# A 10.0 VM with memfd RAM: 10.0 sends memfd RAM even with x-ignore-shared, so it is copied
# once (with --allow-copy; live, since the TCG dirty-tracking bug is fixed in 9.0) into a
# shared file backend, and handed over from then on.
QEMU=$q10 VM_MEMCHECK_MIB=160 vm_start q10-memfd || exit 1
vm_wait_ready || exit 1
err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$q10" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "$err"
[ "$rc" = 3 ] && grep -q "sends memfd guest RAM" <<<"$err" && grep -q -- "--allow-copy" <<<"$err"
tap_ok $? "a 10.0 VM with memfd RAM needs --allow-copy, and says why"
for flags in --allow-copy ""; do
	old=$VM_PID
	report=$("$QU_BIN" --pid "$old" --new-binary "$q10" $flags --json --quiet 2>"$VM_DIR/err")
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID" 2>/dev/null
	tap_diag "10.0 memfd ${flags:-again}: $report $(cat "$VM_DIR/err")"
	want=precopy
	[ -z "$flags" ] && want=shared-ram-handover
	[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = "$want" ]
	tap_ok $? "10.0 memfd VM ${flags:-again}: upgraded by $want"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "10.0 memfd VM ${flags:-again}: the guest is intact" ||
		tap_diag "serial: $(tail -n 3 "$VM_SERIAL" | tr '\n' '|')"
done
# -no-acpi (libvirt 9.0 writes it for a domain without <acpi/>) is gone from QEMU 9.0 on: the
# new QEMU gets the same machine property as -machine acpi=off, which every version takes.
VM_RAM=file vm_start q10-noacpi -no-acpi || exit 1
vm_wait_ready || exit 1
vm_upgrade --new-binary "$q10"
tap_diag "-no-acpi: $REPORT $(cat "$VM_DIR/err")"
[ "$(json_get "$REPORT" result)" = upgraded ] && tr '\0' '\n' <"/proc/$VM_PID/cmdline" | grep -qx acpi=off &&
	! tr '\0' '\n' <"/proc/$VM_PID/cmdline" | grep -qx -- -no-acpi
tap_ok $? "a 7.2 VM started with -no-acpi upgraded to 10.0 with -machine acpi=off"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the -no-acpi guest is intact on 10.0"
tap_done
