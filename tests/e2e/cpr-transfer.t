#!/usr/bin/env bash
# cpr-transfer (QEMU 10.0 on both sides): a VM started with memfd RAM and
# -machine aux-ram-share=on is upgraded with nothing copied: the old QEMU passes its RAM
# descriptors to the new one itself. The guest keeps the very same memfd (same inode), and
# checks its memory. A failure after the old QEMU has started its cpr migration rolls back:
# the old QEMU runs on, its migration mode put back. Without aux-ram-share the plan says how
# to get cpr-transfer.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 12
vm_qemu10
q10=$Q10

# The inode of the memfd behind guest RAM, as the process maps it.
ram_inode() { awk '/memfd:memory-backend-memfd/ { print $5; exit }' "/proc/$1/maps"; }

QEMU=$q10 VM_MEMCHECK_MIB=160 vm_start cpr -machine aux-ram-share=on || exit 1
vm_wait_ready 120 || exit 1
plan=$("$QU_BIN" inspect --pid "$VM_PID" --new-binary "$q10" --json --quiet)
tap_is "$(json_get "$plan" strategy)" cpr-transfer "a 10.0 memfd VM with aux-ram-share=on is planned as cpr-transfer (no --allow-copy)"
inode=$(ram_inode "$VM_PID")
for round in 1 2; do
	old=$VM_PID
	vm_upgrade --new-binary "$q10"
	report=$REPORT
	tap_diag "round $round: $report $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = cpr-transfer ] &&
		[ "$(json_get "$report" ram_copied_bytes)" = 0 ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "round $round: upgraded by cpr-transfer, no RAM copied (pause $(json_get "$report" pause_ms) ms)"
	tap_is "$(ram_inode "$VM_PID")" "$inode" "round $round: the new QEMU maps the very same memfd (inode $inode)"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
	tap_ok $? "round $round: the guest finds its memory intact and runs"
done

# Fault point 3 comes after the old QEMU's cpr migrate and the new QEMU's migrate-incoming.
old=$VM_PID
err=$(QEMU_UPGRADE_FAULT=3 "$QU_BIN" --pid "$old" --new-binary "$q10" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "fault: exit $rc: $err"
[ "$rc" = 1 ] && [ "$(qemu_pids_for "$VM_DIR")" = "$old" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "a failure mid-way rolls back: the old QEMU alone runs the guest"
mode=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | jq -r .return.mode)
tap_is "$mode" normal "its migration mode is back to normal"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest is clean after the rollback"
vm_upgrade --new-binary "$q10"
report=$REPORT
[ "$(json_get "$report" strategy)" = cpr-transfer ] && [ "$(json_get "$report" result)" = upgraded ] &&
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "and the next cpr-transfer succeeds"

QEMU=$q10 VM_MEMCHECK_MIB=32 vm_start cpr-noaux || exit 1
vm_wait_ready 120 || exit 1
err=$("$QU_BIN" --pid "$VM_PID" --new-binary "$q10" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "no aux-ram-share: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "aux-ram-share=on would use cpr-transfer" <<<"$err"
tap_ok $? "without aux-ram-share the refusal says how to get cpr-transfer"
tap_done
