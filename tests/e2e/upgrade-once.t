#!/usr/bin/env bash
# One live upgrade of a running guest (QEMU 7.2, memfd RAM): zero-copy, guest clean and
# running afterwards, old QEMU gone, QMP answering at the same path, logs continued.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 14
vm_start once || exit 1
vm_wait_ready || exit 1
vm_memcheck_progress 60
tap_ok $? "guest memory checker runs before the upgrade"
old=$VM_PID
first_line=$(head -n 1 "$VM_SERIAL")
lines_before=$(wc -l <"$VM_SERIAL")

# Whoever reads the pidfile during the upgrade always finds it (the old PID, then the new).
( while :; do [ -e "$VM_DIR/qemu.pid" ] || echo missing; sleep 0.001; done ) >"$VM_DIR/pidfile-watch" &
watcher=$!
report=$("$QU_BIN" --pid "$old" --json --quiet)
rc=$?
kill "$watcher"; wait "$watcher" 2>/dev/null
tap_is "$(grep -c missing "$VM_DIR/pidfile-watch")" 0 "the pidfile never went missing during the upgrade"
new=$(json_get "$report" new_pid)
[[ $new =~ ^[0-9]+$ ]] && vm_track_pid "$new"
tap_diag "report: $report"
tap_is "$rc" 0 "qemu-upgrade exits 0"
tap_is "$(json_get "$report" result)" upgraded "result is upgraded"
tap_is "$(json_get "$report" strategy)" shared-ram-handover "strategy is the shared-RAM handover"
[ "$(json_get "$report" ram_copied_bytes)" -lt 1048576 ]
tap_ok $? "less than 1 MiB of guest RAM copied"
[ "$new" != "$old" ] && [ "$(readlink "/proc/$new/exe")" = "$(readlink -f "${QEMU:-/usr/bin/qemu-system-x86_64}")" ]
tap_ok $? "a new QEMU process runs the VM"
tap_check "the old QEMU is gone" proc_gone_soon "$old"
tap_is "$(vm_runstate "$VM_QMP")" running "QMP answers at the same path, VM running"
tap_is "$(cat "$VM_DIR/qemu.pid")" "$new" "the pidfile names the new PID"
VM_PID=$new
vm_memcheck_progress 60
tap_ok $? "guest memory checker makes progress after the upgrade"
tap_is "$(vm_memcheck_errors)" 0 "guest reports no memory corruption"
[ "$(head -n 1 "$VM_SERIAL")" = "$first_line" ] && [ "$(wc -l <"$VM_SERIAL")" -gt "$lines_before" ]
tap_ok $? "serial log continues in the same file, not truncated"
leftover=$(ls "$VM_DIR" | grep -c 'qemu-upgrade')
tap_is "$leftover" 0 "no temporary links left beside the socket or pidfile"
tap_done
