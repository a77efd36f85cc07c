#!/usr/bin/env bash
# qemu-upgrade standby switchover (issue 16): the guest moved to the standby host on purpose,
# on two "hosts" (network namespaces joined by a veth, the TLS agent on B), real QEMU 11.1.3
# under TCG, the memory-checking guest with a virtio-net NIC on a tap of the same name on both.
# A switchover asks QEMU for a checkpoint at once (checkpoints are a minute apart by then, so
# the timer cannot stand in for it), stops the primary right after it, and the
# secondary takes over as at a failover: the command returns once B runs the guest, which
# goes on from that checkpoint (its first pass on B is past the last one A printed before the
# request), clean, answering pings on B, and A holds no QEMU. Refused, with the reason: a VM
# never protected, and one no longer protecting. `standby status` without --pid lists the VMs
# with a state here: none, then the one that switched over.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu
tap_plan 10
standby_hosts
HB=12000

standby switchover --pid $$
rc=$?
tap_diag "switchover of an unprotected PID: exit $rc: $ERR"
[ "$rc" = 1 ] && grep -q "PID $$ is not protected" <<<"$ERR"
tap_ok $? "a switchover of a VM never protected is refused (exit 1), saying so"

standby status && [ "$OUT" = "no VM is protected on this host (no standby state in $QEMU_UPGRADE_STATE_DIR)" ] &&
	standby status --json && [ "$OUT" = "[]" ]
tap_ok $? "standby status without --pid, nothing protected: says so (and [] in JSON)"

protected_vm sbs-move 192.168.83.10 52:54:00:12:83:10 4791
tap_ok $? "protected, checkpoints flowing (the secondary PID ${SEC:-none} on B)"
primary=$VM_PID a_serial=$VM_SERIAL
b_serial=/proc/$SEC/root$VM_DIR/serial.log b_qmp=/proc/$SEC/root$MON/test.sock
a_gone() { proc_gone "$primary"; }
b_runs() { out_of_colo_running "$b_qmp"; }

# Checkpoints a minute apart from here (the VM owner's own monitor; the change takes one at
# once): a switchover that waited for the timer instead of asking for its checkpoint would
# fail after 30 s.
c0=$(checkpoints "$primary")
vm_qmp "$VM_QMP" '{"execute":"migrate-set-parameters","arguments":{"x-checkpoint-delay":60000}}' >/dev/null
wait_for 30 "the checkpoint the new interval starts with" at_least_checkpoints "$primary" $((${c0:-0} + 1))
# The last pass A printed before the request: the checkpoint the switchover waits for holds it.
pass_before=$(pass_of "$a_serial")
standby switchover --pid "$primary"
rc=$?
tap_diag "switchover: exit $rc: $OUT $ERR"
[ "$rc" = 0 ] && grep -q "^switched over: the guest runs on $REMOTE_B_IP:4791 in PID $SEC (" <<<"$OUT"
tap_ok $? "standby switchover: exit 0 once the guest runs on B, naming its PID there"
wait_for 30 "A's QEMU to be gone" a_gone && b_runs
tap_ok $? "A's QEMU is gone; B's runs the guest, out of COLO"
n0=$(pass_lines "$b_serial")
wait_for 120 "two memcheck passes on B" more_passes "$b_serial" "$n0" 2
rc=$?
b0=$(pass_after "$b_serial" "$n0")
tap_diag "A's last pass before the request $pass_before; B's first after the takeover $b0, now $(pass_of "$b_serial"); corrupt lines $(corrupt_of "$b_serial")"
memcheck_diag "$b_serial"
[ "$rc" = 0 ] && [ "$(errors_of "$b_serial")" = 0 ] && [ "$(corrupt_of "$b_serial")" = 0 ] && [ "${b0:-0}" -gt "${pass_before:-0}" ]
tap_ok $? "the guest on B goes on from the switchover's checkpoint (pass $b0 after A's $pass_before), clean"
p=$(ping_from "$REMOTE_NS_B" 10 192.168.83.10)
[ "${p%/*}" -ge 8 ]
tap_ok $? "the guest answers pings on B ($p)"
standby status --pid "$primary" --json
tap_diag "A's status: $OUT"
[ "$(jq -r '[.state, .switchover, (.switchover_ms > 0 and .switchover_ms < 30000), .switchover_asks] | @tsv' <<<"$OUT")" = "$(printf 'failed-over\tdone\ttrue\t1')" ] &&
	jq -r .reason <<<"$OUT" | grep -q "^switchover: .*the guest runs on $REMOTE_B_IP:4791 in PID $SEC"
tap_ok $? "A's state: failed-over by the switchover ($(jq -r .switchover_ms <<<"$OUT") ms from the request to B running the guest)"
standby status --json
[ "$(jq -r '[length, .[0].pid, .[0].state] | @tsv' <<<"$OUT")" = "$(printf '1\t%s\tfailed-over' "$primary")" ] &&
	standby status && grep -q "^state: failed-over: switchover: " <<<"$OUT" && grep -q "^vm: PID $primary$" <<<"$OUT"
tap_ok $? "standby status without --pid lists the one VM there, in JSON and in text"
standby switchover --pid "$primary"
rc=$?
tap_diag "a second switchover: exit $rc: $ERR"
[ "$rc" = 1 ] && grep -q "PID $primary is not protected now (state failed-over" <<<"$ERR"
tap_ok $? "a second switchover is refused: the VM is no longer protecting (state failed-over)"
kill -KILL "$SEC" 2>/dev/null
kill "$REMOTE_AGENT" 2>/dev/null
tap_done
