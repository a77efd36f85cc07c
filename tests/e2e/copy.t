#!/usr/bin/env bash
# A VM whose RAM cannot be handed over (plain -m: anonymous memory) is upgraded by copying
# its RAM once with QEMU's precopy over the same socketpair, with everything else carried as
# for the zero-copy upgrade; the guest keeps most of its RAM in use and changing throughout.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 11
VM_RAM=anon VM_MEMCHECK_MIB=160 vm_start copy || exit 1
vm_wait_ready 120 || exit 1
plan=$("$QU_BIN" inspect --pid "$VM_PID" --json --quiet)
tap_is "$(json_get "$plan" strategy)" precopy "inspect plans a copy for anonymous RAM"
[ "$(json_get "$plan" ram_to_copy_bytes)" = $((256 << 20)) ]
tap_ok $? "the plan says how much RAM it copies"
for round in 1 2; do
	old=$VM_PID
	report=$("$QU_BIN" --pid "$old" --json --quiet 2>"$VM_DIR/err")
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID" 2>/dev/null
	tap_diag "round $round: $report $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = precopy ]
	tap_ok $? "round $round: upgraded by copying"
	[ "$(json_get "$report" ram_copied_bytes)" -gt $((160 << 20)) ]
	tap_ok $? "round $round: the guest's RAM in use was copied ($(( $(json_get "$report" ram_copied_bytes) >> 20 )) MiB)"
	tap_check "round $round: the old QEMU is gone" proc_gone "$old"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
	tap_ok $? "round $round: the guest is clean and running"
done
VM_RAM=anon vm_start copy-explicit -object memory-backend-ram,id=pc.ram,size=256M -machine memory-backend=pc.ram || exit 1
err=$("$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "explicit backend: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "copying an explicit memory backend is not safe yet" <<<"$err"
tap_ok $? "an explicit unshared backend is refused (precopy into it corrupted guests)"
tap_done
