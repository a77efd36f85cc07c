#!/usr/bin/env bash
# The copy path for RAM that cannot be handed over (plain -m). A TCG guest is refused: QEMU's
# precopy corrupted the memory-checking guest in our runs, through this tool and with plain
# QEMU migration alike (see README, "Copying guest RAM"). Without --allow-copy a KVM guest
# would be refused too, with the reason. The copy machinery itself (plan, precopy over the
# socketpair, report) is exercised with QEMU_UPGRADE_ALLOW_TCG_COPY, without asserting the
# guest's memory afterwards.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 8
VM_RAM=anon VM_MEMCHECK_MIB=160 vm_start copy || exit 1
vm_wait_ready 120 || exit 1
for flags in "" "--allow-copy"; do
	err=$("$QU_BIN" --pid "$VM_PID" --quiet $flags 2>&1 >/dev/null)
	rc=$?
	tap_diag "${flags:-default}: exit $rc: $err"
	[ "$rc" = 3 ] && grep -q "runs under TCG, where QEMU's precopy corrupted guest memory" <<<"$err"
	tap_ok $? "a TCG guest with plain -m RAM is refused (${flags:-no flag}), with the reason"
done
err=$(QEMU_UPGRADE_ALLOW_TCG_COPY=1 "$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
rc=$?
[ "$rc" = 3 ] && grep -q "pass --allow-copy" <<<"$err"
tap_ok $? "without --allow-copy a copy is refused and the flag named"
tap_is "$(vm_runstate)" running "the refused VM runs on, untouched"

export QEMU_UPGRADE_ALLOW_TCG_COPY=1
plan=$("$QU_BIN" inspect --pid "$VM_PID" --allow-copy --json --quiet)
tap_is "$(json_get "$plan" strategy)" precopy "with --allow-copy, inspect plans a precopy"
[ "$(json_get "$plan" ram_to_copy_bytes)" = $((256 << 20)) ]
tap_ok $? "the plan says how much RAM it copies"
old=$VM_PID
report=$("$QU_BIN" --pid "$old" --allow-copy --json --quiet 2>"$VM_DIR/err")
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID" 2>/dev/null
tap_diag "$report $(cat "$VM_DIR/err")"
[ "$(json_get "$report" result)" = upgraded ] && [ "$(json_get "$report" strategy)" = precopy ] &&
	[ "$(json_get "$report" ram_copied_bytes)" -gt $((100 << 20)) ]
tap_ok $? "the copy machinery moves the VM, copying its RAM ($(( $(json_get "$report" ram_copied_bytes) >> 20 )) MiB)"
tap_check "the old QEMU is gone" proc_gone "$old"
tap_done
