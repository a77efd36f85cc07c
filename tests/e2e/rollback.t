#!/usr/bin/env bash
# Failures before the commit point roll back: the old QEMU runs the guest as before, the new
# one is gone, and nothing is left behind. Two real failures: a new QEMU that cannot start,
# and one that fails to load the state after the old QEMU has sent it all (one vCPU fewer:
# "Unknown savevm section or instance 'cpu_common' 1").
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 20
VM_SMP=2 vm_start rollback || exit 1
vm_wait_ready || exit 1

# A new "binary" that answers the probes like QEMU but changes the VM when it runs it.
make_wrapper() {
	printf '#!/bin/sh\ncase "$1" in --version|-machine) exec %s "$@";; esac\n%s\n' "$QEMU" "$2" >"$1"
	chmod +x "$1"
}

# check_rolled_back NAME REPORT RC
check_rolled_back() {
	local name=$1 report=$2 rc=$3
	tap_diag "$name: $report"
	tap_is "$rc" 1 "$name: exit 1"
	tap_is "$(json_get "$report" result)" failed "$name: result is failed"
	grep -q "old QEMU resumed" <<<"$(json_get "$report" rolled_back)$(json_get "$report" error)" ||
		[ "$(vm_runstate)" = running ]
	tap_ok $? "$name: the old QEMU resumed"
	tap_is "$(qemu_pids_for "$VM_DIR" | tr '\n' ' ')" "$VM_PID " "$name: only the old QEMU is left"
	tap_is "$(vm_runstate)" running "$name: QMP answers at the same path, VM running"
	tap_is "$(cat "$VM_DIR/qemu.pid")" "$VM_PID" "$name: the pidfile still names the old PID"
	vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}' |
		grep -q '"state": false, "capability": "x-ignore-shared"'
	tap_ok $? "$name: x-ignore-shared is off again on the old QEMU"
	vm_memcheck_progress 60
	tap_ok $? "$name: the guest makes progress"
	tap_is "$(vm_memcheck_errors)" 0 "$name: the guest reports no corruption"
	tap_is "$(ls "$VM_DIR" | grep -c qemu-upgrade)" 0 "$name: no temporary files left"
}

cannot_start=$VM_DIR/qemu-cannot-start
make_wrapper "$cannot_start" 'echo "this QEMU is broken" >&2; exit 1'
report=$("$QU_BIN" --pid "$VM_PID" --new-binary "$cannot_start" --json --quiet 2>"$VM_DIR/err")
check_rolled_back "new QEMU that cannot start" "$report" $?

load_fails=$VM_DIR/qemu-one-vcpu-fewer
make_wrapper "$load_fails" "exec $QEMU \"\$@\" -smp 1"
report=$("$QU_BIN" --pid "$VM_PID" --new-binary "$load_fails" --json --quiet 2>"$VM_DIR/err")
check_rolled_back "new QEMU whose state load fails" "$report" $?
tap_done
