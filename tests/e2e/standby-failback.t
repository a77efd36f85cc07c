#!/usr/bin/env bash
# qemu-upgrade standby: failback (issue 16, item 5), on two "hosts" (network namespaces joined
# by a veth), real QEMU 11.1.3 under TCG, the memory-checking guest with a virtio-net NIC on a
# tap of the same name on both hosts.
# A protects its VM towards B (the TLS agent on B); A's QEMU is SIGKILLed and B's secondary
# takes over. Then host A is back: its own TLS agent starts, and the tool on B is asked to
# protect the guest, now running on B, towards A (`standby start --pid B's QEMU --remote A`).
# It refuses: a QEMU that took over as a COLO secondary gave corrupt guests when protected
# again (docs/standby.md, "Failback": in runs of this test and its disk twin the guest's
# memory was found mixed after B's QEMU was killed in turn). The refusal names why; nothing is
# made on A; the guest on B runs on, untouched and clean. Then the way the refusal names: an
# in-place upgrade moves the guest into a new QEMU on B; protected from it towards A, B's new
# QEMU SIGKILLed, A runs the guest on, clean: A is back in service, the guest never rebooted.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 10
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

# 3. Failback: refused, with the reason; the plan (--dry-run) says the same.
STANDBY_WRAP="nsenter -t $agent_b -m -n"
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4785" --pki-dir "$pki_tool_b" --dry-run
rc=$?
tap_diag "B -> A: the plan: exit $rc: $(grep -a '^  - ' <<<"$OUT" | tr '\n' '|')"
why="this QEMU took over the guest as a COLO secondary (query-colo-status: last-mode secondary)"
[ "$rc" = 3 ] && grep -qF "  - $why" <<<"$OUT" && [ "$(grep -c '^  - ' <<<"$OUT")" = 1 ]
tap_ok $? "failback, planned: refused (exit 3), the one reason: the QEMU on B took over as a secondary"
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4785" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "B -> A: start: exit $rc: $(grep -a '^  - ' <<<"$OUT$ERR" | tr '\n' '|')"
[ "$rc" = 3 ] && grep -qF "$why" <<<"$OUT$ERR" && remote_no_qemu "$REMOTE_NS_A"
tap_ok $? "failback: refused (exit 3) with that reason; A holds no QEMU"
mode=$(vm_qmp "$b_qmp" '{"execute":"query-colo-status"}' | jq -r .return.mode)
b0=$(pass_of "$b_serial")
b_progress() { local p; p=$(pass_of "$b_serial"); [ "${p:-0}" -ge $((${b0:-0} + 2)) ]; }
wait_for 120 "two memcheck passes on B" b_progress
rc=$?
memcheck_diag "$b_serial"
p=$(ping_from "$REMOTE_NS_B" 10 192.168.81.10)
tap_diag "B after the refusal: COLO mode $mode, run state $(vm_runstate "$b_qmp"), pings $p"
[ "$rc" = 0 ] && [ "$mode" = none ] && [ "$(vm_runstate "$b_qmp")" = running ] &&
	[ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ] && [ "${p%/*}" -ge 8 ]
tap_ok $? "the guest on B runs on untouched: out of COLO, clean (pass $b0 -> $(pass_of "$b_serial")), answering pings ($p)"

# 4. The way the refusal names: the guest moved into a new QEMU process on B by an in-place
# upgrade (its RAM copied once into shared memory), which never was a secondary; then the
# failback B -> A from it; B's new QEMU SIGKILLed: A's secondary runs the guest on, clean.
grep -qF "qemu-upgrade --pid $on_b --allow-copy" <<<"$OUT$ERR"
tap_ok $? "the refusal names the in-place upgrade that gives the guest a new QEMU"
up=$(nsenter -t "$agent_b" -m -n "$QU_BIN" --pid "$on_b" --new-binary "$Q11" --allow-copy --json 2>"$VM_DIR/upgrade.err")
rc=$?
new=$(jq -r .new_pid <<<"$up" 2>/dev/null)
tap_diag "upgrade on B: exit $rc: $(jq -c '{result, strategy, pause_ms, new_pid}' <<<"$up" 2>/dev/null) $(tail -n 3 "$VM_DIR/upgrade.err" | tr '\n' '|')"
[ "$rc" = 0 ] && [ -n "$new" ] && [ "$new" != null ] &&
	[ "$(vm_qmp "/proc/$new/root$MON/test.sock" '{"execute":"query-colo-status"}' | jq -r '.return["last-mode"]')" = none ]
tap_ok $? "the guest upgraded in place on B: a new QEMU (PID ${new:-none}) that never was a secondary"
on_b=$new b_serial=/proc/$new/root$VM_DIR/serial.log b_qmp=/proc/$new/root$MON/test.sock
standby start --pid "$on_b" --remote "$REMOTE_A_IP:4785" --pki-dir "$pki_tool_b" --interval 500 --heartbeat-timeout "$HB"
rc=$?
tap_diag "B -> A: start: exit $rc: $OUT $(grep -a '^  - ' <<<"$ERR" | tr '\n' '|')"
SEC=$(secondary_of "$OUT")
[ "$rc" = 0 ] && [ -n "$SEC" ] && [ "$(ip netns identify "$SEC")" = "$REMOTE_NS_A" ] &&
	wait_for 120 "10 checkpoints B -> A" at_least_checkpoints "$on_b" 10
tap_ok $? "failback from the new process: protected towards A (the secondary PID ${SEC:-none} on A), checkpoints flowing"
on_a=$SEC a_serial=/proc/$SEC/root$VM_DIR/serial.log a_qmp=/proc/$SEC/root$MON/test.sock
p=$(ping_from "$REMOTE_NS_B" 10 192.168.81.10)
kill_for_takeover "$on_b" "$on_a" "$a_qmp" "$a_serial" "/proc/$agent_b/root$QEMU_UPGRADE_STATE_DIR/standby-$on_b.log"
rc=$?
tap_diag "A's memcheck: $(grep -a 'MEMCHECK pass=' "$a_serial" | tail -n 1 | tr -d '\r'); pings through B's colo-compare before the kill: $p"
[ "$rc" = 0 ] && [ "$(errors_of "$a_serial")" = 0 ] && [ "$(corrupt_of "$a_serial")" = 0 ] &&
	[ "$(grep -ac 'MEMCHECK READY' "$a_serial")" = 0 ]
tap_ok $? "B's new QEMU SIGKILLed: A runs the guest on, clean, never rebooted: A is in service again"
kill -KILL "$on_a" 2>/dev/null
tap_done
