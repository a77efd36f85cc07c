#!/usr/bin/env bash
# Refused before anything is touched, with the reason, on real QEMU: a device QEMU itself
# reports as a migration blocker (ivshmem in peer mode), a pipe chardev, and a TCP socket
# server chardev. Each VM keeps
# its PID, runs, has no second QEMU and no changed migration capability, and its guest makes
# progress. (VFIO, bridge, vhost-user, -add-fd and the -nic/-net tap forms need hardware or
# setups these machines lack; tests/unit/test-rewrite.c checks their refusals.)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 6
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
tap_done
