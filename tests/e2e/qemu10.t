#!/usr/bin/env bash
# Across versions: a guest on QEMU 7.2 (bookworm) moves to 10.0 (bookworm-backports,
# unpacked beside it) and then 10.0 -> 10.0, zero-copy each time. A VM started on 10.0 with
# memfd RAM is refused: since 8.1 QEMU sends memfd RAM even with x-ignore-shared.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 11
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

QEMU=$q10 vm_start q10-memfd || exit 1
err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$q10" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "$err"
[ "$rc" = 3 ] && grep -q "sends memfd guest RAM" <<<"$err"
tap_ok $? "a 10.0 VM with memfd RAM is refused, with the reason"
tap_done
