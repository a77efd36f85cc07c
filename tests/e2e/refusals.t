#!/usr/bin/env bash
# Refused before anything is touched, with the reason, on real QEMU: a device QEMU itself
# reports as a migration blocker (ivshmem in peer mode), a pipe chardev, and a TCP socket
# server chardev. Each VM keeps
# its PID, runs, has no second QEMU and no changed migration capability, and its guest makes
# progress. (VFIO, bridge, vhost-user and the -nic/-net tap forms need hardware or
# setups these machines lack; tests/unit/test-rewrite.c checks their refusals.) A VM with two
# blockers at once gets both in one answer, so that fixing one does not reveal the other.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 11
port=$((20000 + $$ % 20000))
# refused NAME PATTERN QEMU-ARGS...: the refusal names the problem; the VM is untouched.
refused() {
	local name=$1 pattern=$2 err rc caps
	shift 2
	VM_MEMCHECK_MIB=16 vm_start "refuse-$name" "$@" || exit 1
	vm_wait_ready 60 || exit 1
	err=$("$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
	rc=$?
	tap_diag "$name: exit $rc: $err"
	[ "$rc" = 3 ] && grep -qE -e "$pattern" <<<"$err"
	tap_ok $? "$name: refused (exit 3) with the reason"
	caps=$(vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}' | jq -c '[.return[] | select(.state)] | map(.capability)')
	[ "$(qemu_pids_for "$VM_DIR")" = "$VM_PID" ] && [ "$(vm_runstate)" = running ] && [ "$caps" = '[]' ] &&
		vm_memcheck_progress 30 && [ "$(vm_memcheck_errors)" = 0 ]
	tap_ok $? "$name: the VM is untouched: same QEMU, running, no capability set, guest clean"
}
refused blocker "QEMU reports that this VM cannot migrate: Migration is disabled when using feature 'peer mode' in device 'ivshmem'" \
	-object memory-backend-memfd,id=sh,size=1M,share=on -device ivshmem-plain,memdev=sh
fifo=$(mktemp -u "${TMPDIR:-/tmp}/qu-refuse-fifo.XXXXXX")
mkfifo "$fifo" && vm_defer "rm -f $fifo"
refused pipe "-chardev pipe,id=pipe0,path=$fifo: pipe character devices cannot be carried yet" -chardev "pipe,id=pipe0,path=$fifo" -device isa-serial,chardev=pipe0
refused tcp-server "TCP" -chardev "socket,id=tcp0,host=127.0.0.1,port=$port,server=on,wait=off" -device isa-serial,chardev=tcp0

# Two independent blockers: QEMU's own (ivshmem in peer mode) and a pipe chardev.
blocker="QEMU reports that this VM cannot migrate: Migration is disabled when using feature 'peer mode' in device 'ivshmem'"
pipe="-chardev pipe,id=pipe1,path=$fifo: pipe character devices cannot be carried yet"
refused both "2 blockers: QEMU reports that this VM cannot migrate: .*; -chardev pipe,id=pipe1" -object memory-backend-memfd,id=sh,size=1M,share=on -device ivshmem-plain,memdev=sh \
	-chardev "pipe,id=pipe1,path=$fifo" -device isa-serial,chardev=pipe1
dry=$("$QU_BIN" --pid "$VM_PID" --dry-run --quiet 2>/dev/null)
rc=$?
tap_diag "both: --dry-run exit $rc: $dry"
[ "$rc" = 3 ] && grep -q "^refused: *2 blockers" <<<"$dry" && grep -qxF -- "  - $blocker" <<<"$dry" &&
	grep -qxF -- "  - $pipe" <<<"$dry"
tap_ok $? "both: --dry-run lists both blockers, one line each"
json=$("$QU_BIN" --pid "$VM_PID" --json --quiet 2>/dev/null)
rc=$?
tap_diag "both: --json exit $rc: $(jq -c '{result, refusals}' <<<"$json")"
[ "$rc" = 3 ] && [ "$(jq -r .result <<<"$json")" = refused ] &&
	[ "$(jq -r --arg a "$blocker" --arg b "$pipe" '.refusals == [$a, $b]' <<<"$json")" = true ] &&
	[ "$(jq -r '.refusal' <<<"$json")" = "$blocker; $pipe" ]
tap_ok $? "both: --json gives both in refusals, and joined in refusal"
[ "$(qemu_pids_for "$VM_DIR")" = "$VM_PID" ] && [ "$(vm_runstate)" = running ] &&
	vm_memcheck_progress 30 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "both: still untouched after --dry-run and --json"
tap_done
