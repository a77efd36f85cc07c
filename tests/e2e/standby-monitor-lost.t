#!/usr/bin/env bash
# qemu-upgrade standby when the supervisor loses the primary's monitor (issue 16, "never two
# primaries"), on two "hosts" (network namespaces joined by a veth, the TLS agent on B), real
# QEMU 11.1.3 under TCG, the memory-checking guest, the shortest heartbeat timeout (4 s: A
# fences after 2 s without an answer, B takes over after 4 s of silence).
# The connection is cut on QEMU's side (tests/helpers/sockcut.py: a copy of QEMU's end, shut
# down), as the VM's owner could: both ends read its end, and QEMU lives on.
# 1. The QEMU lives on: the supervisor waits for its exit with its heartbeat going, so B never
#    takes over (a supervisor that waited without a heartbeat let B take over beside a
#    running primary); after 15 s protection is broken, the primary is released over a new
#    connection to its monitor (out of COLO, running, clean), and B holds no QEMU.
# 2. The QEMU is SIGKILLed while the supervisor waits: the secondary takes over.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 8
standby_hosts
HB=4000
sockcut=$here/../helpers/sockcut.py

# cut_monitor: the supervisor's monitor connection cut on the primary QEMU's side; sets SUP.
cut_monitor() {
	standby status --pid "$VM_PID" --json
	SUP=$(jq -r .supervisor_pid <<<"$OUT")
	local fd
	fd=$(ip netns exec "$REMOTE_NS_A" "$sockcut" "$VM_PID" "$SUP" 2>&1)
	local rc=$?
	tap_diag "cut QEMU's fd $fd to the supervisor (PID $SUP): exit $rc"
	[ "$rc" = 0 ] && wait_for 30 "the supervisor to say it lost the monitor" \
		grep -q "the primary's monitor: .*; waiting for the QEMU (PID $VM_PID) to exit" \
		"$QEMU_UPGRADE_STATE_DIR/standby-$VM_PID.log"
}

# 1. The monitor lost, the QEMU alive.
protected_vm sbm-live 192.168.85.10 52:54:00:12:85:10 4785
tap_ok $? "protected with a 4 s heartbeat timeout (the secondary PID ${SEC:-none} on B)"
cut_monitor
tap_ok $? "the monitor connection cut on QEMU's side: the supervisor says it waits for the QEMU's exit"
state_is() { standby status --pid "$VM_PID" --json && [ "$(jq -r .state <<<"$OUT")" = "$1" ]; }
wait_for 90 "protection to end" state_is broken
rc=$?
tap_diag "state: $(jq -c '[.state, .reason]' <<<"$OUT")"
[ "$rc" = 0 ] || standby_logs "$VM_PID"
[ "$rc" = 0 ] && grep -q "the primary's monitor: .*, and its QEMU (PID $VM_PID) did not exit within 15 s" <<<"$(jq -r .reason <<<"$OUT")"
tap_ok $? "15 s later protection is broken, and the state says why"
! grep -aq "taking over" "$REMOTE_AGENT_LOG"
tap_ok $? "B never took over: the heartbeat went on while the supervisor waited (4 s timeout, 15 s wait)"
wait_for 30 "B to stop the secondary" remote_no_qemu &&
	out_of_colo_running "$VM_QMP" && vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the primary released over a new monitor connection: out of COLO, running, its guest clean; B holds no QEMU"
kill "$REMOTE_AGENT" 2>/dev/null

# 2. The monitor lost, then the QEMU killed.
protected_vm sbm-kill 192.168.86.10 52:54:00:12:86:10 4786
tap_ok $? "a second VM protected (the secondary PID ${SEC:-none} on B)"
b_qmp=/proc/$SEC/root$MON/test.sock
cut_monitor
tap_ok $? "its monitor connection cut: the supervisor waits for the QEMU's exit"
kill -KILL "$VM_PID"
b_runs() { out_of_colo_running "$b_qmp"; }
wait_for 60 "the secondary to run the guest" b_runs
rc=$?
[ "$rc" = 0 ] && wait_for 30 "A's state to say failed-over" state_is failed-over
rc=$?
[ "$rc" = 0 ] || standby_logs "$VM_PID"
tap_diag "state: $(jq -c '[.state, .reason]' <<<"$OUT")"
[ "$rc" = 0 ]
tap_ok $? "killed while the supervisor waited: the secondary runs the guest, A's state failed-over"
tap_done
