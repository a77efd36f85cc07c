#!/usr/bin/env bash
# --remote with QEMU 10.0 (bookworm-backports) on both hosts: RAM is copied live (the TCG
# dirty-tracking bug is fixed since 9.0) while the guest rewrites its memory, and its disk is
# mirrored (--copy-storage) by a 10.0 source. First, a fault that must cost nothing: the tool
# killed while RAM moves with the disk mirror running (its guardian cancels the mirror and
# resumes the VM on A; the agent stops the new QEMU on B and removes the image). Last, the
# upgrade and the move in one, onto storage both hosts see (--shared-storage): a VM on 7.2
# on A comes up on 10.0 on B.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 22
# A state directory of its own: --recover settles every journal it finds, and the machine's
# would hold the running upgrades of the tests beside this one (it waited for them, then
# failed: seen in CI).
QEMU_UPGRADE_STATE_DIR=$(mktemp -d) && _vm_paths+=("$QEMU_UPGRADE_STATE_DIR") && export QEMU_UPGRADE_STATE_DIR
vm_qemu10
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
# The 10.0 VM's disk is copied (its directory is hidden on B); the 7.2 VM's is shared (B sees
# the same file).
copied=$(mktemp -d) shared=$(mktemp -d) && _vm_paths+=("$copied" "$shared")
qemu-img create -q -f raw "$copied/data.raw" 48M
qemu-io -f raw -c 'write -P 0x6b 0 4M' -c 'write -P 0x19 40M 1M' "$copied/data.raw" >/dev/null
qemu-img create -q -f qcow2 "$shared/shared.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x5e 0 1M' "$shared/shared.qcow2" >/dev/null

QEMU=$Q10 VM_WRAP="ip netns exec $REMOTE_NS_A" VM_MEMCHECK_MIB=96 vm_start remote10 \
	-blockdev "driver=file,filename=$copied/data.raw,node-name=f0" -blockdev driver=raw,file=f0,node-name=data0 \
	-device virtio-blk-pci,drive=data0 || exit 1
vm_wait_ready || exit 1
remote_agent_start "$VM_DIR" "$copied" || { echo "Bail out! the agent did not start"; exit 1; }
old=$VM_PID

# 1. The tool dies while RAM moves: its guardian rolls back on A; the agent, seeing the
# connection end, stops the new QEMU on B.
QEMU_UPGRADE_FAULT=4:kill remote_upgrade --copy-storage --new-binary "$Q10"
rc=$?
tap_diag "tool killed while migrating: exit $rc"
for _ in $(seq 100); do [ "$(vm_runstate)" = running ] && [ -z "$(remote_qemus)" ] && break; sleep 0.1; done
tap_is "$(vm_runstate)" running "tool killed while migrating: the guardian resumed the VM on A"
tap_is "$(remote_qemus)" "" "and the agent stopped the new QEMU on B"
[ ! -e "/proc/$REMOTE_AGENT/root$VM_DIR/qmp.sock" ] && [ ! -e "/proc/$REMOTE_AGENT/root$copied/data.raw" ]
tap_ok $? "and removed the socket and the image it made for it"
tap_is "$(vm_qmp "$VM_QMP" '{"execute":"query-block-jobs"}' | jq -c .return)" "[]" "no disk copy job is left in the VM on A"
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --recover 2>&1)
rc=$?
tap_diag "--recover: exit $rc: $out"
[ "$rc" = 0 ]
tap_ok $? "--recover afterwards finds nothing wrong"

# 2. The move, the disk mirrored while the guest runs. Over plain TCP: this guest rewrites
# 96 MiB as fast as TCG lets it, which QEMU's TLS cannot outrun on two loaded cores (measured:
# 111 MB/s against 56 MiB always dirty); the TLS path is taken by the fault above and the
# 7.2 -> 10.0 move below.
remote_upgrade --copy-storage --no-tls --new-binary "$Q10"
rc=$?
tap_diag "the move (after that rollback): exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "after the rollback, the move works: 10.0 -> 10.0 onto B"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
tap_is "$(json_get "$REPORT" strategy)" remote-precopy "live precopy (QEMU 10.0 under TCG needs no stop)"
tap_is "$(json_get "$REPORT" tls)" false "--no-tls: over plain TCP, as asked"
tap_is "$(readlink "/proc/$VM_PID/exe")" "$Q10" "the new QEMU on B is 10.0"
tap_check "the old QEMU is gone" proc_gone "$old"
tap_is "$(vm_runstate "$VM_QMP")" running "the VM's QMP socket on B answers: running"
vm_memcheck_progress 60
tap_ok $? "the guest makes progress on B"
tap_is "$(vm_memcheck_errors)" 0 "the guest, rewriting 96 MiB while it moved, reports no corruption"
pause=$(json_get "$REPORT" pause_ms)
awk -v p="$pause" 'BEGIN { exit !(p > 0 && p < 5000) }'
tap_ok $? "the pause was measured ($pause ms)"
qemu-img compare -U -f raw -F raw "$copied/data.raw" "/proc/$VM_PID/root$copied/data.raw" >/dev/null
tap_ok $? "the -blockdev raw disk on B is the disk on A, block for block (a 10.0 source's mirror)"

# 7.2 on A -> 10.0 on B (the agent serves several upgrades; a second VM directory is hidden
# by a second agent's tmpfs).
QEMU=/usr/bin/qemu-system-x86_64 VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start remote72 \
	-drive "file=$shared/shared.qcow2,format=qcow2,if=virtio,id=disk0" || exit 1
vm_wait_ready || exit 1
old=$VM_PID
kill "$REMOTE_AGENT" && REMOTE_PORT=4780 remote_agent_start "$VM_DIR" || { echo "Bail out! the second agent did not start"; exit 1; }
REMOTE_B_IP=10.77.0.2:4780 remote_upgrade --shared-storage --new-binary "$Q10"
rc=$?
tap_diag "7.2 -> 10.0 onto B: exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "7.2 on A -> 10.0 on B: moved and upgraded in one"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the 7.2 VM did not move"; exit 1; }
tap_is "$(json_get "$REPORT" strategy)" remote-stop-and-copy "stopped for the copy (the 7.2 source under TCG)"
tap_is "$(json_get "$REPORT" tls)" true "over TLS by default: a 7.2 client, a 10.0 server"
tap_is "$(readlink "/proc/$VM_PID/exe")" "$Q10" "it runs on 10.0 on B"
tap_check "the 7.2 QEMU is gone" proc_gone "$old"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest is clean and makes progress on 10.0"
qemu-img check -U -q "$shared/shared.qcow2"
tap_ok $? "the shared image is sound, now open in the new QEMU on B"
tap_done
