#!/usr/bin/env bash
# Disks move with the VM: a qcow2 overlay on a raw backing file, a read-only raw image and a
# -blockdev node open in the new QEMU, which then holds the image locks (a third party is
# refused as before) and leaves the images intact. Refused before anything is touched: a
# running block job, and -snapshot.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"

tap_plan 10
img=$(mktemp -d)
_vm_paths+=("$img")
qemu-img create -q -f raw "$img/base.raw" 64M
qemu-img create -q -f qcow2 -F raw -b "$img/base.raw" "$img/overlay.qcow2"
qemu-img create -q -f raw "$img/ro.raw" 16M
qemu-img create -q -f raw "$img/node.raw" 16M

vm_start disks \
	-drive "file=$img/overlay.qcow2,format=qcow2,if=virtio,cache=writeback" \
	-drive "file=$img/ro.raw,format=raw,if=virtio,readonly=on" \
	-blockdev "driver=file,filename=$img/node.raw,node-name=f0,cache.direct=off" \
	-blockdev driver=raw,file=f0,node-name=n0 -device virtio-blk-pci,drive=n0 || exit 1
vm_wait_ready || exit 1
blocks() { vm_qmp "$VM_QMP" '{"execute":"query-block"}' | jq -c '[.return[] | select(.inserted) | .inserted.file] | sort'; }
before=$(blocks)

# A block job: mirroring at 1 byte/s never finishes on its own.
vm_qmp "$VM_QMP" "{\"execute\":\"drive-mirror\",\"arguments\":{\"device\":\"n0\",\"target\":\"$img/mirror.raw\",\"format\":\"raw\",\"sync\":\"full\",\"speed\":1,\"job-id\":\"m0\"}}" >/dev/null
err=$("$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "block job: exit $rc: $err"
[ "$rc" = 3 ] && grep -q "block job(s) running" <<<"$err"
tap_ok $? "a running block job is refused, with the reason"
vm_qmp "$VM_QMP" '{"execute":"block-job-cancel","arguments":{"device":"m0","force":true}}' >/dev/null
for _ in $(seq 50); do
	[ "$(vm_qmp "$VM_QMP" '{"execute":"query-block-jobs"}' | jq '.return | length')" = 0 ] && break
	sleep 0.1
done

old=$VM_PID
report=$("$QU_BIN" --pid "$old" --json --quiet)
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID" 2>/dev/null
tap_diag "$report"
tap_is "$(json_get "$report" result)" upgraded "the VM with three disks is upgraded"
tap_check "the old QEMU is gone" proc_gone_soon "$old"
tap_is "$(blocks)" "$before" "the same images are attached in the new QEMU"
for f in overlay.qcow2 ro.raw node.raw; do
	# A writer is refused the image's lock (qcow2 refuses even readers; raw shares reads).
	case $f in
	*.qcow2) ! qemu-img info "$img/$f" >/dev/null 2>&1 ;;
	*) ! qemu-io -f raw -c 'write 0 512' "$img/$f" >/dev/null 2>&1 ;;
	esac
	tap_ok $? "$f: the new QEMU holds its lock"
done
qemu-img check -q -U "$img/overlay.qcow2"
tap_ok $? "the qcow2 overlay is intact"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest is clean and running"

VM_RAM=memfd vm_start snap -snapshot || exit 1
err=$("$QU_BIN" --pid "$VM_PID" --quiet 2>&1 >/dev/null)
rc=$?
tap_diag "-snapshot: exit $rc: $err"
[ "$rc" = 3 ] && grep -q -- "-snapshot: its temporary disk overlay" <<<"$err" && kill -0 "$VM_PID"
tap_ok $? "-snapshot is refused, with the reason, and the VM runs on"
tap_done
