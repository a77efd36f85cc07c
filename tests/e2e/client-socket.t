#!/usr/bin/env bash
# A chardev that is a client (QEMU connects to a server on the host, here an HMP monitor
# that a log collector drives) follows the VM: the new QEMU connects to the same server,
# retrying until it is taken, and answers there.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 4
srv=$(mktemp -d)
_vm_paths+=("$srv")
# Each connection: ask for the status, then keep what QEMU says for 3 s.
socat "UNIX-LISTEN:$srv/collector.sock,fork" SYSTEM:"echo 'info status'; timeout 3 cat >>$srv/log" 2>/dev/null &
collector=$!
vm_track_pid "$collector"
for _ in $(seq 50); do [ -S "$srv/collector.sock" ] && break; sleep 0.1; done
vm_start client -chardev "socket,id=hmp1,path=$srv/collector.sock" -mon chardev=hmp1,mode=readline || exit 1
answered() { grep -c 'VM status: running' "$srv/log" 2>/dev/null || true; }
for _ in $(seq 100); do [ "$(answered)" -ge 1 ] && break; sleep 0.1; done
tap_is "$(answered)" 1 "the old QEMU connected to the collector and answered"
report=$("$QU_BIN" --pid "$VM_PID" --json --quiet)
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID" 2>/dev/null
tap_is "$(json_get "$report" result)" upgraded "the VM with a client chardev is upgraded"
for _ in $(seq 100); do [ "$(answered)" -ge 2 ] && break; sleep 0.1; done
tap_is "$(answered)" 2 "the new QEMU connected to the same collector and answered"
tr '\0' ' ' <"/proc/$VM_PID/cmdline" | grep -q "path=$srv/collector.sock,reconnect=1"
tap_ok $? "the new QEMU retries its connection (reconnect=1)"
tap_done
