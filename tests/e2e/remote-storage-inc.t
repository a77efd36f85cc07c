#!/usr/bin/env bash
# --remote with --copy-storage-inc: VMs whose disk is a qcow2 overlay on a raw base (128 MiB,
# 96 MiB of data) that both hosts hold at the same path. Only the overlay's data crosses; the
# chain on B reads as the chain on A; the guest's memory checker stays clean; --verify agrees.
# A base changed on B after the check is refused before the top is made; a copy changed on B
# before the resume fails --verify and rolls back.
# Before that, what must not touch the VM: the base missing on B, the base different on B (same
# size, other bytes), both disks named at once; and --copy-storage (full) with a chain: a -drive
# disk is collapsed into one standalone image on B, a -blockdev disk whose command line names
# its base is refused. QEMU 7.2 (the guest stopped in pre-switchover completes the mirrors) and
# 10.0 (mirrors switched to write-blocking before the pause) as sources.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 29
vm_qemu10
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
vm_guest_build || exit 1
bdir=$(mktemp -d) odir=$(mktemp -d) flat=$(mktemp -d) && _vm_paths+=("$bdir" "$odir" "$flat")
base=$bdir/base.raw
qemu-img create -q -f raw "$base" 128M
qemu-io -f raw -c 'write -P 0x5a 0 64M' -c 'write -P 0xc3 80M 32M' "$base" >/dev/null
# Overlays: a few MiB of writes over the base, made before the VMs start (one more is made by
# the guest's QEMU while it runs, below).
for t in top72a top72b top10 topfull; do
	qemu-img create -q -f qcow2 -b "$base" -F raw "$odir/$t.qcow2" 128M
	qemu-io -f qcow2 -c 'write -P 0x11 1M 2M' -c 'write -P 0x22 70M 1M' -c 'write -z 90M 1M' "$odir/$t.qcow2" >/dev/null
done

# vm N: makes VM N (1..3) the current one.
declare -A P D
save_vm() { P[$1]=$VM_PID D[$1]=$VM_DIR; }
vm() { VM_PID=${P[$1]} VM_DIR=${D[$1]} VM_QMP=${D[$1]}/qmp.sock VM_SERIAL=${D[$1]}/serial.log; }

# 1: 7.2, two -drive overlays on the one base. 2: 10.0, -blockdev naming its base (libvirt's
# way). 3: 7.2, one -drive overlay, for the full copy.
VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start inc72 \
	-drive "file=$odir/top72a.qcow2,format=qcow2,if=virtio,id=disk0" \
	-drive "file=$odir/top72b.qcow2,format=qcow2,if=virtio,id=disk1" || exit 1
save_vm 1
QEMU=$Q10 VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start inc10 \
	-blockdev "driver=file,filename=$base,node-name=bf,read-only=on" \
	-blockdev driver=raw,file=bf,node-name=base0,read-only=on \
	-blockdev "driver=file,filename=$odir/top10.qcow2,node-name=tf" \
	-blockdev driver=qcow2,file=tf,backing=base0,node-name=disk10 -device virtio-blk-pci,drive=disk10 || exit 1
save_vm 2
VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start full72 \
	-drive "file=$odir/topfull.qcow2,format=qcow2,if=virtio,id=disk0" || exit 1
save_vm 3
for n in 1 2 3; do vm $n; vm_wait_ready || exit 1; done
remote_agent_start "${D[1]}" "${D[2]}" "${D[3]}" "$odir" "$bdir" || { echo "Bail out! the agent did not start"; exit 1; }
onb() { nsenter -t "$REMOTE_AGENT" -m "$@"; }
# untouched N IMAGE...: VM N runs on A as before, and nothing was made for it on B (the QEMUs
# there are those of the VMs that moved before: $on_b).
untouched() {
	local n=$1 f
	shift
	vm "$n"
	[ "$(vm_runstate)" = running ] && [ "$VM_PID" = "${P[$n]}" ] && [ "$(remote_qemus)" = "$on_b" ] &&
		[ ! -e "/proc/$REMOTE_AGENT/root${D[$n]}/qmp.sock" ] || return 1
	for f in "$@"; do [ ! -e "/proc/$REMOTE_AGENT/root$odir/$f" ] || return 1; done
}

on_b=""
# 1. The base is not on B: refused before anything, both disks named.
vm 1
remote_upgrade --copy-storage-inc
rc=$?
tap_diag "base missing on B: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && grep -q "disk 'disk0': backing file $base on $REMOTE_B_IP:.*" "$VM_DIR/err" &&
	grep -q "disk 'disk1': backing file $base on" "$VM_DIR/err"
tap_ok $? "the base missing on B: refused (exit 3), the file named for both disks"
untouched 1 top72a.qcow2 top72b.qcow2
tap_ok $? "and the VM runs on A, nothing made on B"

# 2. B's base has other bytes, same size.
cp "$base" "$flat/base.copy"
onb cp "$flat/base.copy" "$base"
onb qemu-io -f raw -c 'write -P 0x99 50M 64k' "$base" >/dev/null
vm 1
remote_upgrade --copy-storage-inc
rc=$?
tap_diag "base differs on B: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && grep -q "disk 'disk0': backing file $base differs on $REMOTE_B_IP: same size (134217728 bytes), other content" "$VM_DIR/err" &&
	grep -q "disk 'disk1': backing file $base differs" "$VM_DIR/err"
tap_ok $? "a base with other content on B: refused (exit 3), the file and the difference named, both disks"
untouched 1 top72a.qcow2 top72b.qcow2
tap_ok $? "and the VM runs on A, nothing made on B"
# The --dry-run says what would move.
REPORT=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" \
	--copy-storage-inc --dry-run --json --quiet 2>"$VM_DIR/err")
tap_diag "dry run (base still different): $REPORT"
[ "$(json_get "$REPORT" result)" = refused ]
tap_ok $? "--dry-run shows the refusal too"

# 3. The same base on B: the move, with --verify; a write made while it runs must cross. The
# plan first, in words.
onb cp "$flat/base.copy" "$base"
vm 1
plan=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" \
	--copy-storage-inc --dry-run 2>&1)
tap_diag "$(grep '^disk' <<<"$plan" | tr '\n' ' ')"
[ "$(grep -c "^disk disk[01] .*its top image copied onto the same backing files there (NBD mirror, sync=top)" <<<"$plan")" = 2 ]
tap_ok $? "--dry-run with the same base on B: both disks' top images to be copied over it"
vm_qmp "$VM_QMP" '{"execute":"human-monitor-command","arguments":{"command-line":"qemu-io disk0 \"write -P 0x77 8M 512k\""}}' >/dev/null
qemu-img convert -U -f qcow2 -O raw "$odir/top72b.qcow2" "$flat/before72b.raw"
old=$VM_PID
remote_upgrade --copy-storage-inc --verify
rc=$?
tap_diag "7.2 move: exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "7.2, --copy-storage-inc: the VM moved to B"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
P[1]=$VM_PID
copied=$(json_get "$REPORT" disk_copied_bytes)
[[ $copied =~ ^[0-9]+$ ]] && [ "$copied" -ge $((2 * 3 << 20)) ] && [ "$copied" -lt $((128 << 20)) ]
tap_ok $? "only the overlays crossed: $copied bytes for two disks on a 128 MiB base (96 MiB of data)"
[ "$(jq -r '[.disks[].copy] | join(",")' <<<"$REPORT")" = top,top ] && [ "$(json_get "$REPORT" verified)" = true ] &&
	[ "$(json_get "$REPORT" disk_cutover)" = stopped ]
tap_ok $? "the report: top images copied, --verify agreed, cut-over with the guest stopped (7.2)"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B and reports no memory corruption"
[ ! -e "${D[1]}/qmp.sock" ] && [ ! -e "${D[1]}/qemu.pid" ]
tap_ok $? "nothing of the VM is left on A"
tap_is "$(onb qemu-img info -U --output=json "$odir/top72a.qcow2" | jq -r '.["backing-filename"]')" "$base" \
	"B's new top image has the base as its backing file"
# The chains: A's flattened, compared with B's chain read on B.
qemu-img convert -U -f qcow2 -O raw "$odir/top72a.qcow2" "$flat/a72a.raw"
onb qemu-img compare -U -f raw -F qcow2 "$flat/a72a.raw" "$odir/top72a.qcow2" >/dev/null &&
	onb qemu-img compare -U -f raw -F qcow2 "$flat/before72b.raw" "$odir/top72b.qcow2" >/dev/null
tap_ok $? "both chains on B read as the chains on A (with the write made while it ran)"
cmp -s -n 512k -i $((8 << 20)):0 "$flat/a72a.raw" <(head -c 512k /dev/zero | tr '\0' '\167')
tap_ok $? "the write made while it ran is in the copy"
onb qemu-img check -U -q "$odir/top72a.qcow2"
tap_ok $? "B's top image is a sound qcow2"

on_b=$(remote_qemus)
# 4. --copy-storage (full) with a chain the command line names (-blockdev): refused, and told.
vm 2
remote_upgrade --copy-storage --new-binary "$Q10"
rc=$?
tap_diag "full copy, -blockdev chain: exit $rc: $(cat "$VM_DIR/err")"
[ "$rc" = 3 ] && grep -q "disk 'disk10' ($odir/top10.qcow2) has backing file $base, which the VM's command line names itself" "$VM_DIR/err" &&
	grep -q -- "--copy-storage-inc" "$VM_DIR/err"
tap_ok $? "--copy-storage of a -blockdev disk naming its base: refused (exit 3), --copy-storage-inc suggested"
untouched 2 top10.qcow2
tap_ok $? "and the VM runs on A, nothing made on B"

# 5. 10.0: the mirrors go write-blocking before the pause. RAM is copied live (10.0 under TCG
# needs no stop), over plain TCP as in remote-qemu10.t: QEMU's TLS does not outrun a guest that
# rewrites its memory on these loaded 2-core machines (the disk copy's TLS path is taken above).
qemu-img convert -U -f qcow2 -O raw "$odir/top10.qcow2" "$flat/a10.raw"
old=$VM_PID
remote_upgrade --copy-storage-inc --verify --no-tls --new-binary "$Q10"
rc=$?
tap_diag "10.0 move: exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "10.0, --copy-storage-inc: the VM moved to B"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
copied=$(json_get "$REPORT" disk_copied_bytes)
[[ $copied =~ ^[0-9]+$ ]] && [ "$copied" -ge $((3 << 20)) ] && [ "$copied" -lt $((32 << 20)) ]
tap_ok $? "only the overlay crossed: $copied bytes"
[ "$(json_get "$REPORT" disk_cutover)" = write-blocking ] && [ "$(json_get "$REPORT" verified)" = true ]
tap_ok $? "the mirror was write-blocking before the pause (10.0), --verify agreed"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B and reports no memory corruption"
onb qemu-img compare -U -f raw -F qcow2 "$flat/a10.raw" "$odir/top10.qcow2" >/dev/null
tap_ok $? "the chain on B reads as the chain on A"

# 6. B's base changes after the plan checked it (the tool stands still at fault point 1, the
# plan made, nothing touched): the agent sees it before it makes the top, and nothing moves.
on_b=$(remote_qemus)
vm 3
QEMU_UPGRADE_FAULT=1:pause=8000 ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_B_IP" \
	--pki-dir "$REMOTE_PKI_A" --copy-storage-inc >/dev/null 2>"$VM_DIR/err" &
tool=$!
for _ in $(seq 1200); do grep -q "fault point 1: pausing" "$VM_DIR/err" && break; kill -0 "$tool" 2>/dev/null || break; sleep 0.1; done
onb touch "$base"
wait "$tool"
rc=$?
tap_diag "base changed after the plan: exit $rc: $(grep -v '^{' "$VM_DIR/err" | tail -n 2)"
[ "$rc" = 1 ] && grep -q "backing file $base changed on this host since it was checked" "$VM_DIR/err" && untouched 3 topfull.qcow2
tap_ok $? "a base changed on B after the check: the agent refuses to make the top (exit 1), nothing moved"

# 7. --verify catches a copy that differs: the tool stands still once the old QEMU has sent
# everything (fault point 5, both QEMUs paused, the mirror complete), a byte of B's new top
# image is changed meanwhile, and the sums disagree: rolled back, the VM runs on A again.
on_b=$(remote_qemus)
vm 3
# (The tool holds the VM's QMP socket meanwhile: its own log says when it stands still.)
QEMU_UPGRADE_FAULT=5:pause=8000 ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "$REMOTE_B_IP" \
	--pki-dir "$REMOTE_PKI_A" --copy-storage-inc --verify >/dev/null 2>"$VM_DIR/err" &
tool=$!
for _ in $(seq 1200); do grep -q "fault point 5: pausing" "$VM_DIR/err" && break; kill -0 "$tool" 2>/dev/null || break; sleep 0.1; done
at=$(onb qemu-img map -U --output=json "$odir/topfull.qcow2" | jq -r '[.[] | select(.depth == 0 and .data)][0].offset')
[[ $at =~ ^[0-9]+$ ]] && printf 'corrupted' | onb dd of="$odir/topfull.qcow2" bs=1 seek=$((at + 4096)) conv=notrunc status=none
tap_diag "B's copy changed at byte $((at + 4096)) of its top image"
wait "$tool"
rc=$?
tap_diag "verify mismatch: exit $rc: $(grep -v '^{' "$VM_DIR/err" | tail -n 4)"
[ "$rc" = 1 ] && grep -q -- "--verify: disk 'disk0' ($odir/topfull.qcow2) differs on $REMOTE_B_IP after the copy" "$VM_DIR/err"
tap_ok $? "--verify: a copy that differs fails the move before the resume (exit 1), the disk named"
for _ in $(seq 50); do [ "$(remote_qemus)" = "$on_b" ] && break; sleep 0.1; done
untouched 3 topfull.qcow2
tap_ok $? "rolled back: the VM runs on A again, its QEMU and image on B are gone"

# 8. --copy-storage (full) of a -drive overlay: the chain becomes one standalone image on B.
vm 3
qemu-img convert -U -f qcow2 -O raw "$odir/topfull.qcow2" "$flat/afull.raw"
old=$VM_PID
remote_upgrade --copy-storage --verify
rc=$?
tap_diag "full copy, collapsed: exit $rc: $REPORT $(cat "$VM_DIR/err")"
tap_is "$(json_get "$REPORT" result)" upgraded "7.2, --copy-storage of an overlay: the VM moved to B"
[ "$VM_PID" != "$old" ] || { echo "Bail out! the VM did not move"; exit 1; }
copied=$(json_get "$REPORT" disk_copied_bytes)
[ "$(jq -r '.disks[0].copy' <<<"$REPORT")" = collapsed ] && [[ $copied =~ ^[0-9]+$ ]] && [ "$copied" -ge $((96 << 20)) ] &&
	[ "$(json_get "$REPORT" verified)" = true ]
tap_ok $? "the whole disk crossed ($copied bytes), collapsed, --verify agreed"
[ "$(onb qemu-img info -U --output=json "$odir/topfull.qcow2" | jq -r '.["backing-filename"] // "none"')" = none ] &&
	onb qemu-img compare -U -f raw -F qcow2 "$flat/afull.raw" "$odir/topfull.qcow2" >/dev/null
tap_ok $? "B's image stands alone and reads as the chain on A"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B and reports no memory corruption"
tap_done
