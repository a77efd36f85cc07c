#!/usr/bin/env bash
# A pty stays the guest's pty. The VM's HMP monitor is on a pty (-chardev pty), as a console
# an operator attaches to with screen. A session holds the pty open through two upgrades and
# is answered before and after each; a new session on the same /dev/pts/N is answered too.
# Stock QEMU cannot adopt a pty master, so the master moves to a small relay and QEMU gets a
# socket to it: with nobody on the pty, neither the new QEMU's main thread nor the relay may
# spin (a pty master reports a hang-up at once, every time, when nobody holds the slave).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 13
hmp=$QU_ROOT/tests/helpers/ptyhmp.py
VM_MEMCHECK_MIB=32 vm_start pty -chardev pty,id=hmp0 -mon chardev=hmp0,mode=readline || exit 1
vm_wait_ready || exit 1
pts=$(vm_qmp "$VM_QMP" '{"execute":"query-chardev"}' | jq -r '.return[] | select(.label == "hmp0") | .filename' | sed 's/^pty://')
[[ $pts == /dev/pts/* ]] && [ "$("$hmp" "$pts")" = "ANSWER VM status: running" ]
tap_ok $? "the HMP monitor answers on its pty $pts"

flag=$VM_DIR/ask
"$hmp" "$pts" --hold "$flag" >"$VM_DIR/session" 2>&1 &
session=$!
vm_defer "kill $session 2>/dev/null"
# ask: the held session asks once more; prints its answer.
ask() {
	local before n
	before=$(wc -l <"$VM_DIR/session")
	echo ask >"$flag"
	for n in $(seq 100); do [ "$(wc -l <"$VM_DIR/session")" -gt "$before" ] && break; sleep 0.1; done
	tail -n 1 "$VM_DIR/session"
}
sleep 0.5
for round in 1 2; do
	old=$VM_PID
	vm_upgrade
	report=$REPORT
	tap_diag "round $round: $(json_get "$report" result) $(json_get "$report" error) $(cat "$VM_DIR/err")"
	[ "$(json_get "$report" result)" = upgraded ] && [ "$VM_PID" != "$old" ]
	tap_ok $? "round $round: upgraded"
	tap_is "$(ask)" "ANSWER VM status: running" "round $round: the session held open through the upgrade is answered by the new QEMU"
	tap_is "$("$hmp" "$pts")" "ANSWER VM status: running" "round $round: a new session on the same $pts is answered"
done
echo quit >"$flag"
wait "$session"

# Nobody on the pty now: nothing may spin.
ticks() { awk '{ print $14 + $15 }' "$1"; }
main_before=$(ticks "/proc/$VM_PID/task/$VM_PID/stat")
relay_pid=
for p in $(ls /proc | grep -E '^[0-9]+$'); do
	link=$(readlink "/proc/$p/fd/3" 2>/dev/null) || continue
	[ "$link" = /dev/ptmx ] || [ "$link" = /dev/pts/ptmx ] || continue
	[ "$(sed -n 's/^tty-index:\s*//p' "/proc/$p/fdinfo/3" 2>/dev/null)" = "${pts##*/}" ] && relay_pid=$p && break
done
[ -n "$relay_pid" ]
tap_ok $? "a relay process holds the pty master ($relay_pid)"
relay_before=$(ticks "/proc/$relay_pid/stat")
sleep 3
main_used=$(( $(ticks "/proc/$VM_PID/task/$VM_PID/stat") - main_before ))
relay_used=$(( $(ticks "/proc/$relay_pid/stat") - relay_before ))
tap_diag "in 3 s with nobody on the pty: QEMU main thread $main_used ticks, relay $relay_used ticks (of 300)"
[ "$main_used" -lt 60 ]
tap_ok $? "the new QEMU's main thread does not spin ($main_used of 300 ticks)"
[ "$relay_used" -lt 15 ]
tap_ok $? "the relay does not spin ($relay_used of 300 ticks)"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest is clean"

# A failed upgrade leaves the pty with the old QEMU, and no relay behind.
holders() { # the processes holding the master of pty $1
	local p
	for p in $(ls /proc | grep -E '^[0-9]+$'); do
		grep -l "^tty-index:\s*${1##*/}$" /proc/"$p"/fdinfo/* 2>/dev/null | grep -q . &&
			ls -l /proc/"$p"/fd 2>/dev/null | grep -q ptmx && echo "$p"
	done
}
VM_MEMCHECK_MIB=16 vm_start pty-rollback -chardev pty,id=hmp1 -mon chardev=hmp1,mode=readline || exit 1
vm_wait_ready || exit 1
pts=$(vm_qmp "$VM_QMP" '{"execute":"query-chardev"}' | jq -r '.return[] | select(.label == "hmp1") | .filename' | sed 's/^pty://')
old=$VM_PID
QEMU_UPGRADE_FAULT=5 "$QU_BIN" --pid "$old" --quiet >/dev/null 2>"$VM_DIR/err"
rc=$?
sleep 0.3
[ "$rc" = 1 ] && [ "$(holders "$pts" | tr '\n' ' ')" = "$old " ] && [ "$("$hmp" "$pts")" = "ANSWER VM status: running" ]
tap_ok $? "a failed upgrade (fault 5): the old QEMU alone holds $pts and answers on it, no relay left"

# The legacy form: -monitor pty.
VM_MEMCHECK_MIB=16 vm_start pty-legacy -monitor pty || exit 1
vm_wait_ready || exit 1
pts=$(vm_qmp "$VM_QMP" '{"execute":"query-chardev"}' | jq -r '.return[] | select(.filename | startswith("pty:")) | .filename' | sed 's/^pty://')
old=$VM_PID
vm_upgrade
report=$REPORT
tap_diag "-monitor pty: $(json_get "$report" result) $(json_get "$report" error)"
[ "$(json_get "$report" result)" = upgraded ] && [[ $pts == /dev/pts/* ]] && [ "$("$hmp" "$pts")" = "ANSWER VM status: running" ]
tap_ok $? "-monitor pty: upgraded, and the new QEMU answers on the same $pts"
tap_done
