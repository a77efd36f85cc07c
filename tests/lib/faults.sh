# faults.sh: the fault matrix, sourced by e2e/faults-error.t and e2e/faults-kill.t with
# FAULT_MODE set (error or kill).
# at every numbered fault point the tool fails (QEMU_UPGRADE_FAULT=N) or
# dies by SIGKILL (N:kill, the guardian settles). Afterwards exactly one QEMU owns the guest,
# it runs, QMP answers at its path, the pidfile names it, the guest is clean, and no journal,
# lock, socket or link is left. Points 1-6 come before the commit point (rolled back: the old
# QEMU keeps the guest), 7-8 after it (the new QEMU has it).
. "$(dirname "${BASH_SOURCE[0]}")/vm.sh"
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

mode=${FAULT_MODE:?FAULT_MODE must be error or kill}
tap_plan 48
vm_start "faults-$mode" || exit 1
vm_wait_ready || exit 1
export QEMU_UPGRADE_STATE_DIR=$VM_DIR/state

# settled: waits until the guardian (if any) has removed the journal, up to 30 s.
settled() {
	local i
	for i in $(seq 300); do
		[ -z "$(ls -A "$QEMU_UPGRADE_STATE_DIR" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	ls -la "$QEMU_UPGRADE_STATE_DIR" >&2
	return 1
}

for point in 1 2 3 4 5 6 7 8; do
	old=$VM_PID
	spec=$point
	[ "$mode" = kill ] && spec=$point:kill
	report=$(QEMU_UPGRADE_FAULT=$spec "$QU_BIN" --pid "$old" --json --quiet 2>"$VM_DIR/err")
	rc=$?
	tap_diag "point $spec: exit $rc: $(tr '\n' ' ' <"$VM_DIR/err" | cut -c1-300)"
	if [ "$mode" = kill ]; then want_rc=137; elif [ "$point" -le 6 ]; then want_rc=1; else want_rc=0; fi
	settled && [ "$rc" = "$want_rc" ]
	tap_ok $? "point $spec: exit $want_rc; the journal, lock and private socket are gone"
	owners=$(qemu_pids_for "$VM_DIR")
	[ "$(wc -w <<<"$owners")" = 1 ]
	tap_ok $? "point $spec: exactly one QEMU owns the guest ($(echo $owners))"
	VM_PID=$owners
	vm_track_pid "$VM_PID" 2>/dev/null
	if [ "$point" -le 6 ]; then want=$old; else want=other; fi
	if [ "$want" = other ]; then [ "$VM_PID" != "$old" ]; else [ "$VM_PID" = "$old" ]; fi
	tap_ok $? "point $spec: the guest is on the $([ "$want" = other ] && echo new || echo old) QEMU"
	[ "$(vm_runstate)" = running ] && [ "$(cat "$VM_DIR/qemu.pid")" = "$VM_PID" ]
	tap_ok $? "point $spec: running, QMP answers at its path, the pidfile names PID $VM_PID"
	vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "point $spec: the guest makes progress with no corruption"
	[ "$(ls "$VM_DIR" | grep -c qemu-upgrade)" = 0 ]
	tap_ok $? "point $spec: no temporary links left beside the sockets and pidfile"
done
tap_done
