#!/usr/bin/env bash
# Controlling a copy: with --json, progress events arrive on stderr while guest RAM is sent;
# a copy that cannot converge (the guest rewrites 600 MiB, the cap is 300 MiB/s and 100 ms)
# stops at --timeout with the numbers and what to change; Ctrl-C in the middle of a copy
# rolls back. Each time the old QEMU keeps the guest, clean, and nothing is left behind.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 8
VM_RAM=anon VM_MEM=1G VM_MEMCHECK_MIB=600 vm_start copy-control || exit 1
vm_wait_ready 120 || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state
# A TCG guest's copy is refused by default (README, "Copying guest RAM"); these copies never
# finish (or are cancelled), so the guest stays on the old QEMU and its memory is checked.
export QEMU_UPGRADE_ALLOW_TCG_COPY=1

kept() {
	[ "$(qemu_pids_for "$VM_DIR")" = "$VM_PID" ] && [ "$(vm_runstate)" = running ] &&
		vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ] &&
		[ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ]
}

report=$("$QU_BIN" --pid "$VM_PID" --allow-copy --json --quiet --max-bandwidth 300 --max-downtime 100 --timeout 10 2>"$VM_DIR/err")
rc=$?
# A progress event every half second of the copy: 10 s leave room for a slow start on a loaded
# machine (the start-up once took most of a 6 s budget).
tap_diag "$(grep -c '"progress"' "$VM_DIR/err") progress events; $(grep -v '"progress"' "$VM_DIR/err")"
[ "$(grep -c '"event":"progress"' "$VM_DIR/err")" -ge 3 ] &&
	grep '"event":"progress"' "$VM_DIR/err" | jq -e -s 'all(.[]; .transferred_bytes > 0 and .total_bytes > 0)' >/dev/null
tap_ok $? "--json: progress events with bytes sent and total on stderr"
[ "$rc" = 1 ] && grep -q "did not finish in time: [0-9]* MiB sent, [0-9]* MiB still dirty" "$VM_DIR/err" &&
	grep -q "raise --timeout or --max-downtime" "$VM_DIR/err"
tap_ok $? "a copy that cannot converge stops at --timeout, with the numbers and what to change"
tap_is "$(json_get "$report" result)" failed "its report says failed"
kept
tap_ok $? "the old QEMU keeps the guest, clean, nothing left behind"

"$QU_BIN" --pid "$VM_PID" --allow-copy --json --quiet --max-bandwidth 300 --max-downtime 100 >/dev/null 2>"$VM_DIR/err2" &
tool=$!
for _ in $(seq 200); do grep -q '"progress"' "$VM_DIR/err2" 2>/dev/null && break; sleep 0.05; done
kill -INT "$tool"
wait "$tool"
rc=$?
tap_is "$rc" 1 "Ctrl-C during the copy: exit 1"
grep -q "cancelled by a signal" "$VM_DIR/err2"
tap_ok $? "Ctrl-C during the copy: the error says so"
kept
tap_ok $? "Ctrl-C during the copy: the old QEMU keeps the guest, clean, nothing left behind"
vm_qmp "$VM_QMP" '{"execute":"query-migrate-parameters"}' | grep -q '"downtime-limit": 300'
tap_ok $? "the old QEMU's downtime limit is back at 300 ms"
tap_done
