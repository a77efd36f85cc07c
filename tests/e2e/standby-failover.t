#!/usr/bin/env bash
# qemu-upgrade standby: failover and fencing (issue 16), on two "hosts" (network namespaces
# joined by a veth, the TLS agent on B), real QEMU 11.1.3 under TCG, the memory-checking guest
# with a virtio-net NIC on a tap of the same name on both hosts.
# 1. The primary QEMU is SIGKILLed: the secondary runs the guest within seconds, its memory
#    checker clean and its pass count continuing from the last checkpoint (at least the pass
#    the primary had finished two checkpoints before the kill), pings from B's host answered, its MAC announced on B's tap (RARP
#    frames captured), and A's state says failed-over.
# 2. The veth is cut instead: A's supervisor stops its own QEMU after half the heartbeat
#    timeout (fenced), B's secondary takes over after the whole of it: exactly one side runs
#    the guest, and it is clean.
# 3. The secondary is SIGKILLed: protection ends, and the primary runs on alone, its output
#    no longer held.
# 4. The VM is shut down (QMP quit on its second monitor: SHUTDOWN, then QEMU exits): an end
#    someone wanted, not a fault: no failover, the secondary stopped, the guest runs nowhere.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu
command -v tcpdump >/dev/null || { echo "Bail out! tcpdump is missing (tests/install-deps.sh installs it)"; exit 1; }

tap_plan 16
standby_hosts
dest=(--remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A")
HB=12000 # the heartbeat timeout: A fences after 6 s without an answer, B takes over after 12 s

# 1. SIGKILL of the primary.
protected_vm sbf-kill 192.168.78.10 52:54:00:12:78:10 4781
tap_ok $? "protected, checkpoints flowing (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID a_serial=$VM_SERIAL
b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock
ip netns exec "$REMOTE_NS_B" timeout 60 tcpdump -l -n -i "$TAP" -c 1 "ether src 52:54:00:12:78:10 and ether proto 0x8035" \
	>"$VM_DIR/rarp" 2>"$VM_DIR/tcpdump.err" &
dump=$!
vm_track_pid "$dump"
wait_for 30 "tcpdump to listen on B's tap" grep -q "listening on" "$VM_DIR/tcpdump.err"
# A pass the primary's guest had finished before two more checkpoints were taken: the last
# checkpoint before the kill holds at least that pass count (B may lose what came after it,
# up to one interval of the guest's work, but never more).
pass_checkpointed=$(pass_of "$a_serial")
c0=$(checkpoints "$primary")
wait_for 60 "two more checkpoints" at_least_checkpoints "$primary" $((${c0:-0} + 2))
pass_at_kill=$(pass_of "$a_serial")
t0=$(date +%s.%N)
kill -KILL "$primary"
# A COLO secondary runs its vCPUs between checkpoints too: it has taken over once it has left
# COLO (mode none) and runs.
b_runs() { out_of_colo_running "$b_qmp"; }
a_gone() { proc_gone "$primary"; }
wait_for 60 "the secondary to run the guest" b_runs
rc=$?
[ "$rc" = 0 ] || takeover_diag "$primary" "$SEC" "$b_qmp"
t1=$(date +%s.%N)
tap_diag "kill to running on B: $(echo "$t1 - $t0" | bc) s; A's last pass $pass_at_kill; B's serial: $(pass_of "$b_serial")"
[ "$rc" = 0 ] && a_gone
tap_ok $? "SIGKILL of the primary: the secondary runs the guest (out of COLO, running on B)"
n0=$(pass_lines "$b_serial")
wait_for 120 "two memcheck passes on B" more_passes "$b_serial" "$n0" 2
rc=$?
tap_diag "B's memcheck: $(grep -a 'MEMCHECK pass=' "$b_serial" | tail -n 1 | tr -d '\r'), corrupt lines $(corrupt_of "$b_serial")"
b0=$(pass_after "$b_serial" "$n0")
memcheck_diag "$b_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ]
tap_ok $? "the guest on B checks its memory on, clean (pass $b0 -> $(pass_of "$b_serial"))"
[ "${b0:-0}" -gt "${pass_checkpointed:-0}" ]
tap_ok $? "no rewind past the last checkpoint: B's first pass after the takeover is $b0; the primary had finished pass $pass_checkpointed two checkpoints before the kill (and $pass_at_kill at it)"
p=$(ping_from "$REMOTE_NS_B" 10 192.168.78.10)
tap_diag "pings from B's host: $p"
[ "${p%/*}" -ge 8 ]
tap_ok $? "the guest answers pings on B ($p)"
wait "$dump" 2>/dev/null
tap_diag "RARP on B's tap: $(head -n 1 "$VM_DIR/rarp")"
grep -q "52:54:00:12:78:10" "$VM_DIR/rarp"
tap_ok $? "the guest's MAC was announced on B (RARP from 52:54:00:12:78:10 captured)"
standby status --pid "$primary" --json
tap_diag "A's status: $OUT"
[ "$(jq -r .state <<<"$OUT")" = failed-over ] && jq -r .reason <<<"$OUT" | grep -q "the guest runs on $REMOTE_B_IP:4781 in PID $SEC"
tap_ok $? "A's state: failed-over, naming the secondary"
# Its work is done: the CPU is the next test's. The agent adopted it when its session ended,
# and logs how it ended.
kill -KILL "$SEC" 2>/dev/null
agent_logged "PID $SEC, which a session left running, ended: signal 9 (SIGKILL)"
tap_ok $? "the secondary that took over, SIGKILLed after its session ended: the agent logs its end"
kill "$REMOTE_AGENT" 2>/dev/null

# 2. The link between the hosts is cut.
protected_vm sbf-cut 192.168.79.10 52:54:00:12:79:10 4782
tap_ok $? "second VM protected (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID
b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock
t0=$SECONDS
ip -n "$REMOTE_NS_A" link set "qua$$" down
wait_for 60 "A to stop its QEMU" a_gone
rc=$?
tap_diag "A's QEMU gone after $((SECONDS - t0)) s"
standby status --pid "$primary" --json
tap_diag "A's status: $OUT"
[ "$rc" = 0 ] && [ "$(jq -r .state <<<"$OUT")" = fenced ]
tap_ok $? "the link cut: A stopped its own QEMU (state fenced) after $((SECONDS - t0)) s"
wait_for 60 "the secondary to take over" b_runs
rc=$?
tap_diag "B runs the guest after $((SECONDS - t0)) s; agent log: $(grep -a 'taking over\|runs here\|said: \|by itself\|failed: ' "$REMOTE_AGENT_LOG" | tail -n 8 | tr '\n' '|')"
[ "$rc" = 0 ]
tap_ok $? "B's secondary took over after the heartbeat timeout"
n0=$(pass_lines "$b_serial")
wait_for 120 "two memcheck passes on B" more_passes "$b_serial" "$n0" 2
rc=$?
memcheck_diag "$b_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ] && a_gone
tap_ok $? "exactly one side runs the guest: A's QEMU is gone, B's checks its memory on, clean ($(pass_of "$b_serial"))"
ip -n "$REMOTE_NS_A" link set "qua$$" up
kill -KILL "$SEC" 2>/dev/null
kill "$REMOTE_AGENT" 2>/dev/null

# 3. The secondary dies (its host stays): the primary is released and runs on alone.
protected_vm sbf-lose 192.168.80.10 52:54:00:12:80:10 4783
tap_ok $? "third VM protected (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID
kill -KILL "$SEC"
released() { standby status --pid "$primary" --json && [ "$(jq -r .state <<<"$OUT")" = broken ]; }
wait_for 60 "the supervisor to end protection" released
rc=$?
p=$(ping_from "$REMOTE_NS_A" 5 192.168.80.10)
tap_diag "after the secondary's death: $OUT; mode $(vm_qmp "$VM_QMP" '{"execute":"query-colo-status"}' | jq -r .return.mode), run state $(vm_runstate), pings $p"
[ "$rc" = 0 ] && jq -r .reason <<<"$OUT" | grep -q "the secondary on $REMOTE_B_IP:4783\|COLO ended on the primary" &&
	[ "$(vm_qmp "$VM_QMP" '{"execute":"query-colo-status"}' | jq -r .return.mode)" = none ] && [ "$(vm_runstate)" = running ] &&
	[ "$p" = 5/5 ] && vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the secondary SIGKILLed: protection ends (broken, the reason named), the primary runs on alone, clean, pings answered ($p)"
kill "$REMOTE_AGENT" 2>/dev/null

# 4. The VM shuts down: protection ends, and nothing runs the guest afterwards.
protected_vm sbf-quit 192.168.82.10 52:54:00:12:82:10 4786
tap_ok $? "fourth VM protected (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID
vm_qmp "$VM_QMP" '{"execute":"quit"}' >/dev/null
ended() { standby status --pid "$primary" --json && [ "$(jq -r .state <<<"$OUT")" = stopped ]; }
wait_for 60 "the supervisor to end protection" ended && wait_for 60 "B to hold no QEMU" remote_no_qemu
rc=$?
tap_diag "after quit: $OUT; B's QEMUs: [$(remote_qemus | tr '\n' ' ')]; agent log: $(grep -a 'taking over\|runs here' "$REMOTE_AGENT_LOG" | tr '\n' '|')"
[ "$rc" = 0 ] && jq -r .reason <<<"$OUT" | grep -q "the VM shut down (reason: host-qmp-quit): protection ended without a failover" &&
	! grep -aq "taking over" "$REMOTE_AGENT_LOG" && proc_gone_soon "$primary" 30
tap_ok $? "the VM shut down (QMP quit): state stopped, no failover, B holds no QEMU: the guest runs nowhere"
tap_done
