#!/usr/bin/env bash
# Ten upgrades in a row of the same VM: each new QEMU's command line is the rewriter's own
# output, so this proves the rewriter understands it (mem-path=/proc/self/fd/N, fd= sockets).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

rounds=10
tap_plan $((rounds * 5 + 1))
vm_start ten || exit 1
vm_wait_ready || exit 1
vm_memcheck_progress 60
tap_ok $? "guest memory checker runs before the first upgrade"
for i in $(seq "$rounds"); do
	old=$VM_PID
	report=$("$QU_BIN" --pid "$old" --json --quiet)
	rc=$?
	new=$(json_get "$report" new_pid)
	[[ $new =~ ^[0-9]+$ ]] && vm_track_pid "$new" && VM_PID=$new
	tap_diag "round $i: downtime $(json_get "$report" downtime_ms) ms, total $(json_get "$report" total_ms) ms"
	[ "$rc" = 0 ] && [ "$(json_get "$report" result)" = upgraded ] &&
		[ "$(json_get "$report" ram_copied_bytes)" -lt 1048576 ]
	tap_ok $? "round $i: upgraded without copying guest RAM"
	tap_check "round $i: old QEMU $old is gone" proc_gone_soon "$old"
	tap_is "$(vm_runstate "$VM_QMP")" running "round $i: QMP answers at the same path, running"
	vm_memcheck_progress 60
	tap_ok $? "round $i: guest makes progress"
	tap_is "$(vm_memcheck_errors)" 0 "round $i: guest reports no corruption"
done
tap_done
