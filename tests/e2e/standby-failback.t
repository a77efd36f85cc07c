#!/usr/bin/env bash
# qemu-upgrade standby: failback (issue 16, item 5), on two "hosts" (network namespaces joined
# by a veth), real QEMU 11.1.3 under TCG, the memory-checking guest with a virtio-net NIC on a
# tap of the same name on both hosts.
# A protects its VM towards B (the TLS agent on B); A's QEMU is SIGKILLed and B's secondary
# takes over. Then host A is back: its own TLS agent starts, and the tool on B protects the
# guest, now running on B, towards A (`standby start --pid B's QEMU --remote A`). Checkpoints
# flow the other way, the guest stays clean and answers pings through B's colo-compare; B's
# QEMU is SIGKILLed in turn, and A's new secondary runs the guest on, clean, without a rewind
# past the last checkpoint, answering pings on A's tap: A is in service again, the guest never
# rebooted.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 14
standby_hosts
HB=12000

# 1. A protects the VM towards B; A's QEMU dies; B takes over.
protected_vm sbk 192.168.81.10 52:54:00:12:81:10 4784
tap_ok $? "protected A -> B, checkpoints flowing (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID agent_b=$REMOTE_AGENT
on_b=$SEC b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock
kill -KILL "$primary"
wait_for 60 "B's secondary to run the guest" out_of_colo_running "$b_qmp"
rc=$?
[ "$rc" = 0 ] || takeover_diag "$primary" "$on_b" "$b_qmp"
tap_ok $rc "A's QEMU SIGKILLed: B runs the guest"
caps=$(vm_qmp "$b_qmp" '{"execute":"query-migrate-capabilities"}' | jq -c '[.return[] | select(.capability == "x-colo" or .capability == "return-path") | .state]')
creds=$(vm_qmp "$b_qmp" '{"execute":"query-migrate-parameters"}' | jq -r '.return["tls-creds"]')
tap_diag "B after the takeover: x-colo, return-path $caps; tls-creds '$creds'"
[ "$caps" = "[false,false]" ] && [ -z "$creds" ]
tap_ok $? "B's QEMU is left as one started there: x-colo and return-path off, no TLS credentials named"

# 2. Host A is back in service: its own agent (a certificate for A's address; the tool on B
# has its own client certificate, the only one A's agent lets in), a tmpfs over the VM's
# directories as on B, so that nothing of the dead QEMU's files is in the way. The tap that
# A's QEMU made went with it: A's network setup makes it again (as it must on B: the agent
# opens taps that exist, and attaches them to nothing itself).
host_a_back 4785 192.168.81.1
agent_a=$AGENT_A pki_tool_b=$PKI_TOOL_B

# 3. Failback: the tool on B (its network and mount namespace) protects the guest towards A.
STANDBY_WRAP="nsenter -t $agent_b -m -n"
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4785" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "B -> A: start: exit $rc: $OUT $ERR"
SEC=$(secondary_of "$OUT")
[ "$rc" = 0 ] && [ -n "$SEC" ] && [ "$(ip netns identify "$SEC")" = "$REMOTE_NS_A" ] &&
	wait_for 120 "3 checkpoints B -> A" at_least_checkpoints "$on_b" 3
tap_ok $? "failback: the guest on B is protected towards A (the secondary PID ${SEC:-none} on A)"
on_a=$SEC a_serial=/proc/$SEC/root$VM_DIR/serial.log a_qmp=/proc/$SEC/root$MON/test.sock
standby status --pid "$on_b" --json
tap_diag "B's status: $OUT"
[ "$(jq -r .state <<<"$OUT")" = protecting ] && [ "$(jq -r .standby_pid <<<"$OUT")" = "$on_a" ] &&
	[ "$(jq -r .host <<<"$OUT")" = "$REMOTE_A_IP:4785" ]
tap_ok $? "B's status: protecting, the standby on A named"
b0=$(pass_of "$b_serial")
b_progress() { local p; p=$(pass_of "$b_serial"); [ "${p:-0}" -ge $((${b0:-0} + 2)) ]; }
wait_for 120 "two memcheck passes on B while protected" b_progress
rc=$?
memcheck_diag "$b_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ]
tap_ok $? "the guest on B checks its memory on while checkpointed to A, clean (pass $b0 -> $(pass_of "$b_serial"))"
p=$(ping_from "$REMOTE_NS_B" 10 192.168.81.10)
tap_diag "pings from B's host through colo-compare: $p"
[ "${p%/*}" -ge 8 ]
tap_ok $? "the guest answers pings on B through colo-compare ($p)"

# 4. B's QEMU dies: A's new secondary runs the guest: A is in service again.
pass_checkpointed=$(pass_of "$b_serial")
c0=$(checkpoints "$on_b")
wait_for 60 "two more checkpoints" at_least_checkpoints "$on_b" $((${c0:-0} + 2))
ready_b=$(grep -ac 'MEMCHECK READY' "$b_serial")
kill -KILL "$on_b"
wait_for 60 "A's secondary to run the guest" out_of_colo_running "$a_qmp"
rc=$?
[ "$rc" = 0 ] || takeover_diag "$on_b" "$on_a" "$a_qmp" "/proc/$agent_b/root$QEMU_UPGRADE_STATE_DIR/standby-$on_b.log"
n0=$(pass_lines "$a_serial")
[ "$rc" = 0 ] && wait_for 120 "two memcheck passes on A" more_passes "$a_serial" "$n0" 2
rc=$?
a0=$(pass_after "$a_serial" "$n0")
tap_diag "A's memcheck: $(grep -a 'MEMCHECK pass=' "$a_serial" | tail -n 1 | tr -d '\r'); B had finished pass $pass_checkpointed two checkpoints before the kill"
memcheck_diag "$a_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$a_serial")" = 0 ] && [ "$(corrupt_of "$a_serial")" = 0 ] && [ "${a0:-0}" -gt "${pass_checkpointed:-0}" ]
tap_ok $? "B's QEMU SIGKILLed: A runs the guest on, clean, no rewind (pass $a0 -> $(pass_of "$a_serial"))"
p=$(ping_from "$REMOTE_NS_A" 10 192.168.81.10)
tap_diag "pings from A's host: $p"
[ "${p%/*}" -ge 8 ]
tap_ok $? "the guest answers pings on A's tap again ($p)"
# A rebooted guest would start its checker again (MEMCHECK READY): on B and on A's new QEMU
# it only went on.
ready=$((ready_b + $(grep -ac 'MEMCHECK READY' "$a_serial")))
[ "$ready" = 0 ] && [ "$(grep -ac 'MEMCHECK READY' "$VM_SERIAL")" = 1 ]
tap_ok $? "the guest never rebooted (its checker started once, at boot on A; $ready times since)"
standby status --pid "$on_b" --json
tap_diag "B's status: $OUT"
[ "$(jq -r .state <<<"$OUT")" = failed-over ]
tap_ok $? "B's state: failed-over"

# 5. The cycle closes: A protects the guest towards B again; then protection stops. B's
# killed QEMU left its monitors' socket files behind, which nobody listens on: the agent
# replaces them (as the VM's user), where it would refuse a live one.
STANDBY_WRAP="nsenter -t $agent_a -m -n"
stale=$(nsenter -t "$agent_b" -m sh -c "[ -S '$VM_DIR/qmp.sock' ] && [ -S '$MON/test.sock' ] && echo yes")
standby start --pid "$on_a" --remote "$REMOTE_B_IP:4784" --pki-dir "$REMOTE_PKI_A" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "A -> B again: start: exit $rc: $OUT $ERR"
SEC=$(secondary_of "$OUT")
[ "$rc" = 0 ] && [ -n "$SEC" ] && [ "$(ip netns identify "$SEC")" = "$REMOTE_NS_B" ] &&
	wait_for 120 "3 checkpoints A -> B" at_least_checkpoints "$on_a" 3
tap_ok $? "the cycle closes: the guest on A is protected towards B again (the secondary PID ${SEC:-none} on B), over the stale sockets B's dead QEMU left (${stale:-none found})"
p=$(ping_from "$REMOTE_NS_A" 10 192.168.81.10)
tap_diag "pings from A's host through colo-compare: $p"
[ "${p%/*}" -ge 8 ]
tap_ok $? "the guest answers pings on A through colo-compare ($p)"
standby stop --pid "$on_a"
rc=$?
tap_diag "stop: exit $rc: $OUT $ERR"
a1=$(pass_of "$a_serial")
a_on() { local p; p=$(pass_of "$a_serial"); [ "${p:-0}" -ge $((${a1:-0} + 2)) ]; }
[ "$rc" = 0 ] && wait_for 60 "B to be empty" remote_no_qemu && [ "$(vm_runstate "$a_qmp")" = running ] &&
	wait_for 120 "two memcheck passes on A" a_on && [ "$(errors_of "$a_serial")" = 0 ] && [ "$(corrupt_of "$a_serial")" = 0 ]
rc=$?
memcheck_diag "$a_serial"
tap_ok $rc "standby stop on A: the guest runs on there alone, clean (pass $(pass_of "$a_serial")), B holds no QEMU"
kill -KILL "$on_a" 2>/dev/null
tap_done
