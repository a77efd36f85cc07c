#!/usr/bin/env bash
# RAM that cannot be handed over (plain -m) is copied once, with --allow-copy, into a shared
# memfd in the new QEMU under the same block name, so the next upgrade is zero-copy. Under
# TCG before QEMU 9.0 a live precopy loses guest writes (a QEMU bug fixed upstream in
# 03bfc2188f: see README, "Copying guest RAM"), so the copy is made with the guest stopped
# ("stop-and-copy"); the guest, rewriting most of its RAM, must find it intact.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 13
VM_RAM=anon VM_MEMCHECK_MIB=160 vm_start copy || exit 1
vm_wait_ready 120 || exit 1
err=$("$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "no flag: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "pass --allow-copy" <<<"$err"
tap_ok $? "without --allow-copy a copy is refused and the flag named"
plan=$("$QU_BIN" inspect --pid "$VM_PID" --allow-copy --json --quiet)
tap_is "$(json_get "$plan" strategy)" stop-and-copy "with --allow-copy under TCG (QEMU 7.2) the plan is a stop-and-copy"
[ "$(json_get "$plan" ram_to_copy_bytes)" = $((256 << 20)) ] &&
	jq -e '.descriptors[] | select(.kind == "ram" and (.what | test("new shared memfd")))' <<<"$plan" >/dev/null
tap_ok $? "the plan copies 256 MiB into a new shared memfd"

old=$VM_PID
report=$("$QU_BIN" --pid "$old" --allow-copy --json --quiet 2>"$VM_DIR/err")
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID" 2>/dev/null
tap_diag "copy: $report $(cat "$VM_DIR/err")"
[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = stop-and-copy ]
tap_ok $? "upgraded by copying"
[ "$(json_get "$report" ram_copied_bytes)" -gt $((100 << 20)) ]
tap_ok $? "the guest's RAM was copied ($(( $(json_get "$report" ram_copied_bytes) >> 20 )) MiB)"
tap_check "the old QEMU is gone" proc_gone_soon "$old"
tr '\0' ' ' <"/proc/$VM_PID/cmdline" | grep -q "memory-backend-file,id=pc.ram,size=268435456,share=on,mem-path=/proc/self/fd/"
tap_ok $? "the new QEMU's RAM is a shared backend named pc.ram"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] && [ "$(vm_runstate)" = running ]
tap_ok $? "the guest finds its memory intact and runs" ||
	tap_diag "serial: $(tail -n 4 "$VM_SERIAL" | tr '\n' '|')"

for round in 2 3; do
	old=$VM_PID
	report=$("$QU_BIN" --pid "$old" --json --quiet 2>"$VM_DIR/err")
	VM_PID=$(cat "$VM_DIR/qemu.pid")
	vm_track_pid "$VM_PID" 2>/dev/null
	tap_diag "round $round: $report $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = shared-ram-handover ] &&
		[ "$(json_get "$report" ram_copied_bytes)" -lt $((1 << 20)) ]
	tap_ok $? "round $round: zero-copy now (no --allow-copy needed, < 1 MiB copied)"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "round $round: the guest is clean"
done

# An explicit unshared backend is converted the same way, under its own name.
VM_RAM=anon VM_MEMCHECK_MIB=160 vm_start copy-explicit -object memory-backend-ram,id=pc.ram,size=256M -machine memory-backend=pc.ram || exit 1
vm_wait_ready 120 || exit 1
report=$("$QU_BIN" --pid "$VM_PID" --allow-copy --json --quiet 2>"$VM_DIR/err")
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID" 2>/dev/null
tap_diag "explicit backend: $report $(cat "$VM_DIR/err")"
[ "$(json_get "$report" result)" = upgraded ] &&
	tr '\0' ' ' <"/proc/$VM_PID/cmdline" | grep -q "memory-backend-file,id=pc.ram,size=256M,share=on,mem-path=/proc/self/fd/" &&
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "an explicit memory-backend-ram is copied into a shared file backend of the same name, guest intact"
tap_done
